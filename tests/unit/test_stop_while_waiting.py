"""A stop asked for while a service still waits for Kafka (or its database) before serving ends it at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from newsflow_cli.local_kafka import free_port


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_sigterm_while_waiting_for_kafka_ends_the_service_at_once(tmp_path: Path, log_format: str) -> None:
    """The waits ran before any handler: as PID 1 in a container SIGTERM was ignored, and `docker compose stop` or a
    rollout sat out the Kafka wait (a minute), then SIGKILL. Here the handler is what ends it, with its own line.

    With ``LOG_FORMAT=json`` every line is a JSON record: these were plain text, the very lines a log shipper needs
    to say why a pod crash-loops."""
    env = {
        **os.environ,
        "LOG_FORMAT": log_format,
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # nothing answers: the start waits
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/news.db",
        "HEALTH_PORT": str(free_port()),
    }
    service = subprocess.Popen(
        [sys.executable, "-m", "newsflow_ingest"], env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert service.stderr is not None
        said = service.stderr.readline()  # its first line: in the Kafka wait, with the handler in place
        assert "does not answer yet" in said, said + service.stderr.read()
        service.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _, stderr = service.communicate(timeout=30)
    finally:
        service.kill()
    assert time.monotonic() - started < 5
    assert service.returncode == 0, stderr[-2000:]
    assert "stopping on SIGTERM before serving" in stderr
    if log_format == "json":
        records = [json.loads(line) for line in (said + stderr).splitlines()]
        assert [record["service"] for record in records] == ["ingest"] * len(records)
        assert "does not answer yet" in records[0]["event"]
        assert records[-1]["event"] == "stopping on SIGTERM before serving"


APP_THAT_GIVES_UP = """
import os, signal
from newsflow_shared import health

def factory():
    async def app(scope, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
                # What liveness does once it has failed for HEALTH_EXIT_AFTER_S.
                health.gave_up.set()
                os.kill(os.getpid(), signal.SIGTERM)
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    return app
"""


def test_a_service_that_stops_itself_for_failing_liveness_exits_1(tmp_path: Path) -> None:
    """uvicorn raised the captured SIGTERM again once stopped: the process died of it (143), where Compose and a
    person reading `newsflow run`'s "exited with" are to see 1, a failure."""
    (tmp_path / "gives_up.py").write_text(APP_THAT_GIVES_UP)
    script = (
        "from newsflow_shared import ServiceSettings\n"
        "from newsflow_shared.service import serve\n"
        "serve('gives_up:factory', ServiceSettings(), kafka_first=False)\n"
    )
    env = {**os.environ, "HEALTH_PORT": str(free_port()), "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/n.db"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr[-2000:]
