"""`deploy/local/system-packages.sh`: what `make demo` and `make test` check first on a fresh machine.

Run on a PATH that holds only the shell and the few tools the script itself uses, so Java, Maven, g++ and openssl
are missing whatever this machine has; NEWSFLOW_INSTALL_PACKAGES=0 keeps it from installing them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "deploy/local/system-packages.sh"
TOOLS = ("bash", "id", "ls")


def run_without_packages(tmp_path: Path, purpose: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    env = {"PATH": str(bin_dir), "NEWSFLOW_INSTALL_PACKAGES": "0", "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(
        [str(bin_dir / "bash"), str(SCRIPT), purpose], env=env, capture_output=True, text=True, timeout=30
    )


def test_demo_names_the_broker_packages_and_the_command(tmp_path: Path) -> None:
    result = run_without_packages(tmp_path, "demo")
    assert result.returncode == 1
    assert "make demo needs these Debian packages:" in result.stderr
    assert "chromium" not in result.stderr, "the demo runs no browser"
    assert "sudo apt-get install -y python3-venv openjdk-17-jre-headless maven" in result.stderr


def test_test_also_names_what_the_test_suite_needs(tmp_path: Path) -> None:
    result = run_without_packages(tmp_path, "test")
    assert result.returncode == 1
    for package in ("openjdk-17-jre-headless", "maven", "util-linux", "g++", "openssl"):
        assert package in result.stderr


@pytest.mark.parametrize("purpose", ["install", "ci"])
def test_an_unknown_purpose_is_refused(purpose: str) -> None:
    result = subprocess.run([str(SCRIPT), purpose], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "usage:" in result.stderr
