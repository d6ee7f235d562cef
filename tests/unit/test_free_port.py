"""Ports for the local stack's listeners come from below the kernel's range for outgoing connections.

A port the kernel picked (a bind to port 0) comes from the range it also gives outgoing connections: between the
check and the service binding it, one of the pipeline's own Kafka connections took it once, and `make demo` failed
("address already in use" for cleanup's health port).
"""

from __future__ import annotations

import socket
from pathlib import Path

from newsflow_cli.local_kafka import _ephemeral_low, free_port


def test_ports_are_below_the_outgoing_range_free_and_never_handed_out_twice() -> None:
    low = _ephemeral_low()
    if Path("/proc/sys/net/ipv4/ip_local_port_range").exists():
        assert low == int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]) or low == 32_768
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(1024 <= port < low for port in ports)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", ports[0]))  # each is free to listen on
        listening.listen()
        with socket.socket() as outgoing:
            outgoing.connect(("127.0.0.1", ports[0]))
            assert outgoing.getsockname()[1] >= low  # where an outgoing connection's own port comes from


def test_a_port_someone_listens_on_is_not_handed_out(monkeypatch) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    taken.listen()
    try:
        sequence = iter([port, port, port + 1 if port + 1 < 65_536 else port - 1])
        monkeypatch.setattr("newsflow_cli.local_kafka.random.randrange", lambda start, stop: next(sequence))
        monkeypatch.setattr("newsflow_cli.local_kafka._ephemeral_low", lambda: 65_535)
        assert free_port() != port
    finally:
        taken.close()
