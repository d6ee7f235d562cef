"""IPTC Media Topics, from the official NewsCodes file shipped in ``data/``.

IPTC Media Topics © International Press Telecommunications Council, licensed CC-BY-4.0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class MediaTopic:
    code: str
    level: int
    parent: str | None
    name: str
    definition: str


@dataclass(frozen=True)
class Taxonomy:
    version: str
    topics: dict[str, MediaTopic]

    def top_level(self) -> list[MediaTopic]:
        return [t for t in self.topics.values() if t.level == 1]

    def children(self, code: str) -> list[MediaTopic]:
        return [t for t in self.topics.values() if t.parent == code]

    def ancestors(self, code: str) -> list[str]:
        """Broader topics of ``code``, nearest first."""
        found = []
        topic = self.topics.get(code)
        while topic is not None and topic.parent:
            found.append(topic.parent)
            topic = self.topics.get(topic.parent)
        return found

    def root(self, code: str) -> str:
        chain = self.ancestors(code)
        return chain[-1] if chain else code

    def descendants(self, code: str) -> list[MediaTopic]:
        return [t for t in self.topics.values() if code in self.ancestors(t.code)]


@cache
def load_taxonomy() -> Taxonomy:
    raw = json.loads(resources.files(__package__).joinpath("data/iptc-mediatopics.json").read_text("utf-8"))
    topics = {t["code"]: MediaTopic(**t) for t in raw["topics"]}
    return Taxonomy(version=raw["version"], topics=topics)
