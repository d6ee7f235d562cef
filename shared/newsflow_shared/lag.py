"""How far behind each stage's consumer group is: records on its input topic not committed yet.

One reading for everyone who asks from outside the services: ``newsflow process`` (which inputs
wait where), ``newsflow status`` and storage's pipeline page. A service's own lag, for its
``/metrics`` and liveness, comes from its consumer (:mod:`.health`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CoordinatorLoadInProgressError, GroupCoordinatorNotAvailableError, NotCoordinatorError
from aiokafka.structs import OffsetAndMetadata

from . import kafka_clients
from .settings import ServiceSettings

T = TypeVar("T")


async def coordinator_ready(call: Callable[[], Awaitable[T]], within: float = 5.0, pause: float = 0.25) -> T:
    """``call()``, asked again for up to ``within`` seconds while the broker is still making (or moving, or loading)
    a group's coordinator.

    A cluster no consumer group has used yet creates its offsets topic on the first ask and answers "coordinator
    not available" until then; a broker that has just restarted answers "loading" while it reads the offsets back.
    Neither means that nothing was committed: read as that, a stage's whole topic counted as its lag.
    """
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await call()
        except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError, NotCoordinatorError):
            if asyncio.get_running_loop().time() + pause > deadline:
                raise
            await asyncio.sleep(pause)


async def committed_offsets(
    admin: AIOKafkaAdminClient, group: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, OffsetAndMetadata]:
    """What ``group`` committed on ``partitions`` (offset -1 where it never did).

    From OffsetFetch v2 on the broker says "loading" or "not the coordinator" once, for the whole group, and lists no
    partitions; aiokafka reads only the partitions' errors and hands back an empty answer. Asked for partitions, a
    broker with nothing wrong answers each one, so a missing one is that error, raised here for the retry above.
    """
    committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    if missing := [tp for tp in partitions if tp not in committed]:
        raise CoordinatorLoadInProgressError(f"{group}: the coordinator answered without {len(missing)} partition(s)")
    return committed


def read_from(start: int, committed: OffsetAndMetadata | None) -> int:
    """Where a group reads a partition from next: its committed offset, or the partition's start where it never
    committed or what it committed has since been deleted (retention)."""
    return max(start, committed.offset if committed is not None else -1)


def stage_inputs(settings: ServiceSettings) -> dict[str, str]:
    """Each stage and the topic it consumes, in pipeline order."""
    t = settings.topics
    return {"ingest": t.raw, "cleanup": t.ingested, "classify": t.clean, "storage": t.enriched}


async def stage_lag(
    settings: ServiceSettings, *, request_timeout_ms: int = 5000, retry_within: float = 2.0
) -> dict[str, int]:
    """Per stage: records behind the end of its input topic (a group that never committed counts from the start).

    A stage whose input topic this client cannot see (not made yet, or its user may not describe it: storage's
    user reads only its own topics) is left out, as unknown: it read 0, an empty pipeline on the page and in
    ``newsflow process``, whatever waited there. A coordinator not ready within ``retry_within`` seconds raises: no
    reading is better than a wrong one."""
    admin = kafka_clients.admin(settings, client_id="newsflow-lag", request_timeout_ms=request_timeout_ms)
    consumer = kafka_clients.consumer(
        settings, client_id="newsflow-lag", enable_auto_commit=False, request_timeout_ms=request_timeout_ms
    )
    try:
        try:
            # Inside: a client whose start failed or was cancelled (the page's probe waits 3 s) is closed all the
            # same; left open, each probe of an unreachable Kafka logged "Unclosed AIOKafkaConsumer".
            await kafka_clients.connect(admin, settings)
            await kafka_clients.connect(consumer, settings)
            lag: dict[str, int] = {}
            for stage, topic in stage_inputs(settings).items():
                partitions = consumer.partitions_for_topic(topic)
                if not partitions:
                    await consumer._client.force_metadata_update()
                    partitions = consumer.partitions_for_topic(topic)
                tps = [TopicPartition(topic, p) for p in sorted(partitions or ())]
                if not tps:
                    continue
                ends = await consumer.end_offsets(tps)
                starts = await consumer.beginning_offsets(tps)
                committed = await coordinator_ready(
                    partial(committed_offsets, admin, settings.group_id(stage), tps), within=retry_within
                )
                lag[stage] = sum(max(0, ends[tp] - read_from(starts[tp], committed.get(tp))) for tp in tps)
            return lag
        finally:
            await consumer.stop()
    finally:
        await admin.close()
