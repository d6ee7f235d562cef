"""The topic model Newsflow ships (models/newsflow-topics-v4) loads offline by default and reads the seed right."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from newsflow_classify.classifier import HeadClassifier, TopicClassifier
from newsflow_classify.loader import load_classifier
from newsflow_classify.model import SHIPPED_MODEL, resolve_model_path
from newsflow_classify.settings import ClassifySettings

ROOT = Path(__file__).parents[2]
CONFLICT = "medtop:16000000"
POLITICS = "medtop:11000000"


@pytest.fixture(scope="module")
def classifier() -> TopicClassifier:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    return load_classifier(ClassifySettings())


def test_default_is_the_shipped_model(classifier: TopicClassifier) -> None:
    assert ClassifySettings().classify_model == SHIPPED_MODEL
    assert Path(resolve_model_path(SHIPPED_MODEL)) == ROOT / "models" / SHIPPED_MODEL
    assert isinstance(classifier, HeadClassifier)
    info = json.loads((ROOT / "models" / SHIPPED_MODEL / "newsflow-topics.json").read_text())
    assert classifier.name == f"newsflow-topics-v{info['version']}" == SHIPPED_MODEL  # what lineage records


def test_the_seed_is_conflict_first_with_politics_among_the_rest(classifier: TopicClassifier) -> None:
    title, _, body = (ROOT / "samples" / "seed-article.txt").read_text().partition("\n")
    [topics] = classifier.classify([f"{title}.\n{body}"])
    top_level = [t.code for t in topics if t.level == 1]
    assert top_level[0] == CONFLICT
    assert POLITICS in top_level[1:]
    assert topics == sorted(topics, key=lambda t: -t.score)


def test_desk_stories_get_their_desk() -> None:
    classifier = load_classifier(ClassifySettings(classify_top_k=3))
    stories = {
        "medtop:15000000": "Striker's late double sends United top. Two goals in the last ten minutes gave the "
        "visitors a 2-1 win and a three-point lead at the top of the league.",
        "medtop:04000000": "Retailer's profits slide after weak Christmas. Shares fell 8% after the chain said "
        "sales in its stores had dropped and it would close 30 shops.",
        "medtop:01000000": "Crime drama returns to record ratings. The second series opened to an audience of nine "
        "million viewers, the channel's best for a drama in years.",
    }
    results = classifier.classify(list(stories.values()))
    assert [topics[0].code for topics in results] == list(stories)
