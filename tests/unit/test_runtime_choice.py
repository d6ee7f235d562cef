"""The precision classify picks follows what the CPU's kernels may use, not only what /proc/cpuinfo lists."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from newsflow_classify import model
from newsflow_classify.model import Runtime, cpu_has_bf16


@pytest.fixture(autouse=True)
def fresh_detection() -> Iterator[None]:
    cpu_has_bf16.cache_clear()
    yield
    cpu_has_bf16.cache_clear()


def test_an_isa_capped_below_bf16_gets_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(model.Path, "read_text", lambda self: "flags : avx2 avx512f avx512_bf16 amx_bf16")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert cpu_has_bf16()
    assert Runtime.choose("cpu", "auto").dtype == torch.bfloat16

    cpu_has_bf16.cache_clear()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not cpu_has_bf16()
    assert Runtime.choose("cpu", "auto").dtype == torch.float32


def test_torch_running_avx2_kernels_gets_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(model.Path, "read_text", lambda self: "flags : avx2 avx512f avx512_bf16")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")  # ATEN_CPU_CAPABILITY=avx2
    assert not cpu_has_bf16()


def test_a_cpu_without_bf16_instructions_gets_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(model.Path, "read_text", lambda self: "flags : avx2 avx512f avx512_vnni")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert not cpu_has_bf16()
    assert Runtime.choose("cpu", "auto").dtype == torch.float32


def test_a_gpu_present_gets_cuda_in_fp16_and_no_cpu_compilation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU branch of the automatic choices, taken on a machine without one (no GPU is lent to our CI)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    runtime = Runtime.choose("auto", "auto")
    assert runtime.device == torch.device("cuda")
    assert runtime.dtype == torch.float16
    # torch.compile's CPU path (C++ and OpenMP) is for CPUs: on the GPU the eager model serves.
    assert not model.compiles("auto", runtime)
    assert model.compiles("on", runtime)  # a user who asks for it gets it
    assert Runtime.choose("cuda:1", "bf16") == Runtime(torch.device("cuda:1"), torch.bfloat16)


def test_no_gpu_gets_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert Runtime.choose("auto", "fp32") == Runtime(torch.device("cpu"), torch.float32)
