from __future__ import annotations

import json
from pathlib import Path

from newsflow_shared import DeadLetter, Delivery
from newsflow_shared.contracts import ALL_CONTRACTS
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
