"""One article, one trace: FastStream's telemetry middleware carries the context in Kafka headers from ingest to
storage, and tracing stays off unless the standard OTEL_* variables turn it on."""

from __future__ import annotations

from collections import defaultdict

import pytest
from faststream.kafka import TestKafkaBroker
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from newsflow_shared import stage as stage_module
from newsflow_shared.tracing import enabled, tracer_provider

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)  # the brokers' telemetry middleware uses the global provider
    return EXPORTER


@pytest.mark.slow  # loads the model
async def test_one_article_is_one_trace_from_ingest_to_storage(spans, tmp_path, monkeypatch) -> None:
    from newsflow_classify.app import create_app as create_classify
    from newsflow_classify.settings import ClassifySettings
    from newsflow_cleanup.app import create_app as create_cleanup
    from newsflow_cleanup.settings import CleanupSettings
    from newsflow_ingest.app import create_app as create_ingest
    from newsflow_ingest.settings import IngestSettings
    from newsflow_storage.app import create_app as create_storage
    from newsflow_storage.settings import StorageSettings

    # The four services on one in-memory broker, so what one publishes the next one consumes.
    shared = []
    make_broker = stage_module.make_broker

    def one_broker(*args, **kwargs):
        if not shared:
            shared.append(make_broker(*args, **kwargs))
        return shared[0]

    monkeypatch.setattr(stage_module, "make_broker", one_broker)
    db = f"sqlite+aiosqlite:///{tmp_path}/news.db"
    ingest = create_ingest(IngestSettings(database_url=db))
    cleanup = create_cleanup(CleanupSettings(cleanup_near_duplicates=False, cleanup_learn_boilerplate=False))
    classify = create_classify(ClassifySettings(classify_compile="off"))
    storage = create_storage(StorageSettings(database_url=db))
    [broker] = shared
    spans.clear()
    async with (
        TestKafkaBroker(broker),
        ingest.lifespan_context(),
        cleanup.lifespan_context(),
        classify.lifespan_context(),
        storage.router.lifespan_context(storage),
    ):
        for n in (1, 2):
            await broker.publish(
                f'{{"id": "t{n}", "title": "Storm {n}", "text": "Gales closed the harbour for day {n}."}}'.encode(),
                "articles.raw",
            )
        assert {a.id for a in (await storage.state.repository.search(_all())).items} == {"t1", "t2"}

    by_trace = defaultdict(list)
    for span in spans.get_finished_spans():
        by_trace[span.context.trace_id].append(span)
    for n in (1, 2):
        # The trace that stored article n: it began at ingest and holds every hop's publish.
        [stored] = [s for s in spans.get_finished_spans() if s.name == "articles.stored publish" and _key(s) == f"t{n}"]
        names = {s.name for s in by_trace[stored.context.trace_id]}
        assert {
            "articles.raw process",
            "articles.ingested publish",
            "articles.clean publish",
            "articles.enriched publish",
            "articles.stored publish",
        } <= names
        hops = [s for s in by_trace[stored.context.trace_id] if s.name.endswith(" publish") and _key(s)]
        assert {_key(s) for s in hops} == {f"t{n}"}, "one article's trace holds only its own hops"


def _key(span) -> str:
    key = span.attributes.get("messaging.kafka.message.key", b"")
    return key.decode() if isinstance(key, bytes) else str(key)


def _all():
    from newsflow_storage.repository import Query

    return Query(limit=10)


def test_tracing_is_off_unless_otel_variables_ask() -> None:
    assert not enabled({})
    assert tracer_provider("ingest", {}) is None
    assert enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert enabled({"OTEL_TRACES_EXPORTER": "console"})
    assert not enabled({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert not enabled({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})
    provider = tracer_provider("classify", {"OTEL_TRACES_EXPORTER": "console"})
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "newsflow-classify"
    provider.shutdown()


def test_the_telemetry_middleware_is_on_a_broker_only_while_spans_are_recorded(monkeypatch) -> None:
    """Without a tracer it only read each record's context and baggage to start spans that record nothing."""
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

    from newsflow_shared import ServiceSettings, make_broker
    from newsflow_shared import broker as broker_module

    for spans_recorded in (False, True):
        monkeypatch.setattr(broker_module, "recording", lambda recorded=spans_recorded: recorded)
        middlewares = make_broker(ServiceSettings(), "ingest").middlewares
        assert any(isinstance(m, KafkaTelemetryMiddleware) for m in middlewares) is spans_recorded


async def test_a_record_without_trace_context_starts_its_article_s_own_trace(spans) -> None:
    """What a client pushed without tracing: each article's first hop is a trace of its own, linked to the batch."""
    from newsflow_shared import Emit, IngestedArticle, ServiceSettings, Stage, make_broker

    settings = ServiceSettings()
    stage = Stage(make_broker(settings, "ingest"), settings, name="ingest")
    outputs = [
        Emit(settings.topic_ingested, IngestedArticle(id=i, text="Body", content_hash="h"), i) for i in ("a", "b")
    ]
    spans.clear()
    async with TestKafkaBroker(stage.broker):
        with trace.get_tracer("test").start_as_current_span("batch") as batch:
            await stage.publish(outputs)
    finished = spans.get_finished_spans()
    roots = [s for s in finished if s.name == f"ingest {settings.topic_ingested}"]
    assert len(roots) == 2
    assert len({s.context.trace_id for s in roots}) == 2
    for root in roots:
        assert root.parent is None
        assert root.context.trace_id != batch.get_span_context().trace_id
        assert [link.context.span_id for link in root.links] == [batch.get_span_context().span_id]
    published = {_key(s): s.context.trace_id for s in finished if s.name == f"{settings.topic_ingested} publish"}
    assert set(published.values()) == {s.context.trace_id for s in roots}
