"""The health probe asks where the service listens (HEALTH_HOST, STORAGE_API_HOST), not always 127.0.0.1: with
HEALTH_HOST=:: (asyncio's listener there takes IPv6 alone) or one interface's address, every probe failed for ever."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from newsflow_cli.local_kafka import free_port
from newsflow_probe import connect_hosts, main, probe


class _Server:
    """A /health server on one address only, listening as asyncio's create_server (uvicorn's) does: an IPv6
    socket for IPv6 alone (``create_server`` sets IPV6_V6ONLY without ``dualstack_ipv6``)."""

    def __init__(self, host: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self.listener = socket.create_server((host, 0), family=family, dualstack_ipv6=False)
        except OSError as error:  # no IPv6 on this machine, or no such address here
            pytest.skip(f"cannot listen on {host}: {error}")
        self.port: int = self.listener.getsockname()[1]
        self.asked = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed: the test is over
                return
            with connection:
                connection.recv(4096)
                self.asked += 1
                connection.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    def close(self) -> None:
        with contextlib.suppress(OSError):  # wakes the accept(), which close() alone leaves listening
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


@pytest.fixture
def listening() -> Iterator[list[_Server]]:
    servers: list[_Server] = []
    yield servers
    for server in servers:
        server.close()


def serve_on(servers: list[_Server], host: str) -> _Server:
    server = _Server(host)
    servers.append(server)
    return server


def test_a_wildcard_is_this_machine_and_an_address_is_itself() -> None:
    assert connect_hosts("0.0.0.0") == ["127.0.0.1"]
    assert connect_hosts(" 0.0.0.0 ") == ["127.0.0.1"]  # the services' settings strip it too
    for wildcard in ("::", "::0", "0:0:0:0:0:0:0:0"):
        assert connect_hosts(wildcard) == ["::1", "127.0.0.1"]
    for specific in ("::1", "10.1.2.3", "fd00::2", "storage.internal", "localhost"):
        assert connect_hosts(specific) == [specific]


def test_health_host_ipv6_wildcard_asks_ipv6_loopback(
    listening: list[_Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """HEALTH_HOST=::: the service listens on IPv6 alone, where 127.0.0.1 reaches nothing."""
    server = serve_on(listening, "::")
    monkeypatch.setenv("HEALTH_HOST", "::")
    monkeypatch.setenv("HEALTH_PORT", str(server.port))
    assert main([]) == 0
    assert server.asked == 1
    assert probe(server.port, host="::") == (True, f"http://[::1]:{server.port}/health: 200")


def test_a_server_on_ipv6_loopback_only_passes(listening: list[_Server], monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve_on(listening, "::1")
    monkeypatch.setenv("HEALTH_HOST", "::1")
    monkeypatch.setenv("HEALTH_PORT", str(server.port))
    assert main([]) == 0
    # The storage API's probe reads STORAGE_API_HOST beside STORAGE_API_PORT.
    monkeypatch.delenv("HEALTH_HOST")
    monkeypatch.setenv("STORAGE_API_HOST", "::1")
    monkeypatch.setenv("STORAGE_API_PORT", str(server.port))
    assert main(["STORAGE_API_PORT"]) == 0
    assert server.asked == 2


def test_a_server_on_one_specific_address_passes(listening: list[_Server], monkeypatch: pytest.MonkeyPatch) -> None:
    """One interface's address: 127.0.0.2 is a loopback address of its own on Linux, where 127.0.0.1 reaches
    nothing on that port."""
    server = serve_on(listening, "127.0.0.2")
    monkeypatch.setenv("HEALTH_HOST", "127.0.0.2")
    monkeypatch.setenv("HEALTH_PORT", str(server.port))
    assert main([]) == 0
    monkeypatch.setenv("STORAGE_API_HOST", "127.0.0.2")
    monkeypatch.setenv("STORAGE_API_PORT", str(server.port))
    assert main(["STORAGE_API_PORT"]) == 0
    assert server.asked == 2


def test_the_ipv6_wildcard_falls_back_to_ipv4_loopback(listening: list[_Server]) -> None:
    """Where nothing answers on ::1, 127.0.0.1 is asked next."""
    server = serve_on(listening, "127.0.0.1")
    healthy, said = probe(server.port, host="::", timeout=2)
    assert healthy, said
    assert said == f"http://127.0.0.1:{server.port}/health: 200"


def test_without_health_host_127_0_0_1_is_asked(listening: list[_Server], monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve_on(listening, "127.0.0.1")
    for name in ("HEALTH_HOST", "STORAGE_API_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HEALTH_PORT", str(server.port))
    monkeypatch.setenv("STORAGE_API_PORT", str(server.port))
    assert main([]) == 0
    assert main(["STORAGE_API_PORT"]) == 0
    assert server.asked == 2


def test_an_empty_host_is_not_a_host(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The service refuses an empty HEALTH_HOST at its start: nothing listens, and the probe says which variable."""
    monkeypatch.setenv("HEALTH_HOST", "  ")
    assert main([]) == 1
    assert "HEALTH_HOST='  ' is not a host" in capsys.readouterr().out


def test_nothing_on_either_loopback_names_both() -> None:
    port = free_port()
    healthy, said = probe(port, host="::", timeout=1)
    assert not healthy
    assert f"http://[::1]:{port}/health" in said
    assert f"http://127.0.0.1:{port}/health" in said


def test_run_as_a_module_it_asks_health_host(listening: list[_Server]) -> None:
    """As the images' HEALTHCHECK runs it, with the container's own HEALTH_HOST."""
    server = serve_on(listening, "::")
    env = {"HEALTH_HOST": "::", "HEALTH_PORT": str(server.port), "PATH": "/usr/bin:/bin"}
    passed = subprocess.run(
        [sys.executable, "-m", "newsflow_probe"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert f"http://[::1]:{server.port}/health: 200" in passed.stdout
