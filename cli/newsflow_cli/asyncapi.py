"""The AsyncAPI document of the whole pipeline, written by FastStream from the four services' own brokers.

Each service's ``create_app`` is built with the default settings (nothing connects
or loads a model: that happens in their lifespans), and FastStream's AsyncAPI
factory joins their subscribers and publishers into one document. The committed
copy is ``schemas/asyncapi.yaml``; ``newsflow schemas`` rewrites it.
"""

from __future__ import annotations

from typing import Any

import yaml
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from newsflow_shared import SCHEMA_VERSION, ServiceSettings
from newsflow_shared.asyncapi import with_consumed_payloads

DESCRIPTION = """\
Newsflow enriches news articles over Kafka: ingest validates and identifies what users push to articles.raw, \
cleanup repairs the text and detects the language, classify tags IPTC Media Topics, storage stores each article \
and announces it on articles.stored. Every message is JSON; the article id is the Kafka key after ingest; every \
message carries the newsflow-trace-id header. The version is the contracts' schema_version: a consumer \
dead-letters a major version it does not know."""


def service_brokers() -> list[KafkaBroker]:
    """The brokers the four services run, as their app factories wire them with the default settings.

    ``model_construct`` takes the defaults without reading the environment, so the
    document describes the defaults wherever it is generated.
    """
    from newsflow_classify.app import create_app as classify
    from newsflow_classify.settings import ClassifySettings
    from newsflow_cleanup.app import create_app as cleanup
    from newsflow_cleanup.settings import CleanupSettings
    from newsflow_ingest.app import create_app as ingest
    from newsflow_ingest.settings import IngestSettings
    from newsflow_storage.app import create_app as storage
    from newsflow_storage.settings import StorageSettings

    return [
        ingest(IngestSettings.model_construct()).broker,
        cleanup(CleanupSettings.model_construct()).broker,
        classify(ClassifySettings.model_construct()).broker,
        storage(StorageSettings.model_construct()).state.broker,
    ]


def pipeline_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the pipeline, as plain JSON data."""
    specification = AsyncAPI(
        *service_brokers(), title="Newsflow", version=SCHEMA_VERSION, description=DESCRIPTION
    ).to_specification()
    document = with_consumed_payloads(specification.to_jsonable(), ServiceSettings.model_construct())
    # FastStream lists a broker's publishers in no fixed order: sort, so the committed copy only changes with the code.
    for section in (document["channels"], document["operations"], *document["components"].values()):
        ordered = sorted(section.items())
        section.clear()
        section.update(ordered)
    return document


def pipeline_yaml() -> str:
    return yaml.safe_dump(pipeline_document(), sort_keys=False, allow_unicode=True, width=120)
