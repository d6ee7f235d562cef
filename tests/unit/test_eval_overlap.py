"""The evaluation sets stay apart from what the topic model learnt from: a mechanical check.

Every article of the newsroom sets (dev and test) and of the other-topics test set against every training text
(our paragraphs, the IPTC definitions, the prototype examples), and the sets against each other: no pair may share
more than ``overlap.LIMIT`` of the smaller text's 8-word shingles. A training paragraph copied from, or written
over, an evaluation article fails here.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

EVAL = Path(__file__).parents[2] / "eval"
sys.path.insert(0, str(EVAL))

import overlap  # noqa: E402

SETS = [path for path in overlap.SETS if path.exists()]


def test_containment_finds_copies() -> None:
    article = "The chancellor said the public finances were on track despite a weaker economy this year and next."
    assert overlap.worst_overlap([article], [article])[0] == 1.0
    assert (
        overlap.worst_overlap(
            [article], ["Rain is expected across the north by the end of the week, forecasters say."]
        )[0]
        == 0
    )


@pytest.mark.parametrize("path", SETS, ids=[p.name for p in SETS])
def test_no_training_text_overlaps_an_evaluation_article(path: Path) -> None:
    articles = [overlap.article_text(row) for row in overlap.read(path)]
    assert len(articles) >= 80
    value, i, j = overlap.worst_overlap(articles, overlap.training_texts())
    assert value <= overlap.LIMIT, (
        f"article {i} of {path.name} shares {value:.2f} of its shingles with training text {j}"
    )


def test_dev_and_test_sets_are_apart() -> None:
    assert [path.name for path in SETS] == [
        "newsroom-dev.jsonl",
        "newsroom-test.jsonl",
        "other-topics-test.jsonl",
        "multilingual-dev.jsonl",
        "multilingual-test.jsonl",
    ]
    texts = {path.name: [overlap.article_text(row) for row in overlap.read(path)] for path in SETS}
    for a, b in itertools.combinations(texts, 2):
        assert overlap.worst_overlap(texts[b], texts[a])[0] <= overlap.LIMIT, (a, b)
