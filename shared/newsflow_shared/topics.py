"""Creating the topics, idempotently, with the partition count and size limits a deployment asks for."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from .settings import ServiceSettings

log = logging.getLogger(__name__)


async def wait_for_kafka(bootstrap_servers: str, *, timeout: float = 60.0) -> None:
    """Return once the cluster answers; raise ``TimeoutError`` naming the address after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    delay = 0.25
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaConnectionError, OSError) as error:
            if asyncio.get_running_loop().time() + delay > deadline:
                raise TimeoutError(
                    f"Kafka at {bootstrap_servers} did not answer within {timeout:.0f}s ({error}); "
                    "is KAFKA_BOOTSTRAP_SERVERS right and the broker up?"
                ) from error
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        finally:
            await admin.close()


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
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
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
