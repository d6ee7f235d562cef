"""The precision classify picks follows what the CPU's kernels may use, not only what /proc/cpuinfo lists."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from newsflow_classify import model
from newsflow_classify.model import BF16_LEAST_SPEEDUP, Runtime, bf16_pays_off, bf16_speedup, cpu_has_bf16


@pytest.fixture(autouse=True)
def fresh_detection() -> Iterator[None]:
    for cached in (cpu_has_bf16, bf16_speedup, bf16_pays_off):
        cached.cache_clear()
    yield
    for cached in (cpu_has_bf16, bf16_speedup, bf16_pays_off):
        cached.cache_clear()


def test_an_isa_capped_below_bf16_gets_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(model.Path, "read_text", lambda self: "flags : avx2 avx512f avx512_bf16 amx_bf16")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(model, "bf16_speedup", lambda: 4.0)  # as AMX measures
    assert cpu_has_bf16()
    assert Runtime.choose("cpu", "auto").dtype == torch.bfloat16

    cpu_has_bf16.cache_clear()
    bf16_pays_off.cache_clear()
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


@pytest.mark.parametrize(
    ("speedup", "expected"),
    [(4.0, torch.bfloat16), (1.6, torch.bfloat16), (1.0, torch.float32), (0.7, torch.float32)],
)
def test_bf16_instructions_are_used_only_where_they_measure_faster(
    monkeypatch: pytest.MonkeyPatch, speedup: float, expected: torch.dtype
) -> None:
    """AMX (4 x), AVX512-BF16 on a Zen 5 (GEMM ~3 x), and on an Intel core held below AMX (0.7 x): the flags are
    the same for the last two, the choice is not."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(model.Path, "read_text", lambda self: "flags : avx2 avx512f avx512_bf16")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(model, "bf16_speedup", lambda: speedup)
    assert Runtime.choose("cpu", "auto").dtype == expected
    assert BF16_LEAST_SPEEDUP > 1.0


def test_the_speedup_is_measured_on_this_cpu() -> None:
    """A real timing of both precisions (small, so that emulated bf16 on a CPU without it stays quick)."""
    fp32, bf16 = model.matmul_seconds((torch.float32, torch.bfloat16), rows=64, width=64)
    assert 0 < fp32 < 1
    assert 0 < bf16 < 1
