"""What every command shares: where the local stack keeps its state, the error console, reaching Kafka."""

from __future__ import annotations

import asyncio
import math
import os
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import typer
from aiokafka.errors import KafkaConnectionError
from rich.console import Console
from rich.markup import escape

from newsflow_shared import ServiceSettings, settings_from_environment

from .kafka_io import TopicMissing
from .local_kafka import KafkaUnavailable
from .stack import reach_kafka, use_local_stack

STATE = Path(os.environ.get("NEWSFLOW_HOME", ".newsflow"))
"""Where ``newsflow run`` keeps its broker and database, and where the other commands look for them."""

err = Console(stderr=True)
T = TypeVar("T")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def since_utc(value: datetime | None) -> datetime | None:
    """A ``--since`` time: UTC where it gives no offset (``dlq`` read it so, ``replay`` as local time), and no earlier
    than 1970, when Kafka's record times begin (before it, the time asked for was negative: a traceback)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return max(value, EPOCH)


def seconds(value: float) -> float:
    """A typer callback for an option in seconds: the range checks let NaN through (every comparison with it is
    false), and ``--dlq-window nan`` read as if Kafka did not answer."""
    if not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a number of seconds")
    return value


def with_kafka(main: Callable[[ServiceSettings], Awaitable[T]]) -> T:
    """Run ``main`` against the Kafka this command should use; one clear line (exit 3) when none answers."""
    origin = use_local_stack(STATE)
    settings = settings_from_environment(ServiceSettings)

    async def checked() -> T:
        await reach_kafka(settings, origin)
        return await main(settings)

    try:
        return asyncio.run(checked())
    except (KafkaUnavailable, KafkaConnectionError, TopicMissing) as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(3) from None


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGINT, SIGTERM and SIGHUP all mean: stop what was started, cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
