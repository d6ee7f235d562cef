"""How far behind each stage's consumer group is: records on its input topic not committed yet.

One reading for everyone who asks from outside the services: ``newsflow process`` (which inputs
wait where), ``newsflow status`` and storage's pipeline page. A service's own lag, for its
``/metrics`` and liveness, comes from its consumer (:mod:`.health`).
"""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.errors import GroupCoordinatorNotAvailableError

from . import kafka_clients
from .settings import ServiceSettings


def stage_inputs(settings: ServiceSettings) -> dict[str, str]:
    """Each stage and the topic it consumes, in pipeline order."""
    t = settings.topics
    return {"ingest": t.raw, "cleanup": t.ingested, "classify": t.clean, "storage": t.enriched}


async def stage_lag(settings: ServiceSettings, *, request_timeout_ms: int = 5000) -> dict[str, int]:
    """Per stage: records behind the end of its input topic (a group that never committed counts from the start)."""
    admin = kafka_clients.admin(settings, client_id="newsflow-lag", request_timeout_ms=request_timeout_ms)
    consumer = kafka_clients.consumer(
        settings, client_id="newsflow-lag", enable_auto_commit=False, request_timeout_ms=request_timeout_ms
    )
    await kafka_clients.connect(admin, settings)
    try:
        await kafka_clients.connect(consumer, settings)
        try:
            lag: dict[str, int] = {}
            for stage, topic in stage_inputs(settings).items():
                partitions = consumer.partitions_for_topic(topic)
                if not partitions:
                    await consumer._client.force_metadata_update()
                    partitions = consumer.partitions_for_topic(topic)
                tps = [TopicPartition(topic, p) for p in sorted(partitions or ())]
                if not tps:
                    lag[stage] = 0
                    continue
                ends = await consumer.end_offsets(tps)
                starts = await consumer.beginning_offsets(tps)
                try:
                    committed = await admin.list_consumer_group_offsets(settings.group_id(stage), partitions=tps)
                except GroupCoordinatorNotAvailableError:  # no group has committed on this cluster yet
                    committed = {}
                lag[stage] = sum(
                    max(0, ends[tp] - max(starts[tp], committed[tp].offset if tp in committed else -1)) for tp in tps
                )
            return lag
        finally:
            await consumer.stop()
    finally:
        await admin.close()
