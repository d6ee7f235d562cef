"""`newsflow dlq redrive` with a DATABASE_URL it cannot read: it stops, rather than send again what the web page
re-drove or set aside (it warned only of how the page would look, went on, and exited 0)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsflow_cli import dlq
from newsflow_cli.main import app
from newsflow_shared import ServiceSettings
from newsflow_shared.errors import first_line

from .test_dlq_list_memory import Kafka, read_as_made
from .test_dlq_redrive import Producer


@pytest.mark.parametrize(
    ("database_url", "said"),
    [
        ("sqlite+aiosqlite:///{tmp}/no-such.db", "no such SQLite file"),
        ("postgresql://newsflow:newsflow@127.0.0.1:1/newsflow", "ConnectionRefusedError"),  # nothing on port 1
    ],
)
@pytest.mark.parametrize("dry_run", [False, True])
def test_a_page_copy_that_cannot_be_read_stops_the_re_drive(
    database_url: str, said: str, dry_run: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Producer()

    @contextlib.asynccontextmanager
    async def producer(settings: ServiceSettings) -> AsyncIterator[Producer]:
        yield client

    monkeypatch.setattr(dlq, "with_kafka", Kafka())
    monkeypatch.setattr(dlq, "dead_letters", read_as_made(3, 10))
    monkeypatch.setattr(dlq, "producer", producer)
    monkeypatch.setenv("DATABASE_URL", database_url.format(tmp=tmp_path))
    result = CliRunner().invoke(app, ["dlq", "redrive", "--all", *(["--dry-run"] if dry_run else [])])
    assert result.exit_code == 3, result.output
    said_there = " ".join(result.stderr.split())
    assert said in said_there
    assert "would be sent again" in said_there
    assert client.sent == []
    assert "dead letters" not in said_there.rpartition("copy")[2]  # no count of what was (or would be) sent


def test_a_time_out_without_words_says_there_was_no_answer() -> None:
    """asyncpg's connect times out with no message: "cannot be used: TimeoutError: " was the whole line."""
    assert first_line(TimeoutError(), 100) == "no answer in time"
    assert first_line(TimeoutError("the pool is full"), 100) == "the pool is full"
    assert first_line(OSError(), 100) == ""
