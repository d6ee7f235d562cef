"""What each topic carries, for the AsyncAPI document FastStream writes from the services' brokers.

Stages send their records themselves (``Stage.publish``: the topic is chosen per record), and they read
raw records (decoding is theirs, so one bad record cannot fail a batch): FastStream
sees neither a publisher object nor a payload type. So each service names the topics
it sends to with :func:`declare_outputs` (publisher objects that exist to be
documented), and :func:`with_consumed_payloads` fills each subscriber's message with
the contract of the topic it reads. The contract of each topic is written here once.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .contracts import (
    CleanArticle,
    DeadLetter,
    EnrichedArticle,
    IngestedArticle,
    RawArticle,
    SkippedArticle,
    StoredArticle,
)
from .settings import ServiceSettings
from .stage import Stage


def contract_of_topic(settings: ServiceSettings) -> dict[str, type[BaseModel]]:
    """Topic name -> the contract of its messages (the README's Contracts table)."""
    return {
        settings.topic_raw: RawArticle,
        settings.topic_ingested: IngestedArticle,
        settings.topic_clean: CleanArticle,
        settings.topic_enriched: EnrichedArticle,
        settings.topic_stored: StoredArticle,
        settings.topic_skipped: SkippedArticle,
        settings.topic_unsupported: CleanArticle,
        settings.topic_dlq: DeadLetter,
    }


def declare_outputs(stage: Stage, *topics: str) -> None:
    """Publisher objects for ``topics`` and the DLQ, each with its contract, so the AsyncAPI document lists them."""
    contracts = contract_of_topic(stage.settings)
    for topic in dict.fromkeys([*topics, stage.settings.topic_dlq]):
        contract = contracts[topic]
        stage.broker.publisher(
            topic,
            schema=contract,
            title=f"{stage.name}:{topic}",
            description=f"{stage.name} sends {contract.__name__}: {(contract.__doc__ or '').strip().splitlines()[0]}",
        )


def with_consumed_payloads(document: dict[str, Any], settings: ServiceSettings) -> dict[str, Any]:
    """Give every received message the contract of its topic instead of FastStream's empty payload."""
    contracts = contract_of_topic(settings)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for operation in document.get("operations", {}).values():
        if operation["action"] != "receive":
            continue
        channel = document["channels"][operation["channel"]["$ref"].rsplit("/", 1)[-1]]
        contract = contracts[channel["address"]]
        for reference in channel["messages"].values():
            message = document["components"]["messages"][reference["$ref"].rsplit("/", 1)[-1]]
            message["payload"] = {"$ref": f"#/components/schemas/{contract.__name__}"}
        _add_schema(schemas, contract)
    if not _refers_to(document, "EmptyPayload"):
        schemas.pop("EmptyPayload", None)
    return document


def _add_schema(schemas: dict[str, Any], contract: type[BaseModel]) -> None:
    schema = contract.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas.setdefault(contract.__name__, schema)


def _refers_to(document: dict[str, Any], name: str) -> bool:
    return f"#/components/schemas/{name}" in str(document.get("components", {}).get("messages", {}))
