"""A client whose start fails is closed by :func:`kafka_clients.connect`, so nothing warns of it later."""

from __future__ import annotations

import gc
import logging
import socket
import warnings

import pytest
from aiokafka.errors import KafkaConnectionError

from newsflow_shared import ServiceSettings, kafka_clients


def _closed_port() -> int:
    # Bound and closed at once: nothing listens there for the test's few seconds.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("build", ["consumer", "producer", "admin"])
async def test_a_client_whose_start_failed_is_closed_and_does_not_warn(build: str) -> None:
    settings = ServiceSettings(kafka_bootstrap_servers=f"127.0.0.1:{_closed_port()}")
    client = getattr(kafka_clients, build)(settings, request_timeout_ms=1000)
    with pytest.raises(KafkaConnectionError):
        await kafka_clients.connect(client, settings)
    assert client._closed  # what aiokafka's own "Unclosed ..." warning reads
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del client
        gc.collect()
    assert not [w for w in caught if "Unclosed" in str(w.message)]


async def test_waiting_for_kafka_says_so_before_it_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service waited a whole minute for an unreachable Kafka without a line."""
    said: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    kafka_clients.log.addHandler(handler)
    monkeypatch.setattr(kafka_clients, "TELL_WAITING_AFTER", 0.2)
    address = f"127.0.0.1:{_closed_port()}"
    try:
        with pytest.raises(TimeoutError, match=f"Kafka at {address} did not answer within 2s"):
            await kafka_clients.wait_for_kafka(address, timeout=2, say_waiting=True)
    finally:
        kafka_clients.log.removeHandler(handler)
    assert said == [f"Kafka at {address} does not answer yet (KafkaConnectionError); waiting up to 2s in all"]
