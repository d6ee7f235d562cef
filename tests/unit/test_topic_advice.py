"""What topic-init says of topics that exist already, read from what the broker describes (a fake admin here: one
broker cannot hold three copies; tests/integration/test_operations.py asks a real one for the rest)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from newsflow_shared import ServiceSettings
from newsflow_shared.topics import existing_topic_problems


class DescribingAdmin:
    def __init__(self, partitions: int, configs: dict[str, str]) -> None:
        self.partitions, self.configs = partitions, configs

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"topic": n, "error_code": 0, "partitions": [{"leader": 1}] * self.partitions} for n in names]

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        entries = [(key, value, False, 1, False) for key, value in self.configs.items()]
        return [SimpleNamespace(resources=[(0, None, 2, resource.name, entries) for resource in resources])]


ASKED = {"max.message.bytes": "33554432", "message.timestamp.type": "LogAppendTime"}


async def test_three_copies_and_one_in_sync_is_said_with_the_command() -> None:
    settings = ServiceSettings(topic_replication_factor=3, topic_partitions=6)
    admin = DescribingAdmin(6, ASKED | {"min.insync.replicas": "1"})
    [problem] = await existing_topic_problems(admin, settings, ["articles.raw"])  # type: ignore[arg-type]
    assert problem.startswith("topic articles.raw acknowledges a write once 1 copy holds it")
    assert problem.endswith("--entity-name articles.raw --add-config min.insync.replicas=2")
    agreed = DescribingAdmin(6, ASKED | {"min.insync.replicas": "2"})
    assert await existing_topic_problems(agreed, settings, ["articles.raw"]) == []  # type: ignore[arg-type]


async def test_one_copy_asks_nothing_of_in_sync_replicas() -> None:
    admin = DescribingAdmin(6, ASKED | {"min.insync.replicas": "1"})
    assert await existing_topic_problems(admin, ServiceSettings(), ["articles.raw"]) == []  # type: ignore[arg-type]


async def test_a_topic_keeping_the_producers_time_is_said_with_the_command() -> None:
    """A topic made before newsflow asked for arrival time (or by hand) keeps CreateTime: a back-fill stamped with
    publication times is deleted by retention unread."""
    admin = DescribingAdmin(6, ASKED | {"message.timestamp.type": "CreateTime"})
    [problem] = await existing_topic_problems(admin, ServiceSettings(), ["articles.raw"])  # type: ignore[arg-type]
    assert problem.startswith("topic articles.raw keeps the time each producer stamps on a record (CreateTime)")
    assert problem.endswith("--entity-name articles.raw --add-config message.timestamp.type=LogAppendTime")


async def test_the_commands_name_the_brokers_as_one_word_and_a_secured_cluster_s_client_settings() -> None:
    """Kafka's tools want --bootstrap-server (the command as printed failed without it); "a:9092, b:9092" is a value
    the settings take, and a shell split it in two; a SASL or TLS cluster wants the client's settings as a file."""
    admin = DescribingAdmin(3, ASKED)
    plain = ServiceSettings(kafka_bootstrap_servers="a:9092, b:9092", topic_partitions=6)
    [problem] = await existing_topic_problems(admin, plain, ["articles.raw"])  # type: ignore[arg-type]
    assert problem.endswith(
        "kafka-topics.sh --bootstrap-server a:9092,b:9092 --alter --topic articles.raw --partitions 6"
    )
    secured = plain.model_copy(update={"kafka_security_protocol": "SASL_SSL"})
    [problem] = await existing_topic_problems(admin, secured, ["articles.raw"])  # type: ignore[arg-type]
    assert "--bootstrap-server a:9092,b:9092 --command-config client.properties --alter" in problem
