"""Topic accuracy as a regression test: the default classifier (newsflow-topics-v4) on our earlier labelled sets.

The same sets as ``make eval`` (written for Newsflow; the five-desk and the full-length sets held
out from every choice of examples), through the classifier the service loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsflow_classify.classifier import TopicClassifier
from newsflow_classify.loader import load_classifier
from newsflow_classify.settings import ClassifySettings

EVAL = Path(__file__).parents[2] / "eval"


@pytest.fixture(scope="module")
def classifier() -> TopicClassifier:
    return load_classifier(ClassifySettings())


@pytest.mark.parametrize(
    ("data", "least"),
    [
        # newsflow-topics-v4 measured 0.863, 1.000, 0.941, 1.000, 0.960 (the README's "earlier sets"; v3 had 0.873,
        # 1.000, 0.956, 1.000, 0.960, v2 0.863, 1.000, 0.941, 1.000, 0.960, v1 0.804, 0.950, 0.926, 1.000, 0.880). The
        # short 17-topic set is where the old prototypes' examples were tuned.
        ("iptc-news-eval.jsonl", 0.84),
        ("desk-categories-heldout.jsonl", 0.95),
        ("iptc-long-articles.jsonl", 0.93),
        ("desk-long-heldout.jsonl", 0.96),
        # Desk stories that cross into another IPTC topic (strikes, fines, jobless figures): a floor, not a goal.
        ("desk-borderline-heldout.jsonl", 0.88),
    ],
)
def test_top_level_accuracy(classifier: TopicClassifier, data: str, least: float) -> None:
    rows = [json.loads(line) for line in (EVAL / data).read_text().splitlines() if line.strip()]
    results = classifier.classify([f"{row['title']}.\n{row['text']}" for row in rows])
    best = [next(topic.code for topic in topics if topic.level == 1) for topics in results]
    accuracy = sum(code == row["label"] for code, row in zip(best, rows, strict=True)) / len(rows)
    assert accuracy >= least
