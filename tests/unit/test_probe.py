"""The containers' health probe (`python -m newsflow_probe`) against a real HTTP server on this machine."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from newsflow_cli.local_kafka import free_port
from newsflow_probe import main, probe


class Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        body = b'{"status": "stalled", "problems": ["no batch for 300 s"]}' if self.status != 200 else b"{}"
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    Health.status = 200


def test_a_healthy_service_passes(server: ThreadingHTTPServer) -> None:
    assert probe(server.server_port) == (True, f"http://127.0.0.1:{server.server_port}/health: 200")


def test_an_unhealthy_answer_fails_and_says_why(server: ThreadingHTTPServer) -> None:
    Health.status = 503
    healthy, said = probe(server.server_port)
    assert not healthy
    assert "503" in said
    assert "no batch for 300 s" in said


def test_nothing_listening_fails() -> None:
    healthy, said = probe(free_port(), timeout=1)
    assert not healthy
    assert "refused" in said.lower()


def test_the_port_comes_from_the_variable_named(server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_API_PORT", str(server.server_port))
    monkeypatch.setenv("HEALTH_PORT", str(free_port()))
    assert main(["STORAGE_API_PORT"]) == 0
    assert main([]) == 1  # HEALTH_PORT: nothing listens there
    for not_a_port in ("80; rm -rf /", "²", "0", "70000", "-1"):
        monkeypatch.setenv("HEALTH_PORT", not_a_port)
        assert main([]) == 1
    assert main(["A", "B"]) == 1


def test_run_as_a_module_it_exits_with_the_verdict(server: ThreadingHTTPServer) -> None:
    """As the images' HEALTHCHECK runs it: a process of its own, quick, importing nothing of the services."""
    env = {"HEALTH_PORT": str(server.server_port), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-X", "importtime", "-m", "newsflow_probe"]
    passed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in passed.stderr.splitlines()[1:]}
    assert "newsflow_probe" in imported
    assert not {name for name in imported if name.split(".")[0] in {"newsflow_shared", "pydantic", "faststream"}}
    Health.status = 503
    failed = subprocess.run(command[:1] + command[3:], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert failed.returncode == 1
    assert "503" in failed.stdout
