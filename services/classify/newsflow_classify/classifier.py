"""IPTC topics from sentence vectors: each topic is a set of prototypes, an article is scored against them.

A topic's prototypes are its official name and definition, the names and
definitions of every narrower topic under it, and example sentences written for
Newsflow (:mod:`.examples`). An article's score for a topic is the mean of its
closest prototypes' similarities; a softmax over the topics turns that into a
distribution, and narrower topics are offered under a confident top-level one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from newsflow_shared import TopicScore
from newsflow_shared.metrics import timed_inference
from newsflow_shared.taxonomy import MediaTopic, Taxonomy

from .examples import EXAMPLES
from .model import Embedder


class TopicClassifier(Protocol):
    """Anything that tags texts with IPTC topics, best first."""

    name: str

    def classify(self, texts: list[str]) -> list[list[TopicScore]]: ...


@dataclass(frozen=True)
class ScoringPolicy:
    top_k: int = 5
    threshold: float = 0.02
    temperature: float = 0.08
    nearest: int = 3
    second_level_min: float = 0.35


def describe(topic: MediaTopic) -> str:
    return f"{topic.name}: {topic.definition}" if topic.definition else topic.name


class PrototypeClassifier:
    """Nearest-prototype classification over an embedding model."""

    def __init__(self, embedder: Embedder, taxonomy: Taxonomy, policy: ScoringPolicy | None = None) -> None:
        self.embedder = embedder
        self.taxonomy = taxonomy
        self.policy = policy or ScoringPolicy()
        self.name = f"prototypes:{embedder.name}"
        self.top = taxonomy.top_level()
        texts: list[str] = []
        owner: list[int] = []
        for index, topic in enumerate(self.top):
            own = [describe(topic), *EXAMPLES.get(topic.code, [])]
            own += [describe(child) for child in taxonomy.descendants(topic.code) if child.level == 2]
            texts += own
            owner += [index] * len(own)
        self.prototypes = embedder.embed(texts)
        self.owner = np.asarray(owner)
        self.second = [t for t in taxonomy.topics.values() if t.level == 2]
        self.second_vectors = embedder.embed([describe(t) for t in self.second])

    @timed_inference
    def classify(self, texts: list[str]) -> list[list[TopicScore]]:
        vectors = self.embedder.embed(texts)
        return [self.score_vector(v) for v in vectors]

    def score_vector(self, vector: np.ndarray) -> list[TopicScore]:
        policy = self.policy
        similarity = self.prototypes @ vector
        per_topic = np.array(
            [np.sort(similarity[self.owner == i])[-policy.nearest :].mean() for i in range(len(self.top))]
        )
        logits = per_topic / policy.temperature
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()

        ranked = np.argsort(-probabilities)[: policy.top_k]
        scores = [
            TopicScore(code=self.top[i].code, label=self.top[i].name, score=round(float(probabilities[i]), 4), level=1)
            for i in ranked
            if probabilities[i] >= policy.threshold or i == ranked[0]
        ]
        best = self.top[ranked[0]]
        if probabilities[ranked[0]] >= policy.second_level_min:
            scores += self._second_level(vector, best, float(probabilities[ranked[0]]))
        return sorted(scores, key=lambda topic: -topic.score)

    def _second_level(self, vector: np.ndarray, parent: MediaTopic, parent_score: float) -> list[TopicScore]:
        """The closest narrower topic under the best top-level one, scored no higher than its parent."""
        candidates = [i for i, t in enumerate(self.second) if t.parent == parent.code]
        if not candidates:
            return []
        similarity = self.second_vectors[candidates] @ vector
        best = int(np.argmax(similarity))
        topic = self.second[candidates[best]]
        score = round(parent_score * float(max(0.0, similarity[best])), 4)
        if score < self.policy.threshold:
            return []
        return [TopicScore(code=topic.code, label=topic.name, score=score, level=2)]
