"""KAFKA_COMPRESSION, KAFKA_LINGER_MS, KAFKA_PRODUCER_BATCH_BYTES and the fetch settings reach every client."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.codec import has_lz4, has_zstd
from pydantic import ValidationError

from newsflow_shared import ServiceSettings, Stage, make_broker


def test_the_defaults_compress_with_lz4_in_batches_of_up_to_a_mebibyte() -> None:
    assert has_lz4(), "cramjam is missing: aiokafka cannot compress with lz4"
    assert has_zstd(), "cramjam is missing: aiokafka cannot compress with zstd"
    options = make_broker(ServiceSettings(), "ingest")._connection_kwargs
    assert options["compression_type"] == "lz4"
    assert options["max_batch_size"] == 1024 * 1024
    assert options["linger_ms"] == 5


def test_the_producer_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_COMPRESSION", "none")
    monkeypatch.setenv("KAFKA_LINGER_MS", "20")
    monkeypatch.setenv("KAFKA_PRODUCER_BATCH_BYTES", "65536")
    options = make_broker(ServiceSettings(), "cleanup")._connection_kwargs
    assert options["compression_type"] is None
    assert options["linger_ms"] == 20
    assert options["max_batch_size"] == 65536
    with pytest.raises(ValidationError):
        ServiceSettings(kafka_compression="brotli")


def test_every_stage_consumer_fetches_with_the_settings() -> None:
    settings = ServiceSettings(kafka_fetch_min_bytes=4096, kafka_fetch_max_wait_ms=1500)
    stage = Stage(make_broker(settings, "storage"), settings, name="storage")
    seen: dict[str, Any] = {}
    subscriber = stage.broker.subscriber

    def spy(*topics: str, **options: Any) -> Any:
        seen.update(options)
        return subscriber(*topics, **options)

    stage.broker.subscriber = spy  # type: ignore[method-assign]

    async def handler(deliveries: list[Any]) -> list[Any]:
        return []

    stage.consume(settings.topic_enriched, handler)
    assert seen["fetch_min_bytes"] == 4096
    assert seen["fetch_max_wait_ms"] == 1500
    assert seen["consumer_timeout_ms"] == 1000  # an idle fetcher wakes once a second, not five times


def test_bootstrap_servers_with_a_port_that_is_no_port_are_refused_by_name() -> None:
    for fine in ("localhost:9092", "a:9092, b:9093", "kafka", "[::1]", "[::1]:9092", "kafka.kafka.svc:65535"):
        assert ServiceSettings(kafka_bootstrap_servers=fine).kafka_bootstrap_servers == fine
    for wrong in ("127.0.0.1:99999", "127.0.0.1:²", "host:0", "host:", ":9092", "a:9092,b:x"):
        with pytest.raises(ValidationError, match="kafka_bootstrap_servers"):
            ServiceSettings(kafka_bootstrap_servers=wrong)
