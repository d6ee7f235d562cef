"""How a probe counts lag without waiting behind the consumer's held fetch."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from newsflow_shared import ServiceSettings
from newsflow_shared.health import _consumer_lag
from newsflow_shared.lag import stage_lag

A, B = TopicPartition("in", 0), TopicPartition("in", 1)


class HeldFetchConsumer:
    """A consumer whose broker requests on the fetch's connection wait behind a held fetch: counted, not waited."""

    def __init__(self) -> None:
        self.asked_for_beginnings = 0
        self.asked_for_ends = 0

    def assignment(self) -> set[TopicPartition]:
        return {A, B}

    def highwater(self, tp: TopicPartition) -> int | None:
        return {A: 10, B: 7}[tp]

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.asked_for_ends += 1
        return {tp: 0 for tp in partitions}

    async def committed(self, tp: TopicPartition) -> int | None:
        return {A: 4, B: None}[tp]  # B: the group has committed nothing there yet

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.asked_for_beginnings += 1
        return {tp: 2 for tp in partitions}


def test_lag_counts_from_the_first_offset_where_nothing_is_committed_and_asks_for_it_once() -> None:
    consumer = HeldFetchConsumer()
    for _ in range(3):
        assert asyncio.run(_consumer_lag(consumer)) == {("in", 0): 6, ("in", 1): 5}
    assert consumer.asked_for_beginnings == 1
    assert consumer.asked_for_ends == 0  # the fetch responses' high watermarks serve


class LoadingCoordinatorAdmin:
    """An admin client whose broker answers OffsetFetch v2+ with the group-level "loading" error, which aiokafka
    hands back as an empty answer, for its first ``loading`` asks."""

    def __init__(self, loading: int) -> None:
        self.loading = loading
        self.asked = 0

    async def list_consumer_group_offsets(self, group: str, partitions: list[TopicPartition]) -> dict:
        from aiokafka.structs import OffsetAndMetadata

        self.asked += 1
        if self.asked <= self.loading:
            return {}
        return {A: OffsetAndMetadata(4, ""), B: OffsetAndMetadata(-1, "")}


def test_a_coordinator_still_loading_is_asked_again_not_read_as_nothing_committed() -> None:
    from aiokafka.errors import CoordinatorLoadInProgressError

    from newsflow_shared.lag import committed_offsets, coordinator_ready

    admin = LoadingCoordinatorAdmin(loading=2)
    committed = asyncio.run(coordinator_ready(lambda: committed_offsets(admin, "g", [A, B]), pause=0))  # type: ignore[arg-type]
    assert {tp: meta.offset for tp, meta in committed.items()} == {A: 4, B: -1}
    assert admin.asked == 3

    never = LoadingCoordinatorAdmin(loading=10**6)
    try:
        asyncio.run(coordinator_ready(lambda: committed_offsets(never, "g", [A, B]), within=0.2, pause=0.05))  # type: ignore[arg-type]
    except CoordinatorLoadInProgressError:
        assert 2 <= never.asked <= 6  # asked again until the deadline, then no reading rather than a wrong one
    else:
        raise AssertionError("a coordinator that never comes is an error, not an answer")


def test_a_group_reads_from_its_commit_or_the_partitions_start() -> None:
    from aiokafka.structs import OffsetAndMetadata

    from newsflow_shared.lag import read_from

    assert read_from(0, None) == 0  # never committed
    assert read_from(5, OffsetAndMetadata(12, "")) == 12
    assert read_from(20, OffsetAndMetadata(12, "")) == 20  # what it committed was deleted since: nothing to read there
    assert read_from(3, OffsetAndMetadata(-1, "")) == 3  # "no offset" as the broker writes it


class _Subscriber:
    def __init__(self, consumer: object, tasks: tuple[asyncio.Future[None], ...] = ()) -> None:
        self.consumer = consumer
        self.tasks = tasks
        self.title_ = "storage-dlq:articles.dlq"


def test_a_side_reader_has_its_own_lag_and_progress_and_its_loop_is_watched() -> None:
    """Storage's and ingest's readers of the DLQ had no lag, no progress and no place in liveness: behind or dead,
    the web page went stale and ingest skipped re-pushed articles, unseen."""
    from newsflow_shared.health import StageWatch
    from newsflow_shared.metrics import StageMetrics
    from newsflow_shared.settings import ServiceSettings

    async def scenario() -> None:
        metrics = StageMetrics("storage", CollectorRegistry())
        watch = StageWatch(None, ServiceSettings(), metrics)  # type: ignore[arg-type]
        main = _Subscriber(CaughtUpConsumer())
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        side = _Subscriber(HeldFetchConsumer(), (ended,))
        watch.attach(main)
        watch.attach_side("storage-dlq", side)
        registry = metrics.registry
        before = registry.get_sample_value(
            "newsflow_consumer_last_progress_timestamp_seconds", {"stage": "storage-dlq"}
        )
        assert before is not None
        verdict = await watch.liveness()
        assert verdict.problems == []
        assert verdict.lag == {"enriched[0]": 0}  # the stage's own lag only
        behind = {"stage": "storage-dlq", "topic": "in", "partition": "0"}
        assert registry.get_sample_value("newsflow_consumer_lag_records", behind) == 6
        ended.set_result(None)
        watch._refreshed_at = 0.0
        verdict = await watch.liveness()
        assert verdict.problems == ["the consume loop of storage-dlq:articles.dlq has ended"]

    asyncio.run(scenario())


class CaughtUpConsumer:
    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition("enriched", 0)}

    def highwater(self, tp: TopicPartition) -> int | None:
        return 5

    async def committed(self, tp: TopicPartition) -> int | None:
        return 5


async def test_a_lag_reading_that_cannot_reach_kafka_closes_its_clients(caplog: pytest.LogCaptureFixture) -> None:
    """Storage's pipeline page reads the lag every 10 s; with Kafka unreachable each reading left a consumer open
    ("Unclosed AIOKafkaConsumer" in the log), whether its start failed or the page's 3 s wait cancelled it."""
    caplog.set_level(logging.ERROR)
    settings = ServiceSettings(kafka_bootstrap_servers="127.0.0.1:9")
    with pytest.raises((KafkaError, OSError)):
        await stage_lag(settings, request_timeout_ms=500)

    async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # takes the connection, answers nothing: the client waits until cancelled

    silent = await asyncio.start_server(never_answers, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    async with silent:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                stage_lag(ServiceSettings(kafka_bootstrap_servers=f"127.0.0.1:{port}"), request_timeout_ms=5000), 0.3
            )
    gc.collect()  # where an unclosed client says so
    await asyncio.sleep(0)
    assert "Unclosed" not in caplog.text


def test_each_record_done_is_progress_for_the_stuck_alert_too() -> None:
    """Cleanup's batch of slow pages may take many minutes to commit: each article done moved liveness's clock but
    not the progress gauge NewsflowStageStuck reads, which paged someone while the replica worked through it."""
    import threading

    from newsflow_shared.health import StageWatch
    from newsflow_shared.metrics import StageMetrics

    metrics = StageMetrics("cleanup", CollectorRegistry())
    watch = StageWatch(None, ServiceSettings(), metrics)  # type: ignore[arg-type]
    metrics.last_progress.labels("cleanup").set(1_000.0)  # the last batch committed long ago
    worker = threading.Thread(target=watch.record_done)  # cleanup's worker reports from its thread
    worker.start()
    worker.join()
    progressed = metrics.registry.get_sample_value(
        "newsflow_consumer_last_progress_timestamp_seconds", {"stage": "cleanup"}
    )
    assert progressed is not None
    assert progressed > 1_700_000_000
    # A batch tried again after a failure (the database down) does its records again: that is not progress.
    metrics.last_progress.labels("cleanup").set(1_000.0)
    watch.batch_failed(ConnectionRefusedError("database down"), retry_in=1.0)
    watch.record_done()
    assert (
        metrics.registry.get_sample_value("newsflow_consumer_last_progress_timestamp_seconds", {"stage": "cleanup"})
        == 1_000.0
    )


def test_a_replica_failing_liveness_for_long_stops_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under Docker Compose nothing acted on /health: the container was marked unhealthy and consumed nothing for
    ever, as `restart: unless-stopped` waits for the process to exit. Now it stops itself (SIGTERM: a clean stop)."""
    import signal

    from newsflow_shared import health
    from newsflow_shared.health import StageWatch
    from newsflow_shared.metrics import StageMetrics

    signalled: list[int] = []
    monkeypatch.setattr(health.os, "kill", lambda pid, sig: signalled.append(sig))
    # A flag of the test's own: the module's one tells the process that set it to exit 1.
    monkeypatch.setattr(health, "gave_up", threading.Event())

    async def scenario(exit_after: float) -> list[int]:
        signalled.clear()
        watch = StageWatch(
            None, ServiceSettings(health_exit_after_s=exit_after), StageMetrics("ingest", CollectorRegistry())
        )  # type: ignore[arg-type]
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        watch.attach(_Subscriber(CaughtUpConsumer(), (ended,)))
        assert (await watch.liveness()).problems == []
        ended.set_result(None)
        assert (await watch.liveness()).problems  # failing from now: not yet long enough
        assert signalled == []
        await asyncio.sleep(0.3)
        await watch.liveness()
        return list(signalled)

    assert asyncio.run(scenario(0.0)) == []  # 0: never
    assert not health.gave_up.is_set()
    # Two failures a long silence apart (no probe asking between): not failing all along.
    monkeypatch.setattr(health, "_MOST_SECONDS_BETWEEN_PROBES", 0.25)
    assert asyncio.run(scenario(0.2)) == []
    monkeypatch.setattr(health, "_MOST_SECONDS_BETWEEN_PROBES", 60.0)
    assert asyncio.run(scenario(0.2)) == [signal.SIGTERM]
    assert health.gave_up.is_set()  # the process then exits 1
