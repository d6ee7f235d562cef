"""`newsflow dlq list` and `dlq redrive` hold no more originals than they need: the listing kept every letter's
original (up to ~22 MiB each) to the end, and forty of them took storage's pod (where the runbook runs it) out of
memory; a re-drive held 500 letters' originals at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from newsflow_cli import dlq
from newsflow_cli.main import app
from newsflow_shared import ServiceSettings

from .. import webdata
from .test_dlq_redrive import Producer

MIB = 1024 * 1024


def letters(count: int, size: int, *, first: int = 0) -> list[dlq.Found]:
    """``count`` dead letters whose originals are ``size`` bytes each, told apart by their first byte and offset."""
    made = []
    for n in range(first, first + count):
        original = bytes([n % 251]) * size
        letter = webdata.dead_letter(n).model_copy(update={"original": original, "original_size": size})
        made.append(dlq.Found(partition=0, offset=100 + n, letter=letter))
    return made


def read_as_made(count: int, size: int) -> Callable[[ServiceSettings, dlq.Filter], AsyncIterator[dlq.Found]]:
    """Stands in for the DLQ topic: each letter made as it is read, as the consumer parses each record."""

    async def dead_letters(settings: ServiceSettings, where: dlq.Filter) -> AsyncIterator[dlq.Found]:
        for n in range(count):
            [found] = letters(1, size, first=n)
            yield found

    return dead_letters


class Kafka:
    """Stands in for :func:`dlq.with_kafka`: runs the command's ``main``, keeping what it returned and the most
    memory it took meanwhile."""

    def __init__(self) -> None:
        self.returned: Any = None
        self.peak = 0

    def __call__(self, main: Callable[[ServiceSettings], Awaitable[Any]]) -> Any:
        tracemalloc.start()
        try:
            self.returned = asyncio.run(main(ServiceSettings()))
            self.peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return self.returned


@pytest.mark.parametrize("as_json", [False, True])
def test_a_listing_keeps_no_originals(as_json: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    count, size = 20, 4 * MIB  # 80 MiB of originals, where one at a time is 4
    kafka = Kafka()
    monkeypatch.setattr(dlq, "with_kafka", kafka)
    monkeypatch.setattr(dlq, "dead_letters", read_as_made(count, size))
    result = CliRunner().invoke(app, ["dlq", "list", *(["--json"] if as_json else [])], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"{count} dead letters" in result.stderr or as_json
    if as_json:
        assert kafka.returned == []  # each printed as it was read: none held
    else:
        assert [found.where for found in kafka.returned] == [f"0:{100 + n}" for n in range(count)]
        assert {len(found.letter.original) for found in kafka.returned} == {0}
    assert kafka.peak < 4 * size, f"{kafka.peak / MIB:.0f} MiB held while listing {count} letters of 4 MiB"
    if as_json:
        listed = [json.loads(line) for line in result.stdout.splitlines()]
        assert [item["where"] for item in listed] == [f"0:{100 + n}" for n in range(count)]
        assert {item["original_size"] for item in listed} == {size}  # what the original was, still said
        assert not any("original" in item for item in listed)


def test_a_re_drive_sends_every_letter_in_order_in_batches_bounded_by_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """600 small letters, then 6 of 3 MiB: batches of at most 500 letters, and of a few MiB of originals (the last
    batch held all 18 MiB before)."""
    small, large = letters(600, 64), letters(6, 3 * MIB, first=600)
    every = small + large

    async def dead_letters(settings: ServiceSettings, where: dlq.Filter) -> AsyncIterator[dlq.Found]:
        for found in every:
            yield found

    client = Producer()

    @contextlib.asynccontextmanager
    async def producer(settings: ServiceSettings) -> AsyncIterator[Producer]:
        yield client

    batches: list[tuple[int, int]] = []
    redrive = dlq._redrive

    async def counted(batch: list[dlq.Found], *args: Any, **kwargs: Any) -> None:
        batches.append((len(batch), sum(len(found.letter.original) for found in batch)))
        await redrive(batch, *args, **kwargs)

    monkeypatch.setattr(dlq, "with_kafka", Kafka())
    monkeypatch.setattr(dlq, "dead_letters", dead_letters)
    monkeypatch.setattr(dlq, "producer", producer)
    monkeypatch.setattr(dlq, "page_copy_url", lambda: None)  # no storage copy to mark
    monkeypatch.setattr(dlq, "_redrive", counted)
    result = CliRunner().invoke(app, ["dlq", "redrive", "--all"])
    assert result.exit_code == 0, result.output
    assert "re-drove 606 dead letters" in result.stderr
    assert client.sent == [(found.letter.source_topic, found.letter.original) for found in every]
    assert sum(count for count, _ in batches) == len(every)
    assert max(count for count, _ in batches) <= 500
    assert max(held for _, held in batches) <= 12 * MIB, batches
