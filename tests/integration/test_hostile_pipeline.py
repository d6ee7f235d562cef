"""Hostile input on a real broker: every message is answered, every good article stored, nothing stops.

The in-memory fuzz tests (tests/unit/test_fuzz_stages.py) find what breaks a handler; these show
the same on the services as processes, on Kafka and on PostgreSQL, as users run them.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rich.console import Console

from newsflow_cli.inputs import Input
from newsflow_cli.output import show

from ..hostile.generate import generated
from ..hostile.records import good, write_jsonl
from .harness import Pipeline, isolated_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
async def postgres_pipeline(kafka_bootstrap: str, fresh_postgres: str) -> AsyncIterator[Pipeline]:
    running = Pipeline(isolated_env(kafka_bootstrap, fresh_postgres) | {"CLASSIFY_COMPILE": "off"})
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.mark.postgres
@pytest.mark.timeout(1800)
async def test_a_thousand_generated_hostile_messages_are_answered_on_postgres(postgres_pipeline: Pipeline) -> None:
    hostile = [Input(label=name, value=value) for name, value in generated(1_000)]
    goods = [Input(label=f"good-{i}", value=json.dumps(good(f"good-{i}")).encode()) for i in range(60)]
    # Good articles spread among the hostile ones, so that they share batches and partitions.
    inputs = list(hostile)
    for index, item in enumerate(goods):
        inputs.insert(index * 17, item)

    results = await postgres_pipeline.run(inputs, timeout=900)

    assert len(results) == len(inputs), f"{len(inputs) - len(results)} messages were never answered"
    kinds = Counter(kind for kind, _ in results.values())
    assert set(kinds) <= {"stored", "dead-letter", "skipped", "unsupported"}, kinds
    for item in goods:
        kind, record = results[item.trace_id]
        assert kind == "stored", f"{item.label}: {kind} {record.get('reason')}"
    for kind, record in results.values():
        if kind == "dead-letter":
            assert record["reason"].strip()
            assert record["stage"] in {"ingest", "cleanup", "classify", "storage", "push"}


async def test_process_answers_the_hostile_file_on_sqlite_within_two_minutes(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    source = tmp_path / "hostile.jsonl"
    count = write_jsonl(source)
    env = {
        **os.environ,
        **isolated_env(kafka_bootstrap, f"sqlite+aiosqlite:///{tmp_path}/hostile.db"),
        "CLASSIFY_COMPILE": "off",
    }
    started = time.monotonic()
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "newsflow_cli", "process", "--json", "--timeout", "240", str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == count
    assert {r["status"] for r in records} <= {"stored", "dead-letter", "skipped", "unsupported"}
    assert records[0]["status"] == records[-1]["status"] == "stored"
    assert all(r["reason"].strip() for r in records if r["status"] == "dead-letter")
    # And as a person sees them, without --json: rich's highlighter once hung the command on the 1.5 MB word.
    shown = io.StringIO()
    screen = Console(file=shown, width=100)
    rendering = time.monotonic()
    for record in records:
        show(screen, record["input"], record["status"], record)
    assert time.monotonic() - rendering < 30
    assert "more characters not shown" in shown.getvalue()
    # Two minutes on an idle machine with a warm broker; CI shares two cores with the broker and the model.
    assert elapsed < 240, f"process took {elapsed:.0f}s"
