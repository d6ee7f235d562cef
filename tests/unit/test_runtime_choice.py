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
