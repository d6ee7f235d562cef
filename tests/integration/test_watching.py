"""`newsflow tail` and `process` follow the outcome topics: records no stage wrote are passed over, not fatal."""

from __future__ import annotations

import asyncio
import json

import pytest

from newsflow_cli.kafka_io import OutcomeWatcher, producer
from newsflow_shared import ServiceSettings, ensure_topics

from .harness import isolated_env

pytestmark = pytest.mark.kafka


async def test_records_no_stage_wrote_are_passed_over(kafka_bootstrap: str) -> None:
    settings = ServiceSettings(**{k.lower(): v for k, v in isolated_env(kafka_bootstrap, "sqlite://").items()})
    await ensure_topics(settings)
    stored = {"id": "a-1", "title": "Storm warning"}
    async with producer(settings) as client:
        for value in [b"\x80not utf-8", None, b"[1, 2]", b"{not json", json.dumps(stored).encode()]:
            await client.send_and_wait(settings.topic_stored, value, key=b"k", partition=0)
    watcher = OutcomeWatcher(settings)
    await watcher.start(from_beginning=True)
    try:

        async def first_outcome() -> tuple[str, dict[str, object]]:
            async for kind, _, record in watcher.outcomes():
                if kind != "idle":
                    return kind, record
            raise AssertionError("the watcher stopped")

        assert await asyncio.wait_for(first_outcome(), 30) == ("stored", stored)
    finally:
        await watcher.stop()
