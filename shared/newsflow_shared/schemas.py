"""JSON Schemas of the contracts, for consumers in any language."""

from __future__ import annotations

import json
from pathlib import Path

from .contracts import ALL_CONTRACTS, SCHEMA_VERSION


def export_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for model in ALL_CONTRACTS:
        schema = model.model_json_schema(mode="serialization")
        schema["$id"] = f"https://newsflow.dev/schemas/{SCHEMA_VERSION}/{model.__name__}.json"
        path = folder / f"{model.__name__}.schema.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written
