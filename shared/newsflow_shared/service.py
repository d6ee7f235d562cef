"""The ASGI shell every service runs in: the broker, /health, /ready, /metrics, and uvicorn.

``/health`` is liveness and ``/ready`` readiness, with the meaning written down in :mod:`.health`; both answer
JSON with the problems found and the lag per partition. ``/metrics`` is the Prometheus exposition of the stage's
registry: FastStream's Kafka middleware metrics and Newsflow's own (:mod:`.metrics`), the lag read fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import json
import logging
import math
import os
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from types import FrameType

import uvicorn
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .db import require_database
from .health import StageWatch, Verdict, gave_up, watch_of
from .heap import freeze_long_lived
from .kafka_clients import require_kafka
from .lifecycle import stay_with_parent
from .logs import configure_logging, say_at_start
from .settings import EXIT_CONFIG, ServiceSettings
from .tracing import refuse_unusable_exporter

Lifespan = Callable[[], AbstractAsyncContextManager[None]]


def service_app(broker: KafkaBroker, lifespan: Lifespan | None = None) -> AsgiFastStream:
    """Wrap ``broker`` (the one a :class:`~.stage.Stage` consumes with) for uvicorn, with its probes and metrics.

    What ``lifespan`` loads at start-up (a model, a word list) is frozen out of the garbage collector's passes
    once it has run (:mod:`.heap`)."""
    watch = watch_of(broker)
    if watch is None:
        raise ValueError("service_app wants the broker of a Stage: it reads the stage's health and metrics")

    @get(include_in_schema=False)
    async def health(scope: object) -> AsgiResponse:
        return _verdict_response(await watch.liveness())

    @get(include_in_schema=False)
    async def ready(scope: object) -> AsgiResponse:
        return _verdict_response(await watch.readiness())

    @get(include_in_schema=False)
    async def metrics(scope: object) -> AsgiResponse:
        body, content_type = await exposition(watch)
        return AsgiResponse(body, status_code=200, headers={"content-type": content_type})

    return AsgiFastStream(
        broker,
        asgi_routes=[("/health", health), ("/ready", ready), ("/metrics", metrics)],
        lifespan=_frozen_after(lifespan),
        # Through the service's own handler: FastStream's default logger has a handler of its own, which wrote its
        # "app starting" lines in colour and not as JSON under LOG_FORMAT=json.
        logger=logging.getLogger("newsflow.app"),
    )


def _frozen_after(lifespan: Lifespan | None) -> Lifespan:
    """``lifespan``, with what the process holds once it has started frozen out of the collector's passes."""

    @contextlib.asynccontextmanager
    async def started() -> AsyncIterator[None]:
        async with lifespan() if lifespan is not None else contextlib.nullcontext():
            freeze_long_lived()
            yield

    return started


async def exposition(watch: StageWatch) -> tuple[bytes, str]:
    """The stage's registry in Prometheus' text format, with the lag read just now."""
    await watch.refresh_lag()
    return generate_latest(watch.metrics.registry), CONTENT_TYPE_LATEST


def _verdict_response(verdict: Verdict) -> AsgiResponse:
    return AsgiResponse(
        json.dumps(verdict.as_json()).encode(),
        status_code=200 if verdict.ok else 503,
        headers={"content-type": "application/json"},
    )


_TICK_SECONDS = 1.0


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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_asked = asyncio.Event()

    async def main_loop(self) -> None:
        """uvicorn's loop, woken by the stop signal itself rather than by looking for it ten times a second.

        uvicorn's own loop sleeps 0.1 s between looks at ``should_exit``: ~2.5 ms of CPU a second in every idle
        replica. Here the signal handler wakes this loop at once, and the tick that refreshes the Date header (and
        notices a ``should_exit`` set any other way) comes once a second, as uvicorn's header refresh does.
        """
        self._loop = asyncio.get_running_loop()
        # on_tick refreshes the Date header when its counter of tenths is a whole second: every tick here is one.
        should_exit = await self.on_tick(0)
        while not should_exit:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_asked.wait(), _TICK_SECONDS)
            should_exit = await self.on_tick(0)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self._armed:
            self._armed = True
            timer = threading.Timer(self.deadline, _exit_now, args=(self.deadline,))
            timer.daemon = True
            timer.start()
            _arm_backstop(self.deadline + 1)
        super().handle_exit(sig, frame)
        if gave_up.is_set():
            # The service stopped itself (liveness failing): uvicorn would raise the captured SIGTERM again once
            # stopped, and the process then died of it (143), where it is to exit 1.
            self._captured_signals.clear()
        if self._loop is not None:
            # A Python signal handler does not wake a loop waiting in epoll (PEP 475 retries the call); the loop's
            # own wake-up pipe does.
            self._loop.call_soon_threadsafe(self._stop_asked.set)


def _arm_backstop(seconds: float) -> None:
    """End the process in ``seconds`` whatever state it is in, saying where each thread was.

    The exit timer is Python: it cannot run while the interpreter finalises or a C call holds the GIL.
    faulthandler's watchdog is a C thread that needs neither; it writes every thread's stack to stderr and calls
    ``_exit(1)``. Not SIGALRM's default action, as before: in a container the service is PID 1, and the kernel
    drops a signal that PID 1 has no handler for, so that alarm ended nothing there.
    """
    try:
        faulthandler.dump_traceback_later(seconds, exit=True, file=2)
    except (OSError, ValueError):  # no stderr to write to: the alarm, which still works outside a container
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(math.ceil(seconds))


_LAST_WORD_SECONDS = 0.5


def _exit_now(deadline: float) -> None:
    """Say why, then leave at once, even when the saying cannot finish.

    The log's handler has a lock, and the main thread may hold it while it writes something long: a traceback
    rendered with rich held it for seconds once, and this exit waited until SIGALRM's backstop ended the process
    after the deadline. So the last word is said from a thread of its own, for at most half a second.
    """
    last_word = threading.Thread(target=_say_still_busy, args=(deadline,), daemon=True)
    last_word.start()
    last_word.join(_LAST_WORD_SECONDS)
    os._exit(1 if gave_up.is_set() else 0)


def _say_still_busy(deadline: float) -> None:
    logging.getLogger(__name__).warning(
        "still busy %.0fs after the stop signal: exiting now; the uncommitted batch will be redelivered", deadline
    )
    logging.shutdown()


def require_address(host: str, port: int, names: tuple[str, str]) -> None:
    """Exit (78) naming the variables where the service cannot listen: tried before the waits for Kafka and the
    database, where a mistyped host ("locahost") or a port in use showed only once they were over, as exit 3 (what
    `newsflow run` reads as Kafka unreachable) and uvicorn's "Name or service not known", no variable named."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        # As asyncio's create_server (uvicorn's) binds: every address, an IPv6 one alone (V6ONLY, so "::" does not
        # clash with an IPv4 listener), a family this machine cannot make a socket of left out.
        bound = 0
        for family, kind, protocol, _, address in addresses:
            try:
                trial = socket.socket(family, kind, protocol)
            except OSError:
                continue
            with trial:
                trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    trial.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                trial.bind(address)
                bound += 1
        if not bound:
            raise OSError(f"no address of {host!r} can be listened on here")
    except (OSError, UnicodeError) as error:  # socket.gaierror too; UnicodeError: a name part over 63 characters
        reason = getattr(error, "strerror", None) or str(error)
        say_at_start(f"{names[0]}={host} {names[1]}={port}: cannot listen there: {reason}")
        raise SystemExit(EXIT_CONFIG) from None


def _stop_before_serving(signum: int, _frame: FrameType | None) -> None:
    say_at_start(f"stopping on {signal.Signals(signum).name} before serving", error=False)
    os._exit(0)  # mid-wait in asyncio.run: nothing consumed, nothing to commit or close


def serve(
    app_factory: str,
    settings: ServiceSettings,
    *,
    host: str | None = None,
    port: int | None = None,
    address_names: tuple[str, str] = ("HEALTH_HOST", "HEALTH_PORT"),
    kafka_first: bool = True,
) -> None:
    """Run a service's app factory under uvicorn with the settings' host, port and log level; first, with
    ``kafka_first``, wait for Kafka and the topics, or exit saying why (storage waits in the app instead: its API
    serves what is stored while Kafka is away). ``address_names``: the variables ``host`` and ``port`` come from."""
    stay_with_parent()
    # Before the waits below: what they say (Kafka or the database not answering yet) is in LOG_FORMAT too.
    configure_logging(app_factory.partition(".")[0].removeprefix("newsflow_"), settings.log_level, settings.log_format)
    host = host or settings.health_host
    port = port if port is not None else settings.health_port
    require_address(host, port, address_names)
    refuse_unusable_exporter()
    # Until the server's own handler: as PID 1 in a container a signal with no handler is ignored, and a stop during
    # the waits below (up to minutes) sat them out, then the grace period's SIGKILL. Nothing has started to undo.
    waiting = signal.signal(signal.SIGTERM, _stop_before_serving)
    try:
        if kafka_first:
            require_kafka(settings)
        if settings.uses_database:
            require_database(settings.database_url)
    finally:
        signal.signal(signal.SIGTERM, waiting)
    config = uvicorn.Config(
        app_factory,
        factory=True,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep our structlog handlers
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = _Server(config, settings.shutdown_timeout_s)
    server.run()
    # Leave without the interpreter's finalisation. By now the server has stopped and the last batch is committed or
    # left for redelivery; what finalisation would add is joining worker threads (a model still loading, an
    # inference) and running destructors, and that hung for good once: a progress bar's __del__ waiting for a lock
    # that a thread torn down mid-write still held, after `newsflow process` was killed while classify loaded.
    logging.shutdown()
    os._exit(1 if gave_up.is_set() else 0 if server.started else 3)
