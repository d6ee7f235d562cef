"""The ASGI shell every service runs in: the broker, /health and /ready, and uvicorn."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import uvicorn
from faststream.asgi import AsgiFastStream, AsgiResponse, get, make_ping_asgi
from faststream.kafka import KafkaBroker

from .kafka_clients import require_kafka
from .settings import ServiceSettings

Lifespan = Callable[[], AbstractAsyncContextManager[None]]


def service_app(broker: KafkaBroker, lifespan: Lifespan | None = None) -> AsgiFastStream:
    """Wrap ``broker`` for uvicorn: ``/health`` says the process lives, ``/ready`` that Kafka answers."""

    @get
    async def health(scope: object) -> AsgiResponse:
        return AsgiResponse(b"ok", status_code=200)

    return AsgiFastStream(
        broker,
        asgi_routes=[("/health", health), ("/ready", make_ping_asgi(broker, timeout=5.0))],
        lifespan=lifespan,
    )


def serve(app_factory: str, settings: ServiceSettings, *, port: int | None = None) -> None:
    """Run a service's app factory under uvicorn with the settings' host, port and log level, once Kafka answers."""
    require_kafka(settings)
    uvicorn.run(
        app_factory,
        factory=True,
        host=settings.health_host,
        port=port if port is not None else settings.health_port,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep our structlog handlers
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=35,
    )
