"""Ports for the local stack's listeners come from below the kernel's range for outgoing connections.

A port the kernel picked (a bind to port 0) comes from the range it also gives outgoing connections: between the
check and the service binding it, one of the pipeline's own Kafka connections took it once, and `make demo` failed
("address already in use" for cleanup's health port).
"""

from __future__ import annotations

import random
import socket

import pytest

from newsflow_cli.local_kafka import _ephemeral_low, _listening_ports, free_port


def test_ports_are_below_the_outgoing_range_free_and_never_handed_out_twice() -> None:
    start, stop = _listening_ports()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(start <= port < stop for port in ports)
    assert 8080 not in range(start, stop)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", ports[0]))  # each is free to listen on
        listening.listen()
        with socket.socket() as outgoing:
            outgoing.connect(("127.0.0.1", ports[0]))
            if stop <= _ephemeral_low():  # the usual ranges: where outgoing connections take their own port is above
                assert outgoing.getsockname()[1] >= stop


@pytest.mark.parametrize(
    ("outgoing_from", "expected"),
    [
        (32_768, (14_000, 30_000)),
        (49_152, (14_000, 30_000)),
        (24_000, (10_000, 24_000)),
        (10_000, (20_000, 30_000)),
        (1_024, (20_000, 30_000)),
    ],
)
def test_the_ports_looked_at_avoid_well_known_ones_and_node_ports(monkeypatch, outgoing_from, expected) -> None:
    monkeypatch.setattr("newsflow_cli.local_kafka._ephemeral_low", lambda: outgoing_from)
    assert _listening_ports() == expected


def test_a_port_someone_listens_on_is_not_handed_out(monkeypatch) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    taken.listen()
    try:
        offered, anything = iter([port, port]), random.Random(7).randrange  # the taken one twice, then anything
        monkeypatch.setattr(
            "newsflow_cli.local_kafka.random.randrange",
            lambda start, stop: next(offered, None) or anything(start, stop),
        )
        assert free_port() != port
    finally:
        taken.close()
