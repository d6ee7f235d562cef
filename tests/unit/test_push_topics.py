"""`newsflow push` asks for its topics before it sends (cli/newsflow_cli/kafka_io.py: require_topics)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from newsflow_cli.kafka_io import TopicMissing, require_topics
from newsflow_shared import ServiceSettings


class Metadata:
    """A producer whose metadata answers are given in turn: (topics listed, topics the login may not describe)."""

    def __init__(self, *answers: tuple[set[str], set[str]]) -> None:
        self.answers = list(answers)
        self.client = self

    async def fetch_all_metadata(self) -> Any:
        listed, refused = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return SimpleNamespace(topics=lambda: listed, unauthorized_topics=refused)


async def test_a_topic_whose_leader_comes_a_moment_later_is_waited_for() -> None:
    """aiokafka leaves a topic without a leader out of the metadata: one just made read as missing."""
    settings = ServiceSettings()
    client = Metadata((set(), set()), ({settings.topic_raw, settings.topic_dlq}, set()))
    await require_topics(client, settings, settings.topic_raw, settings.topic_dlq, within=5)  # type: ignore[arg-type]
    assert client.answers == [({settings.topic_raw, settings.topic_dlq}, set())]


async def test_a_missing_topic_and_one_the_login_may_not_see_are_each_said_so() -> None:
    settings = ServiceSettings()
    with pytest.raises(TopicMissing, match=r"articles\.raw does not exist on .*`newsflow topics`"):
        await require_topics(Metadata(({"articles.dlq"}, set())), settings, "articles.raw", within=0)  # type: ignore[arg-type]
    with pytest.raises(TopicMissing, match=r"does not let this login describe the topic articles\.raw: give it"):
        await require_topics(Metadata((set(), {"articles.raw"})), settings, "articles.raw", within=5)  # type: ignore[arg-type]
