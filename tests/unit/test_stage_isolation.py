"""The stage answers every record: the one that fails is found by splitting its batch, the rest go on."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaError
from sqlalchemy import exc as sql_errors
from sqlalchemy import text

from newsflow_shared import DeadLetter, Delivery, ServiceSettings, Stage, TemporaryFailure
from newsflow_shared.contracts import SkippedArticle
from newsflow_shared.db import make_engine
from newsflow_shared.errors import DeadLetterRefused
from newsflow_shared.stage import Emit, Output

from .test_failures import database_error


class RecordingStage(Stage):
    def __init__(self, environment_up: bool = True, **settings: Any) -> None:
        super().__init__(None, ServiceSettings(**settings), name="test")  # type: ignore[arg-type]
        self.sent: list[Output] = []
        self.environment_up = environment_up

    async def publish(self, outputs: Any) -> None:
        outputs = list(outputs)
        for output in outputs:
            self.encode(output)
        self.sent += outputs

    async def environment_answers(self) -> bool:
        return self.environment_up


def deliveries(count: int) -> list[Delivery]:
    return [Delivery(value=str(i).encode(), key=f"a-{i}".encode(), topic="in", offset=i) for i in range(count)]


def handler_failing_on(poison: set[int], error: BaseException, calls: list[int]) -> Any:
    async def handle(batch: list[Delivery]) -> list[Output]:
        calls.append(len(batch))
        if any(int(d.value) in poison for d in batch):
            raise error
        return [
            Emit("out", SkippedArticle(id=d.key.decode(), content_hash="h", reason="r"), d.key.decode()) for d in batch
        ]

    return handle


def outcome(stage: RecordingStage) -> dict[str, str]:
    return {
        (o.article_id if isinstance(o, DeadLetter) else o.key) or "": "dead" if isinstance(o, DeadLetter) else "ok"
        for o in stage.sent
    }


@pytest.mark.parametrize(
    "error",
    [ValueError("odd article"), database_error("22021"), RecursionError()],
    ids=["surprise", "database refuses it", "recursion"],
)
async def test_a_record_that_fails_on_its_own_is_split_out_and_dead_lettered(error: BaseException) -> None:
    stage = RecordingStage(max_attempts=2)
    calls: list[int] = []
    await stage.settle(deliveries(16), handler_failing_on({5}, error, calls))
    result = outcome(stage)
    assert result.pop("a-5") == "dead"
    assert set(result.values()) == {"ok"}
    assert len(result) == 15
    [letter] = [o for o in stage.sent if isinstance(o, DeadLetter)]
    assert letter.attempts == 2
    assert letter.reason
    assert sum(calls) < 16 * 5  # halving, not one record at a time from the start


async def test_a_record_that_only_looks_temporary_is_dead_lettered_while_the_environment_answers() -> None:
    stage = RecordingStage(max_attempts=2)
    calls: list[int] = []
    error = sql_errors.OperationalError("INSERT", {}, Exception("server closed the connection"))
    await stage.settle(deliveries(8), handler_failing_on({3}, error, calls))
    result = outcome(stage)
    assert result.pop("a-3") == "dead"
    assert set(result.values()) == {"ok"}
    [letter] = [o for o in stage.sent if isinstance(o, DeadLetter)]
    assert "looks temporary while Kafka and the database answered" in letter.reason


async def test_when_the_environment_is_down_nothing_is_dead_lettered_and_the_batch_is_retried() -> None:
    stage = RecordingStage(environment_up=False)
    calls: list[int] = []
    with pytest.raises(TemporaryFailure):
        await stage.settle(deliveries(8), handler_failing_on({3}, TemporaryFailure("database down"), calls))
    assert stage.sent == []
    assert calls == [8]  # not split: the whole batch is rewound and redelivered later


async def test_an_output_too_big_for_kafka_is_dead_lettered_not_retried_for_ever() -> None:
    stage = RecordingStage(kafka_max_message_bytes=1024 * 1024)  # the least it may be

    async def handle(batch: list[Delivery]) -> list[Output]:
        return [
            Emit(
                "out",
                SkippedArticle(id=d.key.decode(), content_hash="h", reason="x" * (1200 * 1024 if d.offset == 1 else 1)),
                d.key.decode(),
            )
            for d in batch
        ]

    await asyncio.wait_for(stage.settle(deliveries(3), handle), 30)
    result = outcome(stage)
    assert result == {"a-0": "ok", "a-1": "dead", "a-2": "ok"}
    [letter] = [o for o in stage.sent if isinstance(o, DeadLetter)]
    assert "more than Kafka accepts" in letter.reason


async def test_a_dead_letter_a_side_reader_fails_on_is_not_dead_lettered_again() -> None:
    stage = RecordingStage(max_attempts=1)
    letter_on_the_dlq = [Delivery(value=b"0", key=b"a-0", topic=stage.settings.topic_dlq, offset=0)]
    calls: list[int] = []
    outputs = await stage.settle(letter_on_the_dlq, handler_failing_on({0}, ValueError("cannot store it"), calls))
    assert stage.sent == []  # nothing fed back into the DLQ its reader consumes
    assert [type(o).__name__ for o in outputs] == ["DeadLetter"]


class RefusingDeadLetters(RecordingStage):
    """Kafka answers, but the DLQ refuses letters: its max.message.bytes below the others', or an ACL."""

    async def publish(self, outputs: Any) -> None:
        outputs = list(outputs)
        if any(isinstance(o, DeadLetter) for o in outputs):
            raise KafkaError("MessageSizeTooLargeError: the DLQ topic's limit")
        await super().publish(outputs)


async def test_a_dead_letter_kafka_refuses_holds_the_batch_and_says_why() -> None:
    """The refusal went out of the stage as if Kafka did not answer ("Kafka or the database does not answer"), and
    the batch was retried for ever under that line: the log now names the DLQ's limit and permissions."""
    stage = RefusingDeadLetters(max_attempts=1)
    calls: list[int] = []
    with pytest.raises(DeadLetterRefused, match=r"did not take the dead letter of in\[0\]@1 \(ValueError\)") as refused:
        await stage.settle(deliveries(2), handler_failing_on({1}, ValueError("odd article"), calls))
    assert "articles.dlq takes records of KAFKA_MAX_MESSAGE_BYTES" in str(refused.value)

    away = RefusingDeadLetters(environment_up=False, max_attempts=1)
    with pytest.raises(KafkaError):  # Kafka is away: not called a refusal
        await away.settle(deliveries(2), handler_failing_on({1}, ValueError("odd article"), []))


async def test_a_full_database_holds_the_batch_though_its_reads_answer(tmp_path: Path) -> None:
    """A full disk was each article's own fault while the probe's read answered: storage dead-lettered every article
    that came, and stayed ready. A real SQLite database, full at its page limit, refusing a write."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/full.db")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE stored (body BLOB)"))

    async def store(batch: list[Delivery]) -> list[Output]:
        async with engine.begin() as connection:
            await connection.execute(text("PRAGMA max_page_count = 4"))  # the disk, full
            await connection.execute(text("INSERT INTO stored VALUES (randomblob(100000))"))
        return []

    stage = RecordingStage(environment_up=True, max_attempts=2)
    try:
        with pytest.raises(sql_errors.OperationalError, match="full"):
            await stage.settle(deliveries(4), store)
    finally:
        await engine.dispose()
    assert stage.sent == []  # nothing dead-lettered: the batch waits, rewound, as for an outage


@pytest.mark.parametrize("sqlstate", ["53100", "53300", "25006", "57P01", "58030"])
async def test_postgresql_unable_to_write_at_all_holds_the_batch(sqlstate: str) -> None:
    # Disk full, too many connections, a read-only standby, a shutdown, an I/O error: never one record's doing.
    stage = RecordingStage(environment_up=True, max_attempts=2)
    with pytest.raises(sql_errors.DBAPIError):
        await stage.settle(deliveries(4), handler_failing_on({1}, database_error(sqlstate), []))
    assert stage.sent == []


@pytest.mark.parametrize("sqlstate", ["57014", "53400"])
async def test_a_statement_past_its_own_limits_is_still_tried_as_the_records_own(sqlstate: str) -> None:
    # One article can cost a statement its time-out or its temporary files' limit (a huge text's search vector):
    # it must not stall the stage.
    stage = RecordingStage(environment_up=True, max_attempts=2)
    await stage.settle(deliveries(4), handler_failing_on({1}, database_error(sqlstate), []))
    assert outcome(stage) == {"a-0": "ok", "a-1": "dead", "a-2": "ok", "a-3": "ok"}
