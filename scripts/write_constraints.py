"""Write constraints.txt: the exact version of every package the tests ran with, for the images and CI to install.

    .venv/bin/python scripts/write_constraints.py        (or `make constraints`)

pyproject.toml says what Newsflow needs (lower bounds); this file says what was tested. The Dockerfiles and
`make` install with ``-c constraints.txt``, so an image rebuilt from the same commit later gets the same libraries,
where ``aiokafka``, ``uvicorn`` or ``transformers`` of the day used to come in (and Newsflow leans on some of their
internals). To move to newer versions: ``make upgrade-deps`` (installs without the constraints, upgrading), run
``make test``, then ``make constraints`` and commit the file.

Left out: the project itself, and torch's CUDA libraries (``nvidia-*``, ``triton``), which a CPU build of torch
(the images') does not have; torch's own version is pinned here as the images pin it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
HEADER = """\
# What the tests ran with: exact versions for the images and CI (`-c constraints.txt`).
# Written by `make constraints` from the test virtualenv; see scripts/write_constraints.py. Do not edit by hand.
"""
CUDA_ONLY = ("nvidia-", "triton==")


def pinned(freeze: str) -> list[str]:
    """The ``name==version`` lines of a ``uv pip freeze``, without the project and the CUDA libraries."""
    lines = []
    for line in freeze.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-e ")) or "==" not in line or line.startswith(CUDA_ONLY):
            continue
        name, version = line.split("==", 1)
        lines.append(f"{name.lower()}=={version.split('+', 1)[0]}")  # torch 2.15.0+cpu is torch 2.15.0
    return sorted(lines)


def main() -> None:
    venv_python = ROOT / ".venv" / "bin" / "python"
    uv = ROOT / ".venv" / "bin" / "uv"
    freeze = subprocess.run(
        [str(uv), "pip", "freeze", "--python", str(venv_python)], capture_output=True, text=True, check=True
    ).stdout
    lines = [line for line in pinned(freeze) if not line.startswith("newsflow==")]
    (ROOT / "constraints.txt").write_text(HEADER + "\n".join(lines) + "\n")
    print(f"wrote constraints.txt: {len(lines)} packages", file=sys.stderr)


if __name__ == "__main__":
    main()
