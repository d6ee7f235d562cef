"""docker-compose.yml as users run it: `docker compose up`, articles pushed from the host, stored and served.

The real Docker Compose (v5) talks to the container engine's Docker API: Docker's, or Podman's where there is no
Docker daemon (`podman system service`). apache/kafka and postgres are the real images where they can be pulled;
where no registry answers, the local stand-ins of deploy/images/stand-ins.sh, through KAFKA_IMAGE and POSTGRES_IMAGE.
Podman runs healthchecks from systemd timers; on a machine without systemd the test runs them itself every few
seconds, as those timers would. Without a Docker Compose (deploy/compose/get-compose.sh builds one where Go 1.26.8
or later is installed) the tests are skipped before anything is built.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
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

from .test_images import ENGINE, ROOT, SERVICES, build_images, engine

TOKEN = "compose-test-token-0123"
# What `make demo` stores of samples/ (the rest is dead-lettered or skipped): the same here, through Compose.
STORED_FROM_SAMPLES = 12

pytestmark = [
    pytest.mark.images,
    pytest.mark.slow,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(ENGINE is None, reason="no container engine: neither podman nor a docker daemon that answers"),
]


@pytest.fixture(scope="module")
def compose() -> list[str]:
    """The Docker Compose command, found (or built) first, so that a machine without one skips before any build."""
    result = subprocess.run(
        [str(ROOT / "deploy/compose/get-compose.sh")], capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0:
        pytest.skip(f"no Docker Compose here: {result.stderr.strip()[-500:]}")
    return result.stdout.split()


@pytest.fixture(scope="module")
def docker_host(compose: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """DOCKER_HOST for Compose: Podman's Docker API on a socket of the test's own, or Docker's as it is."""
    if ENGINE != "podman":
        yield os.environ.get("DOCKER_HOST")
        return
    socket = tmp_path_factory.mktemp("podman") / "podman.sock"
    service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{socket}"])
    try:
        deadline = time.monotonic() + 30
        while not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert socket.exists(), "podman system service did not open its socket"
        yield f"unix://{socket}"
    finally:
        service.terminate()
        service.wait(timeout=30)


REAL_IMAGES = {"KAFKA_IMAGE": "docker.io/apache/kafka:4.1.1", "POSTGRES_IMAGE": "docker.io/library/postgres:17"}


@pytest.fixture(scope="module")
def images(compose: list[str]) -> dict[str, str]:
    """Our four images, built (or found in the build cache) as a user would, and the Kafka and PostgreSQL images:
    the real ones where they can be pulled, else the stand-ins."""
    build_images()
    pulled = [engine("pull", "-q", image, check=False, timeout=900).returncode == 0 for image in REAL_IMAGES.values()]
    if all(pulled):
        print("compose: the real apache/kafka and postgres images")
        return REAL_IMAGES
    env = {**os.environ, "CONTAINER_ENGINE": str(ENGINE)}
    made = subprocess.run([str(ROOT / "deploy/images/stand-ins.sh")], capture_output=True, text=True, env=env)
    assert made.returncode == 0, made.stderr[-5000:]
    exports = dict(line.removeprefix("export ").split("=", 1) for line in made.stdout.splitlines())
    print(f"compose: no registry answers; the stand-ins {exports}")
    return exports


def run_healthchecks_while(project: str, stop: threading.Event) -> None:
    """What Podman's systemd timers do where there is no systemd: run each container's healthcheck every 5 s
    (the services' own interval is 10 s, Kafka's 5 s). A failed round is told, not the end of the rounds."""
    while not stop.wait(5):
        try:
            listed = ["ps", "--filter", f"label=com.docker.compose.project={project}", "--format", "{{.Names}}"]
            for name in engine(*listed, check=False).stdout.split():
                engine("healthcheck", "run", name, check=False, timeout=60)
        except (subprocess.SubprocessError, OSError) as error:
            print(f"compose: a round of healthchecks failed: {error}")


class Stack:
    """One Compose project of its own (name, ports, volumes), taken down with its volumes at the end."""

    def __init__(self, compose: list[str], docker_host: str | None, images: dict[str, str], files: list[str]) -> None:
        self.project = f"nftest-{uuid.uuid4().hex[:8]}"
        self.kafka_port = free_port()
        while (api_port := free_port()) == self.kafka_port:
            pass
        self.api_port = api_port
        self.env = {**os.environ, **images, "STORAGE_API_TOKEN": TOKEN}
        self.env |= {"KAFKA_HOST_PORT": str(self.kafka_port), "STORAGE_API_HOST_PORTS": str(self.api_port)}
        if docker_host:
            self.env["DOCKER_HOST"] = docker_host
        self.command = [*compose, "--project-name", self.project, "--project-directory", str(ROOT)]
        self.command += [arg for file in files for arg in ("-f", str(ROOT / file))]
        self.api = f"http://127.0.0.1:{self.api_port}"

    def __call__(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self.command, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"compose {' '.join(args)}: {result.stderr[-4000:]}\n{self.logs()}"
        return result

    def logs(self) -> str:
        result = subprocess.run([*self.command, "logs", "--tail", "30"], env=self.env, capture_output=True, text=True)
        return result.stdout[-8000:]

    def starts(self) -> dict[str, str]:
        """Each of our services' containers with its restart count and the time it last started."""
        found = {}
        for service in SERVICES:
            [container] = self("ps", "--quiet", service).stdout.split()
            found[service] = engine("inspect", "--format", "{{.RestartCount}} {{.State.StartedAt}}", container).stdout
        return found

    def wait_healthy(self, service: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while (health := self("ps", "--format", "{{.Health}}", service).stdout.strip()) != "healthy":
            assert time.monotonic() < deadline, f"{service} is {health!r} after {timeout} s\n{self.logs()}"
            time.sleep(2)

    def stored(self, at_least: int, timeout: float = 300) -> int:
        """Wait until storage's API counts ``at_least`` articles; the count then."""
        deadline, total = time.monotonic() + timeout, -1
        while time.monotonic() < deadline:
            stats = httpx.get(f"{self.api}/stats", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
            assert stats.status_code == 200, stats.text
            total = stats.json()["total"]
            if total >= at_least:
                time.sleep(5)  # anything more would have arrived by now: it would be stored twice
                return httpx.get(f"{self.api}/stats", headers={"Authorization": f"Bearer {TOKEN}"}).json()["total"]
            time.sleep(2)
        raise AssertionError(f"{total} stored after {timeout} s, not {at_least}\n{self.logs()}")


@pytest.fixture
def stack(
    compose: list[str], docker_host: str | None, images: dict[str, str], request: pytest.FixtureRequest
) -> Iterator[Stack]:
    stack = Stack(compose, docker_host, images, request.param)
    stop = threading.Event()
    ticker = None
    if ENGINE == "podman" and not Path("/run/systemd/system").exists():
        ticker = threading.Thread(target=run_healthchecks_while, args=(stack.project, stop), daemon=True)
        ticker.start()
    try:
        yield stack
    finally:
        stop.set()
        if ticker:
            ticker.join(timeout=120)
        down = subprocess.run([*stack.command, "down", "--volumes", "--timeout", "20"], env=stack.env, text=True)
        assert down.returncode == 0, f"compose down left {stack.project}'s containers or volumes behind"


async def push_files(env: dict[str, str], paths: list[Path]) -> None:
    settings = ServiceSettings(**{key.lower(): value for key, value in env.items()})
    async with producer(settings) as client:
        summary = await push(client, settings, list(read_inputs([str(path) for path in paths])))
    assert not summary.failed


@pytest.mark.parametrize("stack", [["docker-compose.yml"]], indirect=True)
def test_compose_up_runs_the_pipeline_and_survives_a_broker_restart(stack: Stack) -> None:
    stack("up", "--detach", "--wait", "--wait-timeout", "600")
    listed = stack("ps", "--all", "--format", "{{.Service}} {{.State}} {{.Health}}").stdout
    for service in SERVICES:
        assert f"{service} running healthy" in listed, listed
    assert "topic-init exited" in listed, listed

    # Pushed as the README's quick start does for a machine with Docker alone: the CLI in the ingest image.
    samples = f"{ROOT / 'samples'}:/samples:ro"
    stack("run", "--rm", "--no-deps", "--volume", samples, "topic-init", "newsflow", "push", "/samples")
    client = {"KAFKA_BOOTSTRAP_SERVERS": f"localhost:{stack.kafka_port}"}
    assert httpx.get(f"{stack.api}/articles", timeout=10).status_code == 401  # the token guards the API
    assert stack.stored(STORED_FROM_SAMPLES) == STORED_FROM_SAMPLES

    # The broker restarts on its volume (formatted already) and the services carry on without a restart of their own.
    before = stack.starts()
    stack("restart", "--no-deps", "kafka")  # Compose restarts the services that depend on it too, unless told not to
    # Not `up --wait` again: on Podman a second `up` recreates every container (see the README).
    stack.wait_healthy("kafka")
    seed = ROOT / "samples" / "seed-article.txt"
    changed = Path(stack.env.get("TMPDIR", "/tmp")) / f"{stack.project}-after-restart.txt"
    changed.write_text("After the restart. " + seed.read_text())
    try:
        asyncio.run(push_files(client, [changed]))
        assert stack.stored(STORED_FROM_SAMPLES + 1) == STORED_FROM_SAMPLES + 1
    finally:
        changed.unlink()
    assert stack.starts() == before, "a service restarted while the broker did"


@pytest.mark.parametrize("stack", [["docker-compose.yml", "deploy/compose/secure.yml"]], indirect=True)
def test_the_secure_override_runs_kafka_with_sasl_ssl(stack: Stack, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"  # a folder of the test's own: a developer's deploy/compose/secrets stays as it is
    made = subprocess.run(
        [str(ROOT / "deploy/compose/secure-certs.sh"), str(secrets)], capture_output=True, text=True, check=False
    )
    assert made.returncode == 0, made.stderr
    stack.env["NEWSFLOW_SECRETS_DIR"] = str(secrets)
    stack("up", "--detach", "--wait", "--wait-timeout", "600")

    client = {
        "KAFKA_BOOTSTRAP_SERVERS": f"localhost:{stack.kafka_port}",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": "newsflow",
        "KAFKA_SASL_PASSWORD_FILE": str(secrets / "newsflow.password"),
        "KAFKA_SSL_CA_FILE": str(secrets / "ca.pem"),
    }
    asyncio.run(push_files(client, [ROOT / "samples"]))
    assert stack.stored(STORED_FROM_SAMPLES) == STORED_FROM_SAMPLES
    # What the host's clients reach is TLS with the certificate our CA signed for localhost.
    verify = ["-CAfile", str(secrets / "ca.pem"), "-verify_hostname", "localhost", "-verify_return_error", "-brief"]
    handshake = subprocess.run(
        [shutil.which("openssl") or "openssl", "s_client", "-connect", f"127.0.0.1:{stack.kafka_port}", *verify],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert handshake.returncode == 0, handshake.stderr
    assert "Verification: OK" in handshake.stderr, handshake.stderr
