"""IPTC topics from sentence vectors: each topic is a set of prototypes, an article is scored against them.

A topic's prototypes are its official name and definition, the names and
definitions of every narrower topic under it, and example sentences written for
Newsflow (:mod:`.examples`). An article's score for a topic is the mean of its
closest prototypes' similarities; a softmax over the topics turns that into a
distribution, and narrower topics are offered under a confident top-level one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from safetensors.numpy import load_file

from newsflow_shared import TopicScore
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
            scores += second_level(self, vector, best, float(probabilities[ranked[0]]))
        return sorted(scores, key=lambda topic: -topic.score)


def second_level(
    classifier: PrototypeClassifier | HeadClassifier, vector: np.ndarray, parent: MediaTopic, parent_score: float
) -> list[TopicScore]:
    """The closest narrower topic under the best top-level one, scored no higher than its parent."""
    candidates = [i for i, t in enumerate(classifier.second) if t.parent == parent.code]
    if not candidates:
        return []
    similarity = classifier.second_vectors[candidates] @ vector
    best = int(np.argmax(similarity))
    topic = classifier.second[candidates[best]]
    score = round(parent_score * float(max(0.0, similarity[best])), 4)
    if score < classifier.policy.threshold:
        return []
    return [TopicScore(code=topic.code, label=topic.name, score=score, level=2)]


HEAD_FILE = "topic-head.safetensors"
INFO_FILE = "newsflow-topics.json"


class HeadClassifier:
    """A topic model trained here (``train/train.py``): a fine-tuned encoder and a linear head over its vectors.

    The head gives a softmax over the 17 top-level topics, trained so that the first is what the story
    is mainly about and the others share what is left. The encoder is read by the same :class:`Embedder`
    as the prototypes (windows, precision, compilation), so it is as fast; narrower topics are offered
    under a confident top-level one as before, by the closest IPTC definition.
    """

    def __init__(self, embedder: Embedder, taxonomy: Taxonomy, policy: ScoringPolicy | None = None) -> None:
        folder = Path(embedder.path)
        info = json.loads((folder / INFO_FILE).read_text())
        head = load_file(folder / HEAD_FILE)
        self.embedder = embedder
        self.taxonomy = taxonomy
        self.policy = policy or ScoringPolicy()
        self.name = f"{info['name']}-v{info['version']}"
        self.top = [taxonomy.topics[code] for code in info["classes"]]
        self.weight = head["weight"].astype(np.float32)
        self.bias = head["bias"].astype(np.float32)
        self.second = [t for t in taxonomy.topics.values() if t.level == 2]
        self.second_vectors = embedder.embed([describe(t) for t in self.second])

    @classmethod
    def fits(cls, path: str) -> bool:
        return (Path(path) / HEAD_FILE).is_file() and (Path(path) / INFO_FILE).is_file()

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        logits = vectors @ self.weight.T + self.bias
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def classify(self, texts: list[str]) -> list[list[TopicScore]]:
        vectors = self.embedder.embed(texts)
        return [self.score_row(v, p) for v, p in zip(vectors, self.probabilities(vectors), strict=True)]

    def score_row(self, vector: np.ndarray, probabilities: np.ndarray) -> list[TopicScore]:
        policy = self.policy
        ranked = np.argsort(-probabilities)[: policy.top_k]
        scores = [
            TopicScore(code=self.top[i].code, label=self.top[i].name, score=round(float(probabilities[i]), 4), level=1)
            for i in ranked
            if probabilities[i] >= policy.threshold or i == ranked[0]
        ]
        if probabilities[ranked[0]] >= policy.second_level_min:
            scores += second_level(self, vector, self.top[ranked[0]], float(probabilities[ranked[0]]))
        return sorted(scores, key=lambda topic: -topic.score)
