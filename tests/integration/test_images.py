"""The four images as users run them: built from the repository root with podman (or docker), each started as a
non-root user with a read-only root filesystem and no capabilities, answering /health, and together taking an
article from Kafka to the storage API. `make images` builds the same images; this test builds them too (cached
layers make that quick after the first time)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from newsflow_cli.inputs import read_inputs
from newsflow_cli.kafka_io import producer, push
from newsflow_cli.local_kafka import free_port
from newsflow_shared import ServiceSettings

from .harness import isolated_env

ROOT = Path(__file__).parents[2]
SERVICES = ("ingest", "cleanup", "classify", "storage")
TOKEN = "images-test-token-0123"


def container_engine() -> str | None:
    """podman when installed, else docker when its daemon answers (a docker client alone cannot run anything)."""
    if shutil.which("podman"):
        return "podman"
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0:
        return "docker"
    return None


ENGINE = container_engine()
pytestmark = [
    pytest.mark.images,
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(ENGINE is None, reason="no container engine: neither podman nor a docker daemon that answers"),
]


def engine(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    assert ENGINE is not None
    result = subprocess.run([ENGINE, *args], capture_output=True, text=True, check=False, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{ENGINE} {' '.join(args)} failed ({result.returncode}): {result.stderr[-3000:]}")
    return result


def build_images() -> None:
    """Build the four images with deploy/images/build.sh, as `make images` does (cached layers make it quick)."""
    env = {**os.environ, "CONTAINER_ENGINE": str(ENGINE)}
    result = subprocess.run(
        [str(ROOT / "deploy/images/build.sh"), *SERVICES], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-5000:]


@pytest.fixture(scope="module")
def images() -> dict[str, int]:
    """The four images, built; their sizes in bytes."""
    build_images()
    sizes = {}
    for service in SERVICES:
        size = engine("image", "inspect", "--format", "{{.Size}}", f"newsflow-{service}:latest").stdout
        sizes[service] = int(size.strip())
    print("image sizes:", {service: f"{size / 1e6:.0f} MB" for service, size in sizes.items()})
    return sizes


def locked_down(name: str, env: dict[str, str], data: Path) -> list[str]:
    """`run` options as Compose and Kubernetes run the services: read-only, no capabilities, /tmp a tmpfs."""
    options = ["--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp"]
    options += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges", "-v", f"{data}:/data"]
    for key, value in env.items():
        options += ["-e", f"{key}={value}"]
    return options


def logs(name: str) -> str:
    result = engine("logs", name, check=False)
    return result.stdout + result.stderr


@pytest.fixture
def containers() -> Iterator[list[str]]:
    started: list[str] = []
    yield started
    for name in started:
        engine("rm", "-f", name, check=False)


def wait_healthy(name: str, port: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        state = engine("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
        assert state == "true", f"{name} exited:\n{logs(name)[-5000:]}"
        time.sleep(1)
    raise AssertionError(f"{name} has no /health after {timeout} s:\n{logs(name)[-5000:]}")


async def push_seed(env: dict[str, str]) -> None:
    settings = ServiceSettings(**{key.lower(): value for key, value in env.items()})
    inputs = list(read_inputs([str(ROOT / "samples/seed-article.txt")]))
    async with producer(settings) as client:
        summary = await push(client, settings, inputs)
    assert not summary.failed


def stored_article(api: str, timeout: float = 300) -> dict[str, object]:
    """Wait until storage's API lists one article, and return it whole."""
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {TOKEN}"}
    while time.monotonic() < deadline:
        listing = httpx.get(f"{api}/articles", headers=headers, timeout=5)
        assert listing.status_code == 200, listing.text
        if listing.json()["items"]:
            [item] = listing.json()["items"]
            return httpx.get(f"{api}/articles/{item['id']}", headers=headers, timeout=5).json()
        time.sleep(2)
    raise AssertionError(f"nothing stored after {timeout} s")


def test_images_are_small_and_carry_no_compiler(images: dict[str, int]) -> None:
    for service in SERVICES:
        image = f"newsflow-{service}:latest"
        [inspected] = json.loads(engine("image", "inspect", image).stdout)
        assert inspected["Config"]["User"] == "10001:10001", service
        # podman reports the HEALTHCHECK beside Config, docker inside it
        healthcheck = inspected.get("Healthcheck") or inspected["Config"]["Healthcheck"]
        assert healthcheck["Test"][:4] == ["CMD", "python", "-m", "newsflow_probe"], service
        which = engine("run", "--rm", "--entrypoint", "sh", image, "-c", "command -v g++ c++ cc gcc", check=False)
        assert not which.stdout.strip(), f"{service} ships a compiler: {which.stdout}"
        assert which.returncode != 0, service
    # Python services on a slim base: only classify (torch) may be large.
    for service in ("ingest", "cleanup", "storage"):
        assert images[service] < 700e6, (service, images[service])


def test_each_service_runs_locked_down_and_the_pipeline_stores_an_article(
    images: dict[str, int], kafka_bootstrap: str, tmp_path: Path, containers: list[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)  # the services run as uid 10001; SQLite writes its file and journal beside each other here
    env = isolated_env(kafka_bootstrap, "sqlite+aiosqlite:////data/newsflow.db")
    env["LOG_LEVEL"] = "INFO"
    run = uuid.uuid4().hex[:8]

    # What Compose's topic-init does, from the ingest image: create the topics and migrate the database.
    init = ["sh", "-c", "newsflow topics && newsflow db upgrade"]
    engine("run", "--rm", *locked_down(f"nf-{run}-init", env, data), "newsflow-ingest:latest", *init)

    ports = {service: free_port() for service in SERVICES}
    for service in SERVICES:
        own = {"HEALTH_PORT": str(ports[service])}
        if service == "storage":
            own = {"STORAGE_API_PORT": str(ports[service]), "STORAGE_API_TOKEN": TOKEN}
        name = f"nf-{run}-{service}"
        engine("run", "-d", *locked_down(name, {**env, **own}, data), f"newsflow-{service}:latest")
        containers.append(name)
    for service in SERVICES:
        name = f"nf-{run}-{service}"
        wait_healthy(name, ports[service])
        assert engine("exec", name, "id", "-u").stdout.strip() == "10001"
        write = engine("exec", name, "touch", "/opt/venv/written", check=False)
        assert write.returncode != 0, service
        assert "Read-only file system" in write.stderr, write.stderr
        capabilities = engine("exec", name, "grep", "CapEff", "/proc/1/status").stdout
        assert capabilities.split() == ["CapEff:", "0000000000000000"], capabilities
        if ENGINE == "podman":  # the image's own HEALTHCHECK command passes (docker runs it on its own schedule)
            assert engine("healthcheck", "run", name, check=False).returncode == 0, service

    asyncio.run(push_seed(env))
    api = f"http://127.0.0.1:{ports['storage']}"
    assert httpx.get(f"{api}/articles", timeout=5).status_code == 401  # the token guards the API
    article = stored_article(api)
    assert article["title"].startswith("Estimated One Thousand Failaq al-Rahman")
    assert article["language"] == "en"
    assert article["topics"][0]["code"] == "medtop:16000000"
    # Each stage before storage signs the lineage; storage stores it, once.
    assert [step["stage"] for step in article["lineage"]] == ["ingest", "cleanup", "classify"]
    assert article["revision"] == 1
    assert article["stored_at"]
    # The classify image has no compiler, so CLASSIFY_COMPILE=auto runs the eager model and says so.
    assert "no C++ compiler found" in logs(f"nf-{run}-classify")
