"""The one way services build their Kafka broker: idempotent, acks=all, sized for big articles."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry

from .kafka_security import security_for
from .settings import ServiceSettings
from .tracing import configure

log = logging.getLogger(__name__)


class LingeringConsumer(AIOKafkaConsumer):
    """A consumer whose batch, once it has records, waits ``linger_ms`` for the rest of them.

    A stage sends a batch's outputs in one produce request, spread over the topic's partitions by key. Kafka
    answers the next stage's waiting fetch as soon as the first partition has data, so that stage took one batch
    in pieces, and paid each per-batch cost (a transaction, a produce request, an offset commit) several times:
    storage formed batches of 32-51 articles from classify's 64. Waiting only once records have come costs an idle
    consumer nothing, and a busy one a few milliseconds per batch.
    """

    def __init__(self, *topics: str, linger_ms: int = 0, **options: Any) -> None:
        super().__init__(*topics, **options)
        self._linger = linger_ms / 1000

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[Any, Any]]]:
        records = await super().getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)
        count = sum(len(batch) for batch in records.values())
        if not count or not self._linger or (max_records is not None and count >= max_records):
            return records
        await asyncio.sleep(self._linger)
        rest = None if max_records is None else max_records - count
        for partition, batch in (await super().getmany(*partitions, timeout_ms=0, max_records=rest)).items():
            records.setdefault(partition, []).extend(batch)  # a partition's records stay in their order
        return records


class PatientKafkaBroker(KafkaBroker):
    """A broker that waits for Kafka at start instead of failing.

    A replica that starts while the broker is away (restarted after a crash, scheduled during
    a broker upgrade) would otherwise exit, and ``newsflow run`` or a restart loop would follow.
    A refused login or TLS handshake is not waited for: :func:`~.kafka_clients.require_kafka`
    already said why at start, and waiting cannot mend a setting.
    """

    def __init__(self, *args: Any, batch_linger_ms: int = 0, **options: Any) -> None:
        super().__init__(*args, **options)
        self._batch_linger_ms = batch_linger_ms

    async def _connect(self) -> Callable[..., AIOKafkaConsumer]:
        # FastStream builds every subscriber's consumer with the builder its connection leaves in the config.
        await super()._connect()
        config = self.config.broker_config
        config.builder = partial(LingeringConsumer, linger_ms=self._batch_linger_ms, **config.builder.keywords)
        return config.builder

    async def connect(self):  # type: ignore[no-untyped-def]
        delay = 0.5
        while True:
            try:
                return await super().connect()
            except KafkaConnectionError as error:
                log.warning("Kafka does not answer (%s); trying again in %.0fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


def make_broker(settings: ServiceSettings, service: str, registry: CollectorRegistry | None = None) -> KafkaBroker:
    """A broker whose sends are acknowledged by every in-sync replica and never duplicated by a producer retry.

    FastStream's Prometheus middleware counts into ``registry`` (the stage's, served at ``/metrics``); its
    telemetry middleware carries trace context in Kafka headers (spans recorded only when ``OTEL_*`` asks).
    """
    configure(service)
    middlewares = [KafkaTelemetryMiddleware()]
    if registry is not None:
        middlewares.append(KafkaPrometheusMiddleware(registry=registry, app_name=f"newsflow-{service}"))
    return PatientKafkaBroker(
        settings.kafka_bootstrap_servers,
        batch_linger_ms=settings.batch_linger_ms,
        client_id=f"newsflow-{service}",
        security=security_for(settings),
        enable_idempotence=True,
        acks="all",
        max_request_size=settings.kafka_max_message_bytes,
        # A little lingering lets a batch's outputs share produce requests; KAFKA_COMPRESSION shrinks them.
        **settings.producer_options(),
        # Time for an in-flight batch to finish and commit on SIGTERM, inside the process's own deadline.
        graceful_timeout=max(1.0, settings.shutdown_timeout_s - 3.0),
        logger=logging.getLogger(f"newsflow.{service}.broker"),
        log_level=logging.DEBUG,
        middlewares=middlewares,
    )
