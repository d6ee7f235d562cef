"""A stage's batch subscriber asks for records again as soon as an empty wait ends, not a second timeout later."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import TopicAuthorizationFailedError

from newsflow_shared import ServiceSettings, Stage, prompt_batches
from newsflow_shared.prompt_batches import next_batch, take_records_promptly


class Clock:
    """Stands for ``time.monotonic`` and ``asyncio.sleep`` in :mod:`newsflow_shared.prompt_batches`."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Consumer:
    """aiokafka's ``getmany`` as the fetch loop sees it: ``waits`` seconds, then ``answer``."""

    def __init__(self, clock: Clock, waits: float, answer: dict[TopicPartition, list[Any]]) -> None:
        self.clock, self.waits, self.answer = clock, waits, answer
        self.asked: list[dict[str, Any]] = []

    async def getmany(self, **options: Any) -> dict[TopicPartition, list[Any]]:
        self.asked.append(options)
        self.clock.now += self.waits
        return self.answer


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(prompt_batches, "monotonic", fake.monotonic)
    monkeypatch.setattr(prompt_batches, "sleep", fake.sleep)
    return fake


def record(topic: str, partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, partition, offset, 0, 0, None, b"{}", None, 0, 2, [])


async def test_an_empty_wait_of_the_whole_timeout_is_not_followed_by_a_sleep(clock: Clock) -> None:
    # FastStream's own loop slept another BATCH_TIMEOUT_MS here: records that came meanwhile waited for it.
    assert await next_batch(Consumer(clock, waits=0.2, answer={}), 200, 100) == ()  # type: ignore[arg-type]
    assert clock.slept == []


async def test_an_early_empty_answer_waits_out_the_rest_so_the_loop_never_spins(clock: Clock) -> None:
    # aiokafka answers early during a rebalance: the loop must not ask again at once, again and again.
    assert await next_batch(Consumer(clock, waits=0.05, answer={}), 200, 100) == ()  # type: ignore[arg-type]
    assert clock.slept == [pytest.approx(0.15)]


async def test_a_zero_timeout_does_not_make_an_idle_stage_spin(clock: Clock) -> None:
    assert await next_batch(Consumer(clock, waits=0.0, answer={}), 0, 100) == ()  # type: ignore[arg-type]
    assert clock.slept == [pytest.approx(0.01)]


async def test_records_of_every_partition_come_back_at_once_in_one_batch(clock: Clock) -> None:
    first, second = TopicPartition("in", 0), TopicPartition("in", 3)
    answer = {first: [record("in", 0, 7), record("in", 0, 8)], second: [record("in", 3, 1)]}
    consumer = Consumer(clock, waits=0.0, answer=answer)
    batch = await next_batch(consumer, 200, 50)  # type: ignore[arg-type]
    assert [(r.partition, r.offset) for r in batch] == [(0, 7), (0, 8), (3, 1)]
    assert consumer.asked == [{"timeout_ms": 200, "max_records": 50}]
    assert clock.slept == []


async def test_every_stage_subscriber_fetches_this_way_with_its_own_batch_settings(clock: Clock) -> None:
    stage = Stage.for_service(ServiceSettings(batch_timeout_ms=300, batch_max_records=40), "test")

    async def handler(batch: list[Any]) -> list[Any]:
        return []

    stage.consume("in", handler)
    [subscriber] = stage.broker.subscribers
    consumer = Consumer(clock, waits=0.1, answer={})
    assert await subscriber.get_msg(consumer) == ()  # type: ignore[arg-type]
    assert consumer.asked == [{"timeout_ms": 300, "max_records": 1}]  # then as many as BATCH_MAX_BYTES allows
    assert clock.slept == [pytest.approx(0.2)]  # only the rest of its own timeout


class Buffered:
    """aiokafka's ``getmany`` over records it already holds: at most ``max_records`` of them, in order."""

    def __init__(self, sizes: list[int]) -> None:
        self.waiting = [
            ConsumerRecord("in", 0, offset, 0, 0, b"k", b"x" * size, None, 1, size, [])
            for offset, size in enumerate(sizes)
        ]
        self.asked: list[int] = []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        self.asked.append(max_records)
        taken, self.waiting = self.waiting[:max_records], self.waiting[max_records:]
        return {TopicPartition("in", 0): taken} if taken else {}


MIB = 1024 * 1024


async def test_records_of_large_values_are_taken_a_few_at_a_time(clock: Clock) -> None:
    """Six compressed records of 32 MiB came in one fetch, and in one batch: ingest held 850 MB at once."""
    consumer = Buffered([32 * MIB] * 6)
    batches = [await next_batch(consumer, 200, 100, 16 * MIB) for _ in range(6)]  # type: ignore[arg-type]
    assert [len(batch) for batch in batches] == [1] * 6  # at least one, however large
    consumer = Buffered([3 * MIB] * 12)
    sizes = [len(await next_batch(consumer, 200, 100, 16 * MIB)) for _ in range(3)]  # type: ignore[arg-type]
    assert sizes == [6, 6, 0]  # the sixth passes 16 MiB: the batch ends there


async def test_a_small_record_before_a_flood_of_large_ones_does_not_let_them_in_at_once(clock: Clock) -> None:
    """Asked for as many as fit were each as large as the first, a 2 KB article let 99 records of 32 MiB in."""
    consumer = Buffered([2_000] + [32 * MIB] * 99)
    batch = await next_batch(consumer, 200, 100, 16 * MIB)  # type: ignore[arg-type]
    assert [len(r.value) for r in batch] == [2_000, 32 * MIB]


async def test_small_records_fill_the_batch_up_to_its_count(clock: Clock) -> None:
    consumer = Buffered([4_000] * 250)
    batch = await next_batch(consumer, 200, 100, 16 * MIB)  # type: ignore[arg-type]
    assert [r.offset for r in batch] == list(range(100))
    assert len(await next_batch(consumer, 200, None, 16 * MIB)) == 150  # type: ignore[arg-type]


async def test_a_fetch_error_after_the_first_record_ends_the_batch_without_losing_it(clock: Clock) -> None:
    """aiokafka raises a partition's fetch error once the records before it are taken: raised on a later ask, it
    dropped the batch's first record, whose position had passed, and the next commit skipped it."""

    class Failing(Buffered):
        async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
            if self.asked:
                raise TopicAuthorizationFailedError
            return await super().getmany(timeout_ms, max_records)

    batch = await next_batch(Failing([1_000] * 3), 200, 100, 16 * MIB)  # type: ignore[arg-type]
    assert [r.offset for r in batch] == [0]


def test_a_subscriber_that_is_not_a_kafka_batch_subscriber_is_left_alone() -> None:
    class Other:
        async def get_msg(self, consumer: object) -> str:
            return "its own"

    other = Other()
    take_records_promptly(other)
    assert "get_msg" not in vars(other)
