"""A stop asked for while a service still waits for Kafka (or its database) before serving ends it at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from newsflow_cli.local_kafka import free_port


def test_sigterm_while_waiting_for_kafka_ends_the_service_at_once(tmp_path: Path) -> None:
    """The waits ran before any handler: as PID 1 in a container SIGTERM was ignored, and `docker compose stop` or a
    rollout sat out the Kafka wait (a minute), then SIGKILL. Here the handler is what ends it, with its own line."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # nothing answers: the start waits
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/news.db",
        "HEALTH_PORT": str(free_port()),
    }
    service = subprocess.Popen(
        [sys.executable, "-m", "newsflow_ingest"], env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        time.sleep(8)  # imports done, in the Kafka wait
        assert service.poll() is None, service.stderr.read() if service.stderr else ""
        service.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _, stderr = service.communicate(timeout=30)
    finally:
        service.kill()
    assert time.monotonic() - started < 5
    assert service.returncode == 0, stderr[-2000:]
    assert "stopping on SIGTERM before serving" in stderr
