"""`newsflow status`'s screen: a stuck stage is red and says so, a stage behind is yellow, the rest green."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from rich.console import Console

from newsflow_cli.status import StageStatus, render, run_status
from newsflow_shared import ServiceSettings


def test_screen_shows_each_stage_and_marks_the_stuck_one() -> None:
    stages = [
        StageStatus("ingest", "newsflow-ingest", "articles.raw", replicas=2, records_per_second=16.7),
        StageStatus(
            "cleanup", "newsflow-cleanup", "articles.ingested", lag=40, replicas=1, oldest_unanswered_seconds=3
        ),
        StageStatus(
            "classify",
            "newsflow-classify",
            "articles.clean",
            lag=900,
            replicas=0,
            dead_letters={"EmptyArticle": 2, "ModelError": 1},
            oldest_unanswered_seconds=612,
            stuck=True,
        ),
        StageStatus("storage-dlq", "newsflow-storage-dlq", "articles.dlq", replicas=1, records_per_second=None),
    ]
    console = Console(record=True, width=160, color_system="truecolor")
    console.print(render(stages))
    text = console.export_text(clear=False)
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 2}
    assert "STUCK, no replicas" in rows["classify"]
    assert "EmptyArticle 2, ModelError 1" in rows["classify"]
    assert "612s" in rows["classify"]
    assert "behind" in rows["cleanup"]
    assert "ok" in rows["ingest"]
    assert "16.7" in rows["ingest"]
    assert [cell.strip() for cell in rows["storage-dlq"].split("│")[2:4]] == ["0", "-"]  # a reader has no rate
    styled = console.export_text(styles=True)
    assert "\x1b[1;31mSTUCK, no replicas" in styled  # bold red
    assert "\x1b[33mbehind" in styled  # yellow
    assert stages[2].as_json()["stuck"] is True


def test_an_error_class_a_dlq_record_made_up_is_shown_as_written() -> None:
    """A letter's `error` is whatever was written to the DLQ: "[/]" stopped the screen with a MarkupError."""
    console = Console(record=True, width=160)
    console.print(render([StageStatus("ingest", "newsflow-ingest", "articles.raw", dead_letters={"[/]": 2})]))
    assert "[/] 2" in console.export_text()


def test_kafka_that_cannot_be_read_is_exit_3_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """It was exit 2, a usage error's code to typer, where every other command says 3; and the clients made before
    the broker failed were left open, each printing "Unclosed AIOKafkaConsumer" under the answer."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    caplog.set_level(logging.ERROR)
    caplog.set_level(logging.WARNING, logger="newsflow_shared.kafka_clients")
    assert run_status(as_json=True, watch=None, stuck_after=600, dlq_window=3600) == 3
    gc.collect()  # where an unclosed client says so
    out, err = capsys.readouterr()
    assert json.loads(out)["ok"] is False
    assert "no Kafka answers at 127.0.0.1:9 (from the environment) within 10s" in json.loads(out)["error"]
    assert "Unclosed" not in err + caplog.text
    assert "does not answer yet" not in err + caplog.text  # the services' line while they wait; one line here


def answering(answers: list[object]) -> Callable[..., Coroutine[Any, Any, list[object]]]:
    """Stands in for gather_status: each call takes the next answer, raising it where it is an error."""

    async def gather(settings: object, **options: object) -> list[object]:
        answer = answers.pop(0) if answers else []
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    return gather


async def test_the_watch_screen_outlives_a_broker_that_goes_away(monkeypatch: pytest.MonkeyPatch) -> None:
    # It ended with exit 3 at the first read that failed; now it says so in place and reads again.
    from aiokafka.errors import KafkaConnectionError

    from newsflow_cli import status

    answers: list[object] = [[], KafkaConnectionError("Connection refused"), []]
    shown: list[str] = []

    monkeypatch.setattr(status, "gather_status", answering(answers))
    original = status.unreadable
    monkeypatch.setattr(status, "unreadable", lambda s, e: shown.append(str(e)) or original(s, e))
    watching = asyncio.create_task(status.watch_status(ServiceSettings(), 0.01))
    while answers:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert not watching.done()
    watching.cancel()
    assert await watching == []
    assert shown == ["KafkaConnectionError: Connection refused"]


async def test_a_watch_without_a_terminal_prints_each_reading(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """rich's live screen draws only on a terminal: `kubectl exec … newsflow status --watch` (no -t), or the watch
    piped to a file, showed nothing at all, the broker's absence included."""
    from aiokafka.errors import KafkaConnectionError

    from newsflow_cli import status

    answers: list[object] = [[], KafkaConnectionError("Connection refused"), []]

    monkeypatch.setattr(status, "gather_status", answering(answers))
    watching = asyncio.create_task(status.watch_status(ServiceSettings(), 0.01))
    while answers:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    watching.cancel()
    await watching
    shown = capsys.readouterr().out
    assert shown.count("Newsflow") >= 2  # the first reading and the one after the broker came back
    assert "cannot read the pipeline's state" in shown
    assert shown.index("Newsflow") < shown.index("cannot read") < shown.rindex("Newsflow")
    collapsed = " ".join(shown.split())  # rich wraps at the captured console's 80 columns
    assert re.search(r"\d\d:\d\d:\d\d: cannot read", collapsed), collapsed
    assert not re.search(r"\d\d:\d\d:\d\d: \d\d:\d\d:\d\d", collapsed), collapsed  # its time once
    said = collapsed[collapsed.index("cannot read") : collapsed.index("trying again")]
    assert said.count("KafkaConnectionError") == 1, said


def test_an_error_is_said_with_its_class_once() -> None:
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

    from newsflow_cli.status import described

    assert described(KafkaTimeoutError()) == "KafkaTimeoutError"  # not "KafkaTimeoutError: KafkaTimeoutError"
    assert described(KafkaConnectionError("Connection refused")) == "KafkaConnectionError: Connection refused"
    assert described(ValueError("no such port")) == "ValueError: no such port"
