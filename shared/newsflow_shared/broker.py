"""The one way services build their Kafka broker: idempotent, acks=all, sized for big articles."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka.errors import KafkaConnectionError
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.kafka.publisher.producer import AioKafkaFastProducerImpl
from prometheus_client import CollectorRegistry

from .kafka_security import security_for
from .readable_records import read_every_header_name
from .settings import ServiceSettings
from .tracing import configure, recording
from .unpacking import unpack_within

log = logging.getLogger(__name__)


class _StoppedIfItFailsToStart(AioKafkaFastProducerImpl):
    """FastStream's producer, stopping the aiokafka producer whose start failed: FastStream drops it as it is, and
    aiokafka's finaliser then logged "Unclosed AIOKafkaProducer" as an error at every try while Kafka was away."""

    __slots__ = ()

    async def connect(self, producer: Any, serializer: Any, codec: Any = None) -> None:
        try:
            await super().connect(producer, serializer, codec)
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise


class PatientKafkaBroker(KafkaBroker):
    """A broker that waits for Kafka at start instead of failing.

    A replica that starts while the broker is away (restarted after a crash, scheduled during
    a broker upgrade) would otherwise exit, and ``newsflow run`` or a restart loop would follow.
    A refused login or TLS handshake is not waited for: :func:`~.kafka_clients.wait_for_kafka` said
    why before the start (at the service's start, or storage's before it starts its consumers).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.broker_config.producer = _StoppedIfItFailsToStart(kwargs.get("parser"), kwargs.get("decoder"))

    async def connect(self):  # type: ignore[no-untyped-def]
        delay = 0.5
        while True:
            try:
                return await super().connect()
            except KafkaConnectionError as error:
                # What the try started is let go: where the producer started and the admin client did not, the
                # next try started a second producer beside the first, and kept the admin client unstarted for good
                # (FastStream connects it only once), so that its ping, and /ready, failed while all else worked.
                with contextlib.suppress(Exception):
                    await self.config.disconnect()
                log.warning("Kafka does not answer (%s); trying again in %g s", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


class StoppedMidBatch(logging.Filter):
    """FastStream's record of a batch cancelled by the service's stop, as what it means to an operator.

    At SIGTERM FastStream gives the batch in hand ``graceful_timeout`` to finish, then cancels it and logs the
    cancellation as an error with its traceback. Every rolling update of a busy classify replica would page
    someone for a batch that is simply redelivered: its offsets are not committed and nothing of it was published.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError):
            record.msg = "stopped in the middle of a batch: it is not committed and will be redelivered"
            record.args = ()
            record.exc_info = None
            return _demoted(record, logging.INFO)
        return True


def _demoted(record: logging.LogRecord, level: int) -> bool:
    """``record`` at ``level``, and whether its logger still lets it through there."""
    record.levelno, record.levelname = level, logging.getLevelName(level)
    return logging.getLogger(record.name).isEnabledFor(level)


_TOLD = "_newsflow_told"


def told(error: BaseException) -> None:
    """Mark ``error`` as said by the stage itself (its warning, with the retry's delay), before it is raised again
    for FastStream to rewind the batch: :class:`AlreadyTold` keeps FastStream's traceback of it for DEBUG."""
    with contextlib.suppress(AttributeError, TypeError):  # an exception type that takes no attributes
        setattr(error, _TOLD, True)


class AlreadyTold(logging.Filter):
    """FastStream logs each error a batch handler raises with its traceback. A stage raises one only to rewind a
    batch it failed while Kafka or the database was away, after its own warning: with PostgreSQL down, every retry
    added a 143-line traceback of the refused connection. Those are DEBUG lines now (``LOG_LEVEL=DEBUG`` shows them).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and getattr(record.exc_info[1], _TOLD, False):
            return _demoted(record, logging.DEBUG)
        return True


def make_broker(settings: ServiceSettings, service: str, registry: CollectorRegistry | None = None) -> KafkaBroker:
    """A broker whose sends are acknowledged by every in-sync replica and never duplicated by a producer retry.

    FastStream's Prometheus middleware counts into ``registry`` (the stage's, served at ``/metrics``). Its
    telemetry middleware records a span per batch and per publish, so it is there only when spans are recorded
    (``OTEL_*``): without a tracer it only read every record's trace context and baggage to start spans that record
    nothing (about 15 µs a record), and a stage passes each record's trace context on itself (:meth:`.Emit.following`).
    """
    configure(service)
    read_every_header_name()
    unpack_within(settings.unpacked_batch_limit)
    middlewares: list[Any] = [KafkaTelemetryMiddleware()] if recording() else []
    if registry is not None:
        middlewares.append(KafkaPrometheusMiddleware(registry=registry, app_name=f"newsflow-{service}"))
    logger = logging.getLogger(f"newsflow.{service}.broker")
    for kind in (StoppedMidBatch, AlreadyTold):
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())
    return PatientKafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"newsflow-{service}",
        security=security_for(settings),
        enable_idempotence=True,
        acks="all",
        max_request_size=settings.kafka_max_message_bytes,
        # A little lingering lets a batch's outputs share produce requests; KAFKA_COMPRESSION shrinks them.
        **settings.producer_options(),
        # Time for an in-flight batch to finish and commit on SIGTERM, inside the process's own deadline.
        graceful_timeout=max(1.0, settings.shutdown_timeout_s - 3.0),
        logger=logger,
        log_level=logging.DEBUG,
        middlewares=middlewares,
    )
