"""classify hands its OpenMP wait policy to the OpenMP runtime that torch loads, before torch loads it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from newsflow_classify.settings import ClassifySettings

# What the service's entry point does, then torch's import; libgomp prints the policy it read (OMP_DISPLAY_ENV).
ENTRY = """
from newsflow_classify.settings import ClassifySettings, apply_openmp_settings
apply_openmp_settings(ClassifySettings())
import torch
torch.ones(64, 64).matmul(torch.ones(64, 64))
"""


def policy_openmp_read(**env: str) -> str:
    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    finished = subprocess.run(
        [sys.executable, "-c", ENTRY],
        env={**environment, "OMP_DISPLAY_ENV": "TRUE", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = [line for line in finished.stderr.splitlines() if "OMP_WAIT_POLICY" in line]
    assert lines, f"OpenMP printed no environment: {finished.stderr[-2000:]}"
    return lines[0].split("=", 1)[1].strip().strip("'")


def test_openmp_threads_sleep_by_default() -> None:
    assert policy_openmp_read() == "PASSIVE"


def test_a_deployment_with_cores_of_its_own_can_spin() -> None:
    assert policy_openmp_read(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"


def test_the_policy_is_read_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    assert ClassifySettings().omp_wait_policy == "ACTIVE"


def test_an_unknown_policy_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "sometimes")
    with pytest.raises(ValidationError, match="omp_wait_policy"):
        ClassifySettings()
