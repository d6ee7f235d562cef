"""py3langid's scores, computed by numpy: the same features, the same probabilities."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from py3langid import langid

sys.path.insert(0, str(Path(__file__).parents[2] / "eval"))

import language_eval

from newsflow_cleanup.language import _AUTOMATON_MEMORY, VectorisedIdentifier, py3langid_identifier
from newsflow_cleanup.settings import DEFAULT_CANDIDATES

ROOT = Path(__file__).parents[2]
WRITTEN = ROOT / "train" / "corpus" / "written"
MODEL = langid.MODEL_DIR / langid.MODEL_FILE


@pytest.fixture(scope="module")
def ours() -> VectorisedIdentifier:
    identifier = py3langid_identifier(DEFAULT_CANDIDATES.split(","))
    assert isinstance(identifier, VectorisedIdentifier)
    return identifier


@pytest.fixture(scope="module")
def theirs() -> langid.LanguageIdentifier:
    identifier = langid.LanguageIdentifier.from_modelpath(MODEL, norm_probs=True)
    identifier.set_languages([code for code in DEFAULT_CANDIDATES.split(",") if code in identifier.nb_classes])
    return identifier


def _texts_in_many_languages() -> list[str]:
    """Our written articles (four languages) and the language evaluation's paragraphs and headlines (many more,
    in many scripts): only compared with py3langid's own answer here, nothing is tuned on them."""
    records = [json.loads(line) for path in sorted(WRITTEN.glob("*.jsonl")) for line in path.open() if line.strip()]
    by_language: dict[str, list[str]] = {}
    for record in records:
        by_language.setdefault(record.get("language", "en"), []).append(record["text"][:1000])
    labelled = [text for name in ("headlines.tsv", "paragraphs.tsv") for _, text in language_eval.load(name)]
    return [text for texts in by_language.values() for text in texts[:40]] + labelled


def _their_counts(identifier: langid.LanguageIdentifier, text: bytes) -> Counter[int]:
    return langid.visit_counts(identifier.tk_nextmove, identifier._rowbase, identifier.tk_output, text) or Counter()


def _assert_same_counts(ours: VectorisedIdentifier, theirs: langid.LanguageIdentifier, text: bytes) -> None:
    found, counts = ours.feature_counts(text)
    assert dict(zip(found.tolist(), counts.tolist(), strict=True)) == _their_counts(theirs, text)


def test_articles_in_many_languages_score_as_py3langid_scores_them(
    ours: VectorisedIdentifier, theirs: langid.LanguageIdentifier
) -> None:
    texts = _texts_in_many_languages()
    assert len(texts) > 400
    for text in [*texts, "", " ", "a", "12345", "日本語のテキストです", "\x00\x01\x02"]:
        _assert_same_counts(ours, theirs, ours._encode(text))
        assert np.allclose(ours._decide(text), theirs._decide(text), rtol=1e-5, atol=1e-6)
        assert ours.rank(text)[0][0] == theirs.rank(text)[0][0]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_give_py3langids_features(
    ours: VectorisedIdentifier, theirs: langid.LanguageIdentifier, data: bytes
) -> None:
    _assert_same_counts(ours, theirs, data)


@pytest.mark.slow
def test_the_automaton_forgets_its_start_after_so_many_bytes(theirs: langid.LanguageIdentifier) -> None:
    """From every state, each string of that many bytes leads where it leads from the start state.

    Pairs (state reached from any state, state reached from the start) over all strings one byte longer
    each step; ~15 s and ~1 GB for py3langid's 104,583 states.
    """
    next_state = np.frombuffer(theirs.tk_nextmove, dtype=np.uint32).astype(np.int64)
    row_start = np.asarray(theirs._rowbase, dtype=np.int64)
    count = len(row_start)
    every_byte = np.arange(256)
    pairs = np.arange(count) * count  # state * count + the start state (0)
    for _ in range(_AUTOMATON_MEMORY):
        here, start = np.divmod(pairs, count)
        pairs = np.unique(
            (
                next_state[row_start[here][:, None] + every_byte] * count
                + next_state[row_start[start][:, None] + every_byte]
            ).ravel()
        )
    here, start = np.divmod(pairs, count)
    assert (here == start).all()
