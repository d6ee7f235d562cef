"""The ASGI shell every service runs in: the broker, /health and /ready, and uvicorn."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import FrameType

import uvicorn
from faststream.asgi import AsgiFastStream, AsgiResponse, get, make_ping_asgi
from faststream.kafka import KafkaBroker

from .kafka_clients import require_kafka
from .lifecycle import stay_with_parent
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


class _Server(uvicorn.Server):
    """uvicorn's server with a deadline: after SIGTERM the process exits within ``SHUTDOWN_TIMEOUT_S``, busy or not.

    A batch in a worker thread (inference, a big page) cannot be cancelled, and Python waits for
    such threads at exit. Its offsets are not committed yet, so leaving it is safe: the batch is
    redelivered to whichever replica takes the partition.
    """

    def __init__(self, config: uvicorn.Config, deadline: float) -> None:
        super().__init__(config)
        self.deadline = deadline
        self._armed = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self._armed:
            self._armed = True
            timer = threading.Timer(self.deadline, _exit_now, args=(self.deadline,))
            timer.daemon = True
            timer.start()
        super().handle_exit(sig, frame)


def _exit_now(deadline: float) -> None:
    logging.getLogger(__name__).warning(
        "still busy %.0fs after the stop signal: exiting now; the uncommitted batch will be redelivered", deadline
    )
    logging.shutdown()
    os._exit(0)


def serve(app_factory: str, settings: ServiceSettings, *, host: str | None = None, port: int | None = None) -> None:
    """Run a service's app factory under uvicorn with the settings' host, port and log level."""
    stay_with_parent()
    require_kafka(settings)
    config = uvicorn.Config(
        app_factory,
        factory=True,
        host=host or settings.health_host,
        port=port if port is not None else settings.health_port,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep our structlog handlers
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    _Server(config, settings.shutdown_timeout_s).run()
