"""Each service's handler through FastStream's in-memory broker: records in, topics out, nothing to Kafka."""

from __future__ import annotations

import json

from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from newsflow_cleanup.app import create_app as create_cleanup
from newsflow_cleanup.settings import CleanupSettings
from newsflow_ingest.app import create_app as create_ingest
from newsflow_ingest.settings import IngestSettings
from newsflow_shared import (
    TRACE_HEADER,
    CleanArticle,
    DeadLetter,
    EnrichedArticle,
    IngestedArticle,
    SkippedArticle,
    StoredArticle,
    TopicScore,
)
from newsflow_shared.delivery import trace_id_of
from newsflow_shared.health import watch_of
from newsflow_storage.repository import Query

Sent = list[tuple[str, bytes, dict[str, str]]]


def capture(broker: KafkaBroker, *topics: str) -> Sent:
    """Subscribe to ``topics`` in memory: what the services publish there lands in the returned list."""
    sent: Sent = []
    for topic in topics:

        @broker.subscriber(topic, group_id="test-capture")
        async def record(message: KafkaMessage) -> None:
            sent.append((message.raw_message.topic, message.body, message.headers))

    return sent


async def test_ingest_passes_valid_articles_and_dead_letters_the_rest(tmp_path) -> None:
    settings = IngestSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    app = create_ingest(settings)
    broker = app.broker
    spy = capture(broker, settings.topic_ingested, settings.topic_skipped, settings.topic_dlq)
    async with TestKafkaBroker(broker), app.lifespan_context():
        await broker.publish(
            b'{"id": "a1", "title": "T", "text": "Body"}', settings.topic_raw, headers={TRACE_HEADER: "t1"}
        )
        await broker.publish(b"not json at all", settings.topic_raw, headers={TRACE_HEADER: "t2"})
        await broker.publish(
            b'{"id": "a1", "title": "T", "text": "Body"}', settings.topic_raw, headers={TRACE_HEADER: "t3"}
        )

    topics = [topic for topic, _, _ in spy]
    assert topics == [settings.topic_ingested, settings.topic_dlq, settings.topic_skipped]
    ingested = IngestedArticle.model_validate_json(spy[0][1])
    assert ingested.id == "a1"
    assert ingested.text == "Body"
    assert spy[0][2][TRACE_HEADER] == "t1"
    letter = DeadLetter.model_validate_json(spy[1][1])
    assert letter.stage == "ingest"
    assert "not valid JSON" in letter.reason
    assert letter.original == b"not json at all"
    assert letter.headers[TRACE_HEADER] == "t2"
    assert SkippedArticle.model_validate_json(spy[2][1]).id == "a1"


async def test_a_record_s_reply_to_header_is_not_answered(tmp_path) -> None:
    """FastStream answers a record's ``reply_to`` header by default: a sender could make any stage write an empty
    record to any topic, and one it could not send rewound the batch after its outputs were sent, again and again."""
    settings = IngestSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    app = create_ingest(settings)
    broker = app.broker
    spy = capture(broker, settings.topic_ingested, settings.topic_stored, settings.topic_dlq)
    async with TestKafkaBroker(broker), app.lifespan_context():
        await broker.publish(
            b'{"id": "a1", "title": "T", "text": "Body"}', settings.topic_raw, headers={"reply_to": "articles.stored"}
        )
        await broker.publish(b"not json", settings.topic_raw, headers={"reply_to": settings.topic_stored})

    assert [topic for topic, _, _ in spy] == [settings.topic_ingested, settings.topic_dlq]


async def test_ingest_gives_a_record_without_a_trace_id_one_made_from_where_it_sits(tmp_path) -> None:
    settings = IngestSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    app = create_ingest(settings)
    broker = app.broker
    spy = capture(broker, settings.topic_ingested, settings.topic_dlq)
    async with TestKafkaBroker(broker), app.lifespan_context():
        await broker.publish(b'{"id": "a1", "title": "T", "text": "Body"}', settings.topic_raw)
        await broker.publish(b"not json at all", settings.topic_raw)

    assert [topic for topic, _, _ in spy] == [settings.topic_ingested, settings.topic_dlq]
    letter = DeadLetter.model_validate_json(spy[1][1])
    # The in-memory broker puts every record at offset 0; Kafka gives each its own (test_delivery.py).
    expected = trace_id_of(settings.topic_raw, letter.source_partition, letter.source_offset)
    assert [headers.get(TRACE_HEADER) for _, _, headers in spy] == [expected, expected]
    assert letter.headers[TRACE_HEADER] == expected


async def test_cleanup_turns_ingested_into_clean_and_rejects_empty() -> None:
    settings = CleanupSettings()
    app = create_cleanup(settings)
    spy = capture(app.broker, settings.topic_clean, settings.topic_dlq)
    good = IngestedArticle(id="c1", title="Title", text="First paragraph here.\n\nLatest News", content_hash="h")
    empty = IngestedArticle(id="c2", html="<html><body><nav>Home</nav></body></html>", content_hash="h")
    async with TestKafkaBroker(app.broker):
        await app.broker.publish(good.model_dump_json().encode(), settings.topic_ingested)
        await app.broker.publish(empty.model_dump_json().encode(), settings.topic_ingested, key=b"c2")

    clean = CleanArticle.model_validate_json(spy[0][1])
    assert spy[0][0] == settings.topic_clean
    assert clean.text == "First paragraph here."
    assert clean.removed[0].what == "Latest News"
    letter = json.loads(spy[1][1])
    assert spy[1][0] == settings.topic_dlq
    assert letter["error"] == "EmptyArticle"
    assert letter["article_id"] == "c2"


async def test_classify_tags_a_batch_and_isolates_a_bad_record() -> None:
    from newsflow_classify.app import create_app as create_classify
    from newsflow_classify.settings import ClassifySettings

    settings = ClassifySettings()
    app = create_classify(settings)
    spy = capture(app.broker, settings.topic_enriched, settings.topic_dlq)
    article = CleanArticle(
        id="k1",
        title="Striker scores twice as champions win the cup final",
        text="The striker scored twice in the second half as the champions won the cup final 3-1 in front of 80,000 fans.",
        language="en",
        language_confidence=0.99,
        content_hash="h",
    )
    async with TestKafkaBroker(app.broker), app.lifespan_context():
        await app.broker.publish(article.model_dump_json().encode(), settings.topic_clean, key=b"k1")
        await app.broker.publish(b'{"id": "k2", "text": 5}', settings.topic_clean)

    enriched = EnrichedArticle.model_validate_json(spy[0][1])
    assert spy[0][0] == settings.topic_enriched
    assert enriched.topics[0].code == "medtop:15000000"  # sport
    assert enriched.lineage[-1].stage == "classify"
    assert "IPTC" in enriched.lineage[-1].details["taxonomy"]
    assert spy[1][0] == settings.topic_dlq
    assert "CleanArticle contract" in json.loads(spy[1][1])["reason"]
    # The model's time is measured by the service, whatever the model: one observation per article classified.
    watch = watch_of(app.broker)
    assert watch is not None
    assert watch.metrics.registry.get_sample_value("newsflow_inference_seconds_per_article_count") == 1


async def test_storage_writes_once_and_announces(tmp_path) -> None:
    from newsflow_storage.app import create_app as create_storage
    from newsflow_storage.settings import StorageSettings

    settings = StorageSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    app = create_storage(settings)
    broker = app.state.broker
    spy = capture(broker, settings.topic_stored, settings.topic_dlq)
    article = EnrichedArticle(
        id="s1",
        title="T",
        text="Body",
        language="en",
        language_confidence=1.0,
        content_hash="h",
        topics=[TopicScore(code="medtop:20000056", label="armed conflict", score=0.5, level=2)],
    )
    async with TestKafkaBroker(broker), app.router.lifespan_context(app):
        for _ in range(2):  # a redelivery
            await broker.publish(article.model_dump_json().encode(), settings.topic_enriched, key=b"s1")
        stored = await app.state.repository.get("s1")
        by_parent = await app.state.repository.search(Query(topic="medtop:16000000"))

    assert [t for t, _, _ in spy] == [settings.topic_stored, settings.topic_stored]
    assert [StoredArticle.model_validate_json(body).revision for _, body, _ in spy] == [1, 1]
    assert stored is not None
    assert stored.text == "Body"
    assert [a.id for a in by_parent.items] == ["s1"]  # rolled up from the narrower topic


async def test_cleanup_sends_languages_outside_the_allowlist_to_unsupported() -> None:
    settings = CleanupSettings(language_allowlist="en,fr")
    app = create_cleanup(settings)
    spy = capture(app.broker, settings.topic_clean, settings.topic_unsupported)
    german = IngestedArticle(
        id="de-1",
        text="Die Bundesregierung hat am Montag ein neues Gesetz zur Förderung erneuerbarer Energien beschlossen.",
        content_hash="h",
    )
    english = IngestedArticle(
        id="en-1", text="The government approved a new law on renewable energy on Monday.", content_hash="h"
    )
    unsure = IngestedArticle(id="short-1", text="Minister stapt op", content_hash="h")  # too short to be sure
    # In none of the candidates: und, as sure as py3langid is of its language (Georgian), so diverted too.
    georgian = IngestedArticle(id="ka-1", text="ქალაქის მერიამ ახალი ავტობუსები გამოაცხადა.", content_hash="h")
    async with TestKafkaBroker(app.broker):
        for article in (german, english, unsure, georgian):
            await app.broker.publish(article.model_dump_json().encode(), settings.topic_ingested, key=article.id)

    assert [(topic, json.loads(body)["id"]) for topic, body, _ in spy] == [
        (settings.topic_unsupported, "de-1"),
        (settings.topic_clean, "en-1"),
        (settings.topic_clean, "short-1"),  # a weak guess does not divert an article
        (settings.topic_unsupported, "ka-1"),
    ]
    assert json.loads(spy[0][1])["language"] == "de"
    assert json.loads(spy[3][1])["language"] == "und"


async def test_storage_answers_both_copies_of_one_article_in_a_batch(tmp_path) -> None:
    from newsflow_shared import Delivery, Stage
    from newsflow_shared.db import make_engine, upgrade
    from newsflow_storage.app import Store
    from newsflow_storage.repository import ArticleRepository
    from newsflow_storage.settings import StorageSettings

    settings = StorageSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/copies.db")
    await upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    store = Store(settings, Stage(None, settings, name="storage"))  # type: ignore[arg-type]
    store.repository = ArticleRepository(engine)
    copies = [
        EnrichedArticle(id="same", title=title, text="Body", language="en", language_confidence=1.0, content_hash=title)
        for title in ("first", "second")
    ]
    outputs = await store.handle([Delivery(value=c.model_dump_json().encode(), key=b"same") for c in copies])
    await engine.dispose()
    assert len(outputs) == 2  # every record is answered
    assert [o.message.title for o in outputs] == ["second", "second"]  # type: ignore[union-attr]  # the later copy won


async def test_ingest_keeps_the_id_an_article_was_passed_on_under_before_urls_were_canonical(tmp_path) -> None:
    """Ids of URLs with a tracking parameter (a default port, a login...) moved when URLs became canonical: an article
    passed on under its former id keeps it, or storage would hold a second copy of it under the new one."""
    from newsflow_ingest.logic import former_id, url_id
    from newsflow_ingest.seen import SeenStore
    from newsflow_shared import RawArticle
    from newsflow_shared.db import make_engine

    database_url = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    settings = IngestSettings(database_url=database_url)
    known = {"title": "T", "text": "Body, corrected", "url": "https://news.example.com/story?utm_source=feed"}
    former = former_id(RawArticle.model_validate(known), url_id(known["url"]))
    assert former is not None
    assert former != url_id(known["url"])
    unknown = {"title": "T", "text": "Other", "url": "https://news.example.com/other?utm_source=feed"}
    app = create_ingest(settings)
    broker = app.broker
    spy = capture(broker, settings.topic_ingested, settings.topic_skipped, settings.topic_dlq)
    forgotten = {"title": "T", "text": "Fixed", "url": "https://news.example.com/refused?utm_source=feed"}
    forgotten_former = former_id(RawArticle.model_validate(forgotten), url_id(forgotten["url"]))
    async with TestKafkaBroker(broker), app.lifespan_context():
        engine = make_engine(database_url)
        store = SeenStore(engine)
        await store.remember({former: "the hash of the version stored before"})
        # Stored under its former id, then a newer version was refused by a later stage and forgotten: the stored
        # version is still there under that id.
        await store.remember({forgotten_former: "the hash of the version stored before"})
        await store.forget([forgotten_former])
        await engine.dispose()
        for raw in (known, known, unknown, forgotten):
            await broker.publish(json.dumps(raw).encode(), settings.topic_raw)

    topics = [topic for topic, _, _ in spy]
    assert topics == [settings.topic_ingested, settings.topic_skipped, settings.topic_ingested, settings.topic_ingested]
    assert IngestedArticle.model_validate_json(spy[0][1]).id == former  # a revision of the stored article
    assert SkippedArticle.model_validate_json(spy[1][1]).id == former  # then an exact re-send of it
    assert IngestedArticle.model_validate_json(spy[2][1]).id == url_id("https://news.example.com/other")
    assert IngestedArticle.model_validate_json(spy[3][1]).id == forgotten_former
