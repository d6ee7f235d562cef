"""Creating the topics, idempotently, with the partition count and size limits a deployment asks for."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code

from . import kafka_clients
from .errors import TopicsRefused
from .kafka_clients import wait_for_kafka
from .settings import ServiceSettings

__all__ = ["ensure_topics", "wait_for_kafka"]

log = logging.getLogger(__name__)


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, topics: list[str], timeout: float = 30.0
) -> list[TopicPartition]:
    """New partitions take a moment to elect a leader; clients that come sooner see errors. Returns the partitions
    (another client may have created a topic first, with other settings)."""
    deadline = asyncio.get_running_loop().time() + timeout
    waiting = topics
    while asyncio.get_running_loop().time() < deadline:
        described = await admin.describe_topics(topics)
        waiting = [
            t["topic"]
            for t in described
            if not (t.get("error_code", 0) == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"]))
        ]
        if not waiting:
            return [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
        await asyncio.sleep(0.1)
    raise TopicsRefused(f"Kafka created {', '.join(waiting)} but gave them no leader within {timeout:g} s")


async def _wait_for_partitions(settings: ServiceSettings, partitions: list[TopicPartition]) -> None:
    """A partition's leader is in the metadata a moment before that broker serves it as leader: the first clients
    then logged "Failed fetch offsets ... NotLeaderForPartitionError" (three such lines under `make demo` on a slow
    machine) or retried their first sends. Asking every new partition's end offset retries quietly until each
    leader answers. Only a courtesy: the topics exist, so a broker that does not answer in time is logged, not
    raised (clients retry on their own)."""
    consumer = kafka_clients.consumer(
        settings, client_id=f"{settings.kafka_group_prefix}-topics", enable_auto_commit=False, request_timeout_ms=15_000
    )
    try:
        await kafka_clients.connect(consumer, settings)
        await consumer.end_offsets(partitions)
    except Exception as error:
        log.warning("the new topics' partitions did not all answer yet: %s: %s", type(error).__name__, error)
    finally:
        await consumer.stop()


def _refused(response: object) -> list[str]:
    """Each topic the broker would not create, with its reason. aiokafka returns these in the response rather than
    raising them: read unread, a cluster of fewer brokers than TOPIC_REPLICATION_FACTOR had topic-init end green."""
    by_reason: dict[str, list[str]] = {}  # eight topics refused for one reason: the reason once
    for topic, code, *message in response.topic_errors:  # type: ignore[attr-defined]
        if code in (0, TopicAlreadyExistsError.errno):  # already there: another replica or init job won the race
            continue
        reason = message[0] if message and message[0] else for_code(code).description
        by_reason.setdefault(f"{for_code(code).__name__}: {reason}", []).append(topic)
    return [f"{', '.join(topics)} ({reason})" for reason, topics in by_reason.items()]


ARRIVAL_TIME = "LogAppendTime"


def topic_configs(settings: ServiceSettings) -> dict[str, str]:
    """What each topic is created with.

    Records are stamped with the time they reach Kafka (``LogAppendTime``), whatever time their producer gave them.
    Time retention counts from a record's stamp: a back-fill stamped with each article's publication time was
    deleted within minutes, unread, whenever ingest was down or behind, and Kafka 4 refused a whole batch for one
    article stamped an hour or more ahead (a wrong time zone). The stamp also becomes what ``newsflow status`` and
    ``replay --since`` read: when a record arrived, not what its producer claimed.

    With three copies or more, a write is acknowledged once two hold it: with Kafka's default of one, ``acks=all``
    waited for the leader alone when the others lagged, and a leader lost then lost the write."""
    configs = {"max.message.bytes": str(settings.kafka_max_message_bytes), "message.timestamp.type": ARRIVAL_TIME}
    if settings.topic_replication_factor >= 3:
        configs["min.insync.replicas"] = "2"
    return configs


async def existing_topic_problems(admin: AIOKafkaAdminClient, settings: ServiceSettings, names: list[str]) -> list[str]:
    """What the settings ask of ``names`` (topics that exist already) that they do not have, each with the command
    that gives it: existing topics are left as they are, because adding partitions moves keys (an article's next
    revision would go to another partition than its last) and a topic's limits are the operator's to change."""
    if not names:
        return []
    problems: list[str] = []
    for topic in await admin.describe_topics(names):
        have = len(topic.get("partitions") or [])
        if topic.get("error_code", 0) == 0 and have < settings.topic_partitions:
            problems.append(
                f"topic {topic['topic']} has {have} partitions where TOPIC_PARTITIONS is {settings.topic_partitions}:"
                f" replicas past {have} of a service stay idle. Add them once the pipeline has drained (keys move):"
                f" kafka-topics.sh {_tool_options(settings)} --alter --topic {topic['topic']}"
                f" --partitions {settings.topic_partitions}"
            )
    wanted = topic_configs(settings)
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, dict.fromkeys(wanted)) for name in names]
    for response in await admin.describe_configs(resources):
        for _, _, _, name, entries, *_ in response.resources:
            said = {key: str(value) for key, value, *_ in entries if key in wanted and value is not None}
            have = {key: int(value) for key, value in said.items() if value.isdigit()}
            stamped = said.get("message.timestamp.type")
            if stamped is not None and stamped != ARRIVAL_TIME:
                problems.append(
                    f"topic {name} keeps the time each producer stamps on a record ({stamped}): retention counts from"
                    " it, so records stamped days ago (a back-fill by publication time) are deleted before they are"
                    " read, and Kafka refuses a batch holding one stamped an hour ahead."
                    f" {_set_config(settings, name, 'message.timestamp.type', ARRIVAL_TIME)}"
                )
            in_sync = have.get("min.insync.replicas")
            if "min.insync.replicas" in wanted and in_sync is not None and in_sync < int(wanted["min.insync.replicas"]):
                problems.append(
                    f"topic {name} acknowledges a write once {in_sync} cop{'y holds' if in_sync == 1 else 'ies hold'}"
                    f" it where TOPIC_REPLICATION_FACTOR={settings.topic_replication_factor} wants"
                    f" {wanted['min.insync.replicas']}: a leader lost then loses it."
                    f" {_set_config(settings, name, 'min.insync.replicas', wanted['min.insync.replicas'])}"
                )
            limit = have.get("max.message.bytes")
            if limit is not None and limit < settings.kafka_max_message_bytes:
                problems.append(
                    f"topic {name} accepts records of {limit:,} bytes where KAFKA_MAX_MESSAGE_BYTES is"
                    f" {settings.kafka_max_message_bytes:,}: larger records (and their dead letters) are refused."
                    f" {_set_config(settings, name, 'max.message.bytes', settings.kafka_max_message_bytes)}"
                )
    return problems


async def topic_config(settings: ServiceSettings, topic: str, key: str) -> str | None:
    """One config of ``topic`` as the broker has it (its own or the broker's default); None if it does not say."""
    admin = kafka_clients.admin(settings, client_id=f"{settings.kafka_group_prefix}-config")
    try:
        await kafka_clients.connect(admin, settings)
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {key: None})
        for response in await admin.describe_configs([resource]):
            for _, _, _, _, entries, *_ in response.resources:
                for name, value, *_ in entries:
                    if name == key:
                        return str(value) if value is not None else None
        return None
    finally:
        await admin.close()


def _set_config(settings: ServiceSettings, topic: str, key: str, value: object) -> str:
    """The command that sets one of ``topic``'s configs."""
    return (
        f"kafka-configs.sh {_tool_options(settings)} --alter --entity-type topics --entity-name {topic}"
        f" --add-config {key}={value}"
    )


def _tool_options(settings: ServiceSettings) -> str:
    """What Kafka's tools need to reach the cluster as the services do: the brokers (not optional), in one word a
    shell keeps whole, and where the cluster wants TLS or a login a file of the client's settings to write."""
    servers = ",".join(server.strip() for server in settings.kafka_bootstrap_servers.split(","))
    if settings.kafka_security_protocol == "PLAINTEXT":
        return f"--bootstrap-server {servers}"
    return f"--bootstrap-server {servers} --command-config client.properties"


async def ensure_topics(settings: ServiceSettings) -> list[str]:
    """Create every topic that is missing; return the names created. Existing topics are left as they are, and
    what they lack of the settings is logged as a warning with the command that gives it. Raises
    :class:`TopicsRefused` when Kafka would not create one, or gave it no leader."""
    topic_config = topic_configs(settings)
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
    try:
        await kafka_clients.connect(admin, settings)  # inside: a client whose start failed is closed too
        existing = set(await admin.list_topics())
        missing = [topic for name, topic in wanted.items() if name not in existing]
        if missing:
            try:
                refused = _refused(await admin.create_topics(missing))
            except TopicAlreadyExistsError:  # older clients raised it: another replica or init job won the race
                refused = []
            if refused:
                raise TopicsRefused(
                    f"Kafka refused to create topics: {'; '.join(refused)}."
                    f" TOPIC_REPLICATION_FACTOR={settings.topic_replication_factor} needs that many brokers;"
                    f" KAFKA_MAX_MESSAGE_BYTES={settings.kafka_max_message_bytes} must be within the broker's limits"
                )
        created = [topic.name for topic in missing]
        for name in created:
            log.info("created topic %s with %d partitions", name, settings.topic_partitions)
        if created:
            await _wait_for_partitions(settings, await _wait_for_leaders(admin, created))
        try:
            problems = await existing_topic_problems(admin, settings, sorted(set(wanted) & existing))
        except Exception as error:  # advice only: a broker that will not describe its topics must not stop the start
            log.warning("could not compare the existing topics with the settings: %s: %s", type(error).__name__, error)
            problems = []
        for problem in problems:
            log.warning("%s", problem)
        if problems and settings.kafka_security_protocol != "PLAINTEXT":
            log.warning(
                "client.properties, for the commands above: security.protocol=%s and the TLS files or the login the"
                " services are given, in Kafka's client property names",
                settings.kafka_security_protocol,
            )
        return created
    finally:
        await admin.close()
