"""A command's check for its topics tells a broker that is away from a topic that is missing."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError

from newsflow_cli.kafka_io import TopicMissing, require_topics
from newsflow_cli.local_kafka import free_port
from newsflow_shared import ServiceSettings


async def test_a_broker_away_is_said_as_such_not_as_topics_to_create() -> None:
    # `status --watch` during a broker's restart said "the topics ... do not exist: create them with newsflow topics".
    settings = ServiceSettings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    with pytest.raises(KafkaConnectionError, match="did not answer while the topics were looked for") as raised:
        await require_topics(settings, settings.topic_raw, within=1.0)
    assert not isinstance(raised.value, TopicMissing)
    assert "newsflow topics" not in str(raised.value)
