"""How far behind each stage's consumer group is: records on its input topic it has not committed yet."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from newsflow_shared import ServiceSettings


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
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=5000)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=5000)
    await admin.start()
    await consumer.start()
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
