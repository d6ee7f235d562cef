"""Does a change to the contracts break their consumers? Compare the JSON Schemas with the last released ones.

The released schemas of each major version are kept in ``schemas/released/<major>/``
(``make release-schemas`` copies the current ones there). Against them, breaking is:

- a contract, or a field of one (or of a model it nests), that is gone;
- a field whose type changed (``string`` to ``integer``, a list to a single value,
  a nullable field that no longer is, or the reverse);
- a field that is newly required (old producers do not send it).

New optional fields and new contracts are additive: a minor version. A breaking change
passes only with ``SCHEMA_VERSION``'s major raised, which starts a new released folder.

Run ``python -m newsflow_cli.contract_check`` (``make check-contracts``); the test suite runs it too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from newsflow_shared.contracts import ALL_CONTRACTS, SCHEMA_VERSION

Schema = dict[str, Any]
RELEASED = Path(__file__).parents[2] / "schemas" / "released"


def current_schemas() -> dict[str, Schema]:
    """Contract name -> its JSON Schema, as ``newsflow schemas`` exports it."""
    return {model.__name__: model.model_json_schema(mode="serialization") for model in ALL_CONTRACTS}


def released_schemas(folder: Path) -> dict[str, Schema]:
    return {path.name.removesuffix(".schema.json"): json.loads(path.read_text()) for path in folder.glob("*.json")}


def breaking_changes(released: dict[str, Schema], current: dict[str, Schema]) -> list[str]:
    """One sentence per breaking change, naming the contract and the field."""
    problems = []
    for name, old in sorted(released.items()):
        new = current.get(name)
        if new is None:
            problems.append(f"{name}: the contract was removed")
            continue
        old_models, new_models = _models(old, name), _models(new, name)
        for model, old_model in old_models.items():
            path = name if model == name else f"{name} ({model})"
            new_model = new_models.get(model)
            if new_model is None:
                problems.append(f"{path}: the nested model {model} was removed")
                continue
            problems += _model_changes(path, old_model, new_model)
    return problems


def _models(schema: Schema, name: str) -> dict[str, Schema]:
    """The contract and each model it nests ($defs), by name."""
    return {name: schema, **schema.get("$defs", {})}


def _model_changes(path: str, old: Schema, new: Schema) -> list[str]:
    problems = []
    old_fields, new_fields = old.get("properties", {}), new.get("properties", {})
    for field, old_field in old_fields.items():
        if field not in new_fields:
            problems.append(f"{path}: field {field!r} was removed")
        elif (was := _type_of(old_field)) != (now := _type_of(new_fields[field])):
            problems.append(f"{path}: field {field!r} changed type from {was} to {now}")
    for field in sorted(set(new.get("required", [])) - set(old.get("required", []))):
        problems.append(f"{path}: field {field!r} is newly required")
    return problems


def _type_of(schema: Schema) -> str:
    """A field's type in words, from its schema; descriptions, defaults and examples do not count."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    for union in ("anyOf", "oneOf"):
        if union in schema:
            return " | ".join(sorted(_type_of(option) for option in schema[union]))
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        return " | ".join(sorted(kind))
    if kind == "array":
        return f"array of {_type_of(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
        return f"object of {_type_of(schema['additionalProperties'])}"
    if "enum" in schema:
        return f"{kind} enum"
    if "const" in schema:
        return f"{kind} {schema['const']!r}"
    return f"{kind} ({schema['format']})" if "format" in schema else str(kind)


def check(
    version: str = SCHEMA_VERSION, released_root: Path = RELEASED, current: dict[str, Schema] | None = None
) -> list[str]:
    """The breaking changes against the last release of ``version``'s major; none once the major was raised."""
    major = int(version.split(".")[0])
    released_majors = sorted(int(folder.name) for folder in released_root.iterdir() if folder.name.isdigit())
    if not released_majors:
        return []
    if major < released_majors[-1]:
        return [f"SCHEMA_VERSION {version} is older than the released major version {released_majors[-1]}"]
    if major > released_majors[-1]:
        return []  # a new major version may break what it likes; release it to protect it in turn
    return breaking_changes(released_schemas(released_root / str(major)), current or current_schemas())


def main() -> int:
    problems = check()
    for problem in problems:
        print(f"breaking contract change: {problem}", file=sys.stderr)
    if problems:
        print(
            f"Consumers of the {SCHEMA_VERSION.split('.')[0]}.x contracts would break: undo the change, or raise "
            "the major part of SCHEMA_VERSION in shared/newsflow_shared/contracts.py (and tell consumers).",
            file=sys.stderr,
        )
        return 1
    print(f"the contracts ({SCHEMA_VERSION}) keep every released field and type", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
