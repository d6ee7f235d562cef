"""`newsflow push` asks for its topics before it sends (cli/newsflow_cli/kafka_io.py: require_topics)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from newsflow_cli.kafka_io import TopicMissing, require_topics
from newsflow_shared import ServiceSettings


class Metadata:
    """A producer whose metadata answers (the topics listed) are given in turn."""

    def __init__(self, *answers: set[str]) -> None:
        self.answers = list(answers)
        self.client = self

    async def fetch_all_metadata(self) -> Any:
        listed = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return SimpleNamespace(topics=lambda: listed)


async def test_a_topic_whose_leader_comes_a_moment_later_is_waited_for() -> None:
    """aiokafka leaves a topic without a leader out of the metadata: one just made read as missing."""
    settings = ServiceSettings()
    client = Metadata(set(), {settings.topic_raw, settings.topic_dlq})
    await require_topics(client, settings, settings.topic_raw, settings.topic_dlq, within=5)  # type: ignore[arg-type]
    assert client.answers == [{settings.topic_raw, settings.topic_dlq}]


async def test_a_missing_topic_is_said_so_with_how_to_make_it() -> None:
    settings = ServiceSettings()
    with pytest.raises(TopicMissing, match=r"articles\.raw does not exist on .*`newsflow topics`.*may not describe"):
        await require_topics(Metadata({"articles.dlq"}), settings, "articles.raw", within=0)  # type: ignore[arg-type]
