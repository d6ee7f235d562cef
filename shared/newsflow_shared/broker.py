"""The one way services build their Kafka broker: idempotent, acks=all, sized for big articles."""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker

from .kafka_security import security_for
from .settings import ServiceSettings


def make_broker(settings: ServiceSettings, service: str) -> KafkaBroker:
    """A broker whose sends are acknowledged by every in-sync replica and never duplicated by a producer retry."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"newsflow-{service}",
        security=security_for(settings),
        enable_idempotence=True,
        acks="all",
        max_request_size=settings.kafka_max_message_bytes,
        # A little lingering lets a batch's outputs share produce requests.
        linger_ms=5,
        compression_type=None,
        # Time for an in-flight batch to finish and commit on SIGTERM, inside the process's own deadline.
        graceful_timeout=max(1.0, settings.shutdown_timeout_s - 3.0),
        logger=logging.getLogger(f"newsflow.{service}.broker"),
        log_level=logging.DEBUG,
    )
