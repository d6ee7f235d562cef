"""Creating the topics, idempotently, with the partition count and size limits a deployment asks for."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from . import kafka_clients
from .kafka_clients import wait_for_kafka
from .settings import ServiceSettings

__all__ = ["ensure_topics", "wait_for_kafka"]

log = logging.getLogger(__name__)


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: list[str], timeout: float = 30.0) -> None:
    """New partitions take a moment to elect a leader; clients that come sooner see errors."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        described = await admin.describe_topics(topics)
        if all(
            t.get("error_code", 0) == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
            for t in described
        ):
            return
        await asyncio.sleep(0.1)


async def ensure_topics(settings: ServiceSettings) -> list[str]:
    """Create every topic that is missing; return the names created. Existing topics are left as they are."""
    topic_config = {"max.message.bytes": str(settings.kafka_max_message_bytes)}
    wanted = {
        name: NewTopic(
            name=name,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            topic_configs=topic_config,
        )
        for name in settings.topics.all()
    }
    admin = kafka_clients.admin(settings)
    await kafka_clients.connect(admin, settings)
    try:
        existing = set(await admin.list_topics())
        missing = [topic for name, topic in wanted.items() if name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another replica or init job won the race
        created = [topic.name for topic in missing]
        for name in created:
            log.info("created topic %s with %d partitions", name, settings.topic_partitions)
        if created:
            await _wait_for_leaders(admin, created)
        return created
    finally:
        await admin.close()
