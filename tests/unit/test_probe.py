"""The containers' health probe (`python -m newsflow_probe`) against a real HTTP server on this machine."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
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


def serve_once(reply: bytes, *, pause: float = 0.0) -> tuple[int, threading.Thread]:
    """A listener that answers one connection with ``reply``, a byte every ``pause`` seconds when ``pause`` is set,
    then closes: what a broken or stuck server does to the probe."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        with listener, listener.accept()[0] as connection:
            connection.recv(4096)
            for byte in [reply[i : i + 1] for i in range(len(reply))] if pause else [reply]:
                time.sleep(pause)
                with contextlib.suppress(OSError):  # the probe gave up and closed: nothing more to send
                    connection.sendall(byte)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def test_an_answer_that_is_not_http_fails_and_shows_it() -> None:
    port, _ = serve_once(b"SSH-2.0-OpenSSH_9.2\r\n")
    healthy, said = probe(port, timeout=2)
    assert not healthy
    assert "not an HTTP answer" in said
    assert "SSH-2.0" in said


def test_a_server_that_trickles_bytes_cannot_stretch_the_time_out() -> None:
    """The time-out is for the whole answer: one byte every 0.2 s would keep a per-read time-out waiting for ever."""
    port, _ = serve_once(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 100, pause=0.2)
    started = time.monotonic()
    healthy, said = probe(port, timeout=1)
    assert not healthy
    assert "within 1 s" in said
    assert time.monotonic() - started < 1.5


def test_a_server_that_accepts_and_says_nothing_fails_in_time() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        started = time.monotonic()
        healthy, said = probe(listener.getsockname()[1], timeout=0.5)
    assert not healthy
    assert "no whole answer within 0.5 s" in said
    assert time.monotonic() - started < 1.0


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
    # Nor urllib's client: with http.client and email a probe took 66 ms of CPU, 28 without (Python's own start ~20).
    assert not {name for name in imported if name.split(".")[0] in {"urllib", "http", "email", "ssl"}}
    Health.status = 503
    failed = subprocess.run(command[:1] + command[3:], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert failed.returncode == 1
    assert "503" in failed.stdout
