from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from newsflow_shared import CleanArticle, DeadLetter, Delivery, Lineage, Removal, TopicScore
from newsflow_shared.contracts import (
    ALL_CONTRACTS,
    AS_STORED,
    MAX_LABEL,
    MAX_REMOVAL_CHARS,
    MAX_REMOVALS,
    MAX_REMOVED_CHARS,
)
from newsflow_shared.errors import MalformedMessage
from newsflow_shared.schemas import export_schemas
from newsflow_shared.stage import Stage

ROOT = Path(__file__).parents[2]


def test_exported_schemas_are_current(tmp_path: Path) -> None:
    written = export_schemas(tmp_path)
    assert len(written) == len(ALL_CONTRACTS)
    for path in written:
        committed = ROOT / "schemas" / path.name
        assert committed.exists(), f"run `make schemas`: {committed} is missing"
        assert json.loads(committed.read_text()) == json.loads(path.read_text()), (
            f"run `make schemas`: {path.name} changed"
        )


def test_dead_letters_keep_the_original_bytes_through_json() -> None:
    from newsflow_shared import ServiceSettings

    stage = Stage(broker=None, settings=ServiceSettings(), name="ingest")  # type: ignore[arg-type]
    original = b"\xff\xfe binary \x00 junk"
    delivery = Delivery(value=original, key=b"k", topic="articles.raw", partition=3, offset=42, headers={"a": "b"})
    letter = stage.reject(delivery, MalformedMessage("not UTF-8"))
    back = DeadLetter.model_validate_json(letter.model_dump_json())
    assert back.original == original
    assert back.source_partition == 3
    assert back.source_offset == 42
    assert back.reason == "not UTF-8"
    assert back.error == "MalformedMessage"
    assert back.attempts == 1


def test_text_beside_the_body_is_refused_as_the_body_is_except_in_stored_rows() -> None:
    """Lineage, removals and topic labels were plain strings: a NUL reached storage (PostgreSQL refused it at the last
    hop), a bidi override turned text around on the article page, and NaN in lineage details was stored as null.
    Rows a database already holds are read as they are (AS_STORED)."""
    base = {"id": "a", "text": "Rain.", "language": "en", "language_confidence": 0.9, "content_hash": "h"}
    hostile = [
        {"removed": [{"what": "a\x00b", "why": "rule"}]},
        {"removed": [{"what": "menu", "why": "rule \u202e reversed"}]},
        {"lineage": [{"stage": "clean\x00up", "version": "1"}]},
        {"lineage": [{"stage": "cleanup", "version": "1", "model": "\ud800"}]},
        {"lineage": [{"stage": "cleanup", "version": "1", "details": {"x": float("nan")}}]},
        {"removed": [{"what": "Ad", "why": "rule"}] * (MAX_REMOVALS + 1)},
        {"removed": [{"what": "x" * (MAX_REMOVAL_CHARS + 1), "why": "rule"}]},
        {"removed": [{"what": "x" * MAX_REMOVAL_CHARS, "why": "rule"}] * (MAX_REMOVED_CHARS // MAX_REMOVAL_CHARS + 1)},
    ]
    for fields in hostile:
        with pytest.raises(ValidationError):
            CleanArticle.model_validate(base | fields)
        CleanArticle.model_validate(base | fields, context=AS_STORED)  # a row already stored is still read
    assert CleanArticle.model_validate(base | {"removed": [{"what": "Ad", "why": "rule"}] * MAX_REMOVALS}).removed
    assert Removal(what="x" * 10_000, why="rule")  # cleanup's own list, before it lists it (logic.listed)
    with pytest.raises(ValidationError, match="label"):
        TopicScore(code="medtop:16000000", label="war\u202e", score=0.5)
    with pytest.raises(ValidationError, match="code"):  # Arabic-Indic digits: \d took any script's
        TopicScore(code="medtop:\u0661\u0666" + "\u0660" * 6, label="conflict", score=0.5)
    long_label = {"code": "medtop:16000000", "label": "w" * (MAX_LABEL + 1), "score": 0.5}
    with pytest.raises(ValidationError, match="at most 200 characters"):
        TopicScore.model_validate(long_label)
    assert TopicScore.model_validate(long_label, context=AS_STORED).label == long_label["label"]
    assert Lineage(stage="cleanup", version="1", details={"removed": 3}).details == {"removed": 3}
