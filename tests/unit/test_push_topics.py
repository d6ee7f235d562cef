"""`newsflow push` asks for its topics before it sends (cli/newsflow_cli/kafka_io.py: require_topics)."""

from __future__ import annotations

from typing import Any

import pytest

from newsflow_cli.kafka_io import TopicMissing, require_topics
from newsflow_shared import ServiceSettings, kafka_clients


class Listing:
    """An admin client whose topic listings are given in turn (the last one again once they run out)."""

    def __init__(self, *answers: set[str]) -> None:
        self.answers = list(answers)

    def __call__(self, *args: Any, **kwargs: Any) -> Listing:
        return self  # what kafka_clients.admin makes

    async def list_topics(self) -> list[str]:
        return sorted(self.answers.pop(0) if len(self.answers) > 1 else self.answers[0])

    async def close(self) -> None:
        return None


@pytest.fixture
def listing(monkeypatch: pytest.MonkeyPatch) -> Any:
    async def connected(client: object, settings: object) -> None:
        return None

    async def no_wait(seconds: float) -> None:
        return None

    monkeypatch.setattr(kafka_clients, "connect", connected)
    monkeypatch.setattr(kafka_clients.asyncio, "sleep", no_wait)

    def use(*answers: set[str]) -> Listing:
        admin = Listing(*answers)
        monkeypatch.setattr(kafka_clients, "admin", admin)
        return admin

    return use


async def test_a_topic_whose_leader_comes_a_moment_later_is_waited_for(listing: Any) -> None:
    """A topic just made may not be listed yet: one asked for at once read as missing."""
    settings = ServiceSettings()
    admin = listing(set(), {settings.topic_raw, settings.topic_dlq})
    await require_topics(settings, settings.topic_raw, settings.topic_dlq, within=5)
    assert admin.answers == [{settings.topic_raw, settings.topic_dlq}]


async def test_a_missing_topic_is_said_so_with_how_to_make_it(listing: Any) -> None:
    listing({"articles.dlq"})
    with pytest.raises(TopicMissing, match=r"articles\.raw do not exist on .*`newsflow topics`.*where Kafka has ACLs"):
        await require_topics(ServiceSettings(), "articles.raw", within=0)
