"""The cleanup evaluations as regression tests: the numbers the README claims must hold.

Each runs the same code as ``make eval-cleanup``, ``eval-language`` and ``eval-duplicates`` on
the sets in ``eval/`` (ours), with the thresholds of issue #3.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "eval"))

import cleanup_eval
import language_eval
import near_duplicates_eval


def test_damaged_articles_come_back_whole() -> None:
    articles = [json.loads(line) for line in (cleanup_eval.HERE / "articles.jsonl").open()]
    scores = cleanup_eval.evaluate(cleanup_eval.newsflow_cleaner(), cleanup_eval.cases(articles))
    every = [f1 for score in scores.values() for f1 in score.f1]
    assert sum(every) / len(every) >= 0.995
    assert sum(score.boilerplate_left for score in scores.values()) == 0
    assert sum(score.spacing_left + score.encoding_left for score in scores.values()) == 0
    assert all(all(score.titles) for score in scores.values())


@pytest.fixture(scope="module")
def detect() -> language_eval.Detect:
    return language_eval.newsflow(language_eval.CleanupSettings())


def test_headlines_right_and_never_confidently_wrong(detect: language_eval.Detect) -> None:
    rows = language_eval.load("headlines.tsv")
    answers = [detect(text) for _, text in rows]
    right = sum(code == gold for (gold, _), (code, _) in zip(rows, answers, strict=True))
    confident_wrong = sum(code != gold and p >= 0.8 for (gold, _), (code, p) in zip(rows, answers, strict=True))
    assert right / len(rows) >= 0.95
    assert confident_wrong / len(rows) <= 0.02


def test_paragraphs_right(detect: language_eval.Detect) -> None:
    rows = language_eval.load("paragraphs.tsv") + language_eval.bundles(language_eval.load("headlines.tsv"))
    assert all(detect(text)[0] == gold for gold, text in rows)


def test_respun_copies_found_and_other_stories_left_alone() -> None:
    originals, runs = near_duplicates_eval.build_cases()
    for run in runs:
        answers = asyncio.run(near_duplicates_eval.newsflow(originals, run))
        assert [a for a, case in zip(answers, run, strict=True) if a != case.expected] == []
