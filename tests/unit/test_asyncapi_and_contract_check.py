"""The pipeline's AsyncAPI document comes from the services' code, and contract changes that break consumers fail."""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from newsflow_cli.asyncapi import pipeline_document
from newsflow_cli.contract_check import RELEASED, breaking_changes, check, current_schemas, released_schemas
from newsflow_shared import SCHEMA_VERSION, ServiceSettings

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return pipeline_document()


def test_committed_asyncapi_document_is_current(document: dict[str, Any]) -> None:
    committed = yaml.safe_load((ROOT / "schemas/asyncapi.yaml").read_text())
    assert committed == json.loads(json.dumps(document)), "run `make schemas`: schemas/asyncapi.yaml is out of date"


def _operations(document: dict[str, Any], address: str) -> dict[str, tuple[str, str]]:
    """operation name -> (action, payload schema name) for every operation on ``address``."""
    found = {}
    for name, operation in document["operations"].items():
        channel = document["channels"][operation["channel"]["$ref"].rsplit("/", 1)[-1]]
        if channel["address"] != address:
            continue
        [reference] = channel["messages"].values()
        message = document["components"]["messages"][reference["$ref"].rsplit("/", 1)[-1]]
        found[name] = (operation["action"], message["payload"]["$ref"].rsplit("/", 1)[-1])
    return found


def test_document_names_who_sends_and_receives_each_contract(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["version"] == SCHEMA_VERSION
    assert _operations(document, "articles.enriched") == {
        "classify:articles.enriched": ("send", "EnrichedArticle"),
        "storage:articles.enriched": ("receive", "EnrichedArticle"),
    }
    assert _operations(document, "articles.stored") == {"storage:articles.stored": ("send", "StoredArticle")}
    assert _operations(document, "articles.raw") == {"ingest:articles.raw": ("receive", "RawArticle")}
    dead_letters = _operations(document, "articles.dlq")
    assert dead_letters == {
        **{f"{s}:articles.dlq": ("send", "DeadLetter") for s in ("ingest", "cleanup", "classify", "storage")},
        # Ingest reads the dead letters of later stages, to forget articles they refused.
        "ingest-forget:articles.dlq": ("receive", "DeadLetter"),
        # Storage keeps a copy of each for its web page.
        "storage-dlq:articles.dlq": ("receive", "DeadLetter"),
    }
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(ServiceSettings().topics.all())
    assert "EmptyPayload" not in document["components"]["schemas"]
    stored = document["components"]["schemas"]["StoredArticle"]
    assert {"id", "topics", "revision", "stored_at"} <= set(stored["properties"])


def test_the_contracts_keep_what_was_released() -> None:
    assert (RELEASED / SCHEMA_VERSION.split(".")[0]).is_dir()
    problems = check()
    assert not problems, "\n".join(problems)


def _released() -> dict[str, dict[str, Any]]:
    return released_schemas(RELEASED / SCHEMA_VERSION.split(".")[0])


def test_retyping_a_field_is_caught_and_named() -> None:
    current = copy.deepcopy(current_schemas())
    current["EnrichedArticle"]["properties"]["language"] = {"type": "integer", "title": "Language"}
    current["EnrichedArticle"]["$defs"]["TopicScore"]["properties"]["score"] = {"type": "string"}
    problems = breaking_changes(_released(), current)
    assert "EnrichedArticle: field 'language' changed type from string to integer" in problems
    assert "EnrichedArticle (TopicScore): field 'score' changed type from number to string" in problems
    assert len(problems) == 2


def test_removed_and_newly_required_fields_are_caught_and_additions_are_not() -> None:
    current = copy.deepcopy(current_schemas())
    stored = current["StoredArticle"]
    del stored["properties"]["revision"]
    stored["required"] = [*stored.get("required", []), "stored_at"]
    stored["properties"]["sentiment"] = {"type": "number", "default": 0.0}  # optional: additive
    del current["SkippedArticle"]
    problems = breaking_changes(_released(), current)
    assert sorted(problems) == [
        "SkippedArticle: the contract was removed",
        "StoredArticle: field 'revision' was removed",
        "StoredArticle: field 'stored_at' is newly required",
    ]


def test_a_nullable_field_becoming_required_text_is_a_type_change() -> None:
    current = copy.deepcopy(current_schemas())
    current["RawArticle"]["properties"]["title"] = {"type": "string"}
    assert breaking_changes(_released(), current) == [
        "RawArticle: field 'title' changed type from null | string to string"
    ]


def test_a_breaking_change_passes_only_with_a_new_major_version(tmp_path: Path) -> None:
    released = tmp_path / "released"
    shutil.copytree(RELEASED, released)
    current = copy.deepcopy(current_schemas())
    current["EnrichedArticle"]["properties"]["topics"] = {"type": "string"}
    assert check("1.1", released, current) == [
        "EnrichedArticle: field 'topics' changed type from array of TopicScore to string"
    ]
    assert check("2.0", released, current) == []
    (released / "2").mkdir()
    assert check("1.3", released, current) == ["SCHEMA_VERSION 1.3 is older than the released major version 2"]


def test_the_check_runs_as_a_command_that_fails_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from newsflow_cli import contract_check

    current = copy.deepcopy(current_schemas())
    current["StoredArticle"]["properties"]["revision"] = {"type": "string"}
    monkeypatch.setattr(contract_check, "current_schemas", lambda: current)
    assert contract_check.main() == 1
    error = capsys.readouterr().err
    assert "breaking contract change: StoredArticle: field 'revision' changed type from integer to string" in error
    assert "raise the major part of SCHEMA_VERSION" in error


def test_the_readme_examples_for_consumers_are_python() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Consuming enriched articles") :]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        ast.parse(block)
    assert "articles.stored" in section
    assert "KAFKA_SECURITY_PROTOCOL" in section
