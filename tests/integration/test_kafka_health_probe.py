"""Compose's health check of the broker (deploy/compose/kafka-health.sh) against a real broker and what is not one."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from newsflow_cli.local_kafka import free_port

pytestmark = pytest.mark.kafka

PROBE = Path(__file__).parents[2] / "deploy" / "compose" / "kafka-health.sh"


def check(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(PROBE), str(port)], capture_output=True, text=True, timeout=30, check=False)


def test_a_broker_answers_the_probe(kafka_bootstrap: str) -> None:
    port = int(kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])
    passed = check(port)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.stdout.strip() == f"port {port} answers ApiVersions"


def test_nothing_listening_fails() -> None:
    failed = check(free_port())
    assert failed.returncode != 0
    assert "refused" in failed.stderr.lower()


class NotKafka(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # never called: Kafka's binary request is no request line, which it answers itself
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), NotKafka)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()


def test_a_server_that_is_not_kafka_fails_and_says_what_it_answered(http_server: ThreadingHTTPServer) -> None:
    failed = check(http_server.server_port)
    assert failed.returncode == 1
    assert "to ApiVersions: not correlation id 4e460001 and error code 0000" in failed.stdout
    # Its first 10 bytes, in hex: what a person reads in the container's health log to see what holds the port.
    assert re.match(rf"port {http_server.server_port} answered '[0-9a-f]{{20}}' ", failed.stdout), failed.stdout
