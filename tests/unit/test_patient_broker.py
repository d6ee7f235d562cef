"""The services' broker waits for Kafka at start (shared/newsflow_shared/broker.py): each try lets go of what it
started, so the try that succeeds starts everything anew."""

from __future__ import annotations

from typing import Any

import aiokafka
import aiokafka.admin.client
import pytest
from aiokafka.errors import KafkaConnectionError

from newsflow_shared import broker as broker_module
from newsflow_shared.broker import PatientKafkaBroker


async def test_a_try_that_failed_half_way_leaves_nothing_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kafka went away between the producer's start and the admin client's: the next try started a second producer
    beside the first, and FastStream never started the admin client again, so every ping (and /ready) failed."""
    events: list[str] = []
    admin_starts = iter([KafkaConnectionError("away"), None])

    async def producer_start(self: Any) -> None:
        events.append(f"producer {id(self)} started")

    async def producer_stop(self: Any) -> None:
        events.append(f"producer {id(self)} stopped")

    async def admin_start(self: Any) -> None:
        if (failure := next(admin_starts)) is not None:
            events.append("admin failed")
            raise failure
        events.append("admin started")

    async def admin_close(self: Any) -> None:
        events.append("admin closed")

    async def no_wait(seconds: float) -> None:
        return None

    monkeypatch.setattr(aiokafka.AIOKafkaProducer, "start", producer_start)
    monkeypatch.setattr(aiokafka.AIOKafkaProducer, "stop", producer_stop)
    monkeypatch.setattr(aiokafka.admin.client.AIOKafkaAdminClient, "start", admin_start)
    monkeypatch.setattr(aiokafka.admin.client.AIOKafkaAdminClient, "close", admin_close)
    monkeypatch.setattr(broker_module.asyncio, "sleep", no_wait)
    broker = PatientKafkaBroker("127.0.0.1:9")
    await broker.connect()
    first, second = (e.split()[1] for e in events if e.startswith("producer") and e.endswith("started"))
    assert events == [
        f"producer {first} started",
        "admin failed",
        "admin closed",
        f"producer {first} stopped",
        f"producer {second} started",
        "admin started",
    ]
    assert first != second


async def test_a_producer_whose_start_failed_is_stopped_not_left_to_its_finaliser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FastStream drops a producer whose start failed as it is: aiokafka's finaliser then logged "Unclosed
    AIOKafkaProducer" as an error at every try while Kafka was away."""
    starts = iter([KafkaConnectionError("away"), KafkaConnectionError("away"), None])
    events: list[str] = []

    async def producer_start(self: Any) -> None:
        if (failure := next(starts)) is not None:
            events.append(f"producer {id(self)} failed")
            raise failure
        events.append(f"producer {id(self)} started")

    async def producer_stop(self: Any) -> None:
        events.append(f"producer {id(self)} stopped")

    async def admin_start(self: Any) -> None:
        return None

    async def no_wait(seconds: float) -> None:
        return None

    monkeypatch.setattr(aiokafka.AIOKafkaProducer, "start", producer_start)
    monkeypatch.setattr(aiokafka.AIOKafkaProducer, "stop", producer_stop)
    monkeypatch.setattr(aiokafka.admin.client.AIOKafkaAdminClient, "start", admin_start)
    monkeypatch.setattr(broker_module.asyncio, "sleep", no_wait)
    await PatientKafkaBroker("127.0.0.1:9").connect()
    first, second, third = (e.split()[1] for e in events if not e.endswith("stopped"))
    assert events == [
        f"producer {first} failed",
        f"producer {first} stopped",
        f"producer {second} failed",
        f"producer {second} stopped",
        f"producer {third} started",
    ]
