"""constraints.txt pins what the tests ran with, and every image and `make` install by it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).parents[2]


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            found[name] = version
    return found


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    return [Requirement(r) for r in listed if not r.startswith("newsflow[")]


def test_every_dependency_is_pinned_within_what_pyproject_allows() -> None:
    pinned = pins()
    for requirement in requirements():
        name = requirement.name.lower().replace("_", "-")
        assert name in pinned, f"{name} is not in constraints.txt: run `make constraints`"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (requirement, pinned[name])


def test_the_images_and_make_install_by_it_and_torch_is_the_images_torch() -> None:
    for service in ("ingest", "cleanup", "classify", "storage"):
        dockerfile = (ROOT / f"services/{service}/Dockerfile").read_text()
        assert f"-r pyproject.toml --extra {service} -c constraints.txt" in dockerfile, service
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()
    classify = (ROOT / "services/classify/Dockerfile").read_text()
    [torch] = re.findall(r"ARG TORCH_VERSION=(\S+)", classify)
    assert pins()["torch"] == torch
    assert not any(name.startswith("nvidia-") or name == "triton" for name in pins())  # CUDA: not in a CPU image
