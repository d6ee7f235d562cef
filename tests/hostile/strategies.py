"""Hypothesis strategies for hostile messages on every topic: valid messages with fields made hostile."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from newsflow_shared import CleanArticle, EnrichedArticle, IngestedArticle, TopicScore

from .records import GOOD_BODY

NASTY_CHARACTERS = "\x00\ud800\udfff\u202e\u2066\u2069\u200b\ufeff\u00ad\n\r\t<>&\"'\\/é漢😀\u0301"

hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from(NASTY_CHARACTERS), max_size=60),
    st.text(alphabet=st.characters(codec=None, categories=["Cs", "Cc", "Cf", "Zs", "Mn"]), max_size=30),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "\n", " ", "<div>", "\u200b", "😀"]), st.integers(0, 30_000)),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-05:00",
            "1799-12-31T23:59:59Z",
            "2024-02-30T00:00:00Z",
            "http://[::1",
            "http://example.com:99999/",
            "../../etc/passwd",
            "<script>alert(1)</script>",
            "NaN",
        ]
    ),
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
)
hostile_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=12,
)


def _good_raw() -> dict[str, Any]:
    return {"id": "fuzz-1", "title": "Libraries to open late", "text": GOOD_BODY, "source": "Fuzz Gazette"}


def _good_ingested() -> dict[str, Any]:
    return IngestedArticle(id="fuzz-1", title="Libraries", text=GOOD_BODY, content_hash="h").model_dump(mode="json")


def _good_clean() -> dict[str, Any]:
    article = CleanArticle(
        id="fuzz-1", title="Libraries", text=GOOD_BODY, language="en", language_confidence=0.99, content_hash="h"
    )
    return article.model_dump(mode="json")


def _good_enriched() -> dict[str, Any]:
    topic = TopicScore(code="medtop:11000000", label="politics and government", score=0.8)
    article = EnrichedArticle(**_good_clean(), topics=[topic])
    return article.model_dump(mode="json")


GOOD = {"raw": _good_raw, "ingested": _good_ingested, "clean": _good_clean, "enriched": _good_enriched}


def _encode(message: Any, ascii_only: bool) -> bytes:
    text = json.dumps(message, ensure_ascii=ascii_only, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


def hostile_messages(kind: str) -> st.SearchStrategy[bytes]:
    """Messages for the topic of ``kind``: a good one with fields overwritten, added or removed, or raw bytes."""
    good = GOOD[kind]()
    fields = [*sorted(good), "topics", "language", "metadata", "schema_version", "unknown field"]
    mutated = st.builds(
        lambda changes, dropped: {**{k: v for k, v in good.items() if k not in dropped}, **changes},
        st.dictionaries(st.sampled_from(fields), hostile_values, min_size=1, max_size=4),
        st.sets(st.sampled_from(sorted(good)), max_size=2),
    )
    return st.one_of(
        st.builds(_encode, mutated, st.booleans()),
        st.builds(_encode, hostile_values, st.booleans()),
        st.binary(max_size=200),
    )
