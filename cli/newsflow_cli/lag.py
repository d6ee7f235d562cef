"""How far behind each stage's consumer group is: records on its input topic it has not committed yet."""

from __future__ import annotations

from aiokafka import TopicPartition

from newsflow_shared import ServiceSettings, kafka_clients


def stage_inputs(settings: ServiceSettings) -> dict[str, str]:
    """Each stage and the topic it consumes, in pipeline order."""
    return {
        "ingest": settings.topic_raw,
        "cleanup": settings.topic_ingested,
        "classify": settings.topic_clean,
        "storage": settings.topic_enriched,
    }


async def stage_lag(settings: ServiceSettings) -> dict[str, int]:
    """Records behind the end of its input topic, per stage (a group that never committed counts from the start)."""
    inputs = stage_inputs(settings)
    admin = kafka_clients.admin(settings, request_timeout_ms=5000)
    consumer = kafka_clients.consumer(settings, request_timeout_ms=5000)
    await kafka_clients.connect(admin, settings)
    await kafka_clients.connect(consumer, settings)
    try:
        lag: dict[str, int] = {}
        for stage, topic in inputs.items():
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.beginning_offsets(partitions)
            committed = await admin.list_consumer_group_offsets(settings.group_id(stage), partitions=partitions)
            lag[stage] = sum(
                ends[tp] - max(starts[tp], committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0)
                for tp in partitions
            )
        return lag
    finally:
        await consumer.stop()
        await admin.close()
