"""The one way services build their Kafka broker: idempotent, acks=all, sized for big articles."""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry

from .settings import ServiceSettings
from .tracing import configure


def make_broker(settings: ServiceSettings, service: str, registry: CollectorRegistry | None = None) -> KafkaBroker:
    """A broker whose sends are acknowledged by every in-sync replica and never duplicated by a producer retry.

    FastStream's Prometheus middleware counts into ``registry`` (the stage's, served at ``/metrics``); its
    telemetry middleware carries trace context in Kafka headers (spans recorded only when ``OTEL_*`` asks).
    """
    configure(service)
    middlewares = [KafkaTelemetryMiddleware()]
    if registry is not None:
        middlewares.append(KafkaPrometheusMiddleware(registry=registry, app_name=f"newsflow-{service}"))
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"newsflow-{service}",
        enable_idempotence=True,
        acks="all",
        max_request_size=settings.kafka_max_message_bytes,
        # A little lingering lets a batch's outputs share produce requests.
        linger_ms=5,
        compression_type=None,
        # Time for in-flight batches to finish and commit on SIGTERM.
        graceful_timeout=30.0,
        logger=logging.getLogger(f"newsflow.{service}.broker"),
        log_level=logging.DEBUG,
        middlewares=middlewares,
    )
