"""The repository and the query API on SQLite (the PostgreSQL run is in tests/integration)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest
from faststream.kafka import TestKafkaBroker

from newsflow_shared import EnrichedArticle, Lineage, TopicScore
from newsflow_shared.db import make_engine, upgrade
from newsflow_shared.health import StageWatch, Verdict
from newsflow_storage import repository as repository_module
from newsflow_storage.app import create_app, open_to_others
from newsflow_storage.repository import ArticleRepository, Query
from newsflow_storage.settings import StorageSettings


def article(
    article_id: str, *, text: str = "Rebels left Douma by bus.", model: str = "m1", **fields: object
) -> EnrichedArticle:
    values: dict[str, object] = {
        "id": article_id,
        "title": f"Story {article_id}",
        "text": text,
        "language": "en",
        "language_confidence": 0.99,
        "content_hash": "hash-" + article_id,
        "source": "Wire",
        "published_at": datetime(2026, 3, 1, 12, tzinfo=UTC),
        "topics": [TopicScore(code="medtop:16000000", label="conflict, war and peace", score=0.8)],
        "lineage": [Lineage(stage="classify", version="1", model=model)],
    }
    values.update(fields)
    return EnrichedArticle.model_validate(values)


@pytest.fixture
async def repository(tmp_path) -> AsyncIterator[ArticleRepository]:
    url = f"sqlite+aiosqlite:///{tmp_path}/store.db"
    await upgrade(url)
    engine = make_engine(url)
    yield ArticleRepository(engine)
    await engine.dispose()


async def test_redelivery_never_duplicates_and_reprocessing_keeps_history(repository: ArticleRepository) -> None:
    await repository.store([article("a")])
    again = await repository.store([article("a"), article("a")])
    assert [s.revision for s in again] == [1]
    updated = await repository.store([article("a", model="m2")])
    assert updated[0].revision == 2
    assert (await repository.stats())["total"] == 1
    history = await repository.revisions("a")
    assert [r["revision"] for r in history] == [1, 2]
    assert [r["enrichment"]["lineage"][-1]["model"] for r in history] == ["m1", "m2"]


async def test_stats_count_the_largest_sources_and_how_many_there_are(
    repository: ArticleRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sources are whatever producers write: /stats names the largest few, however many there are."""
    monkeypatch.setattr(repository_module, "STATS_SOURCES", 2)
    sizes = {"Wire": 3, "Daily": 2, "Blog": 1, "Zine": 2, None: 5}
    await repository.store(
        [article(f"{source}-{n}", source=source) for source, count in sizes.items() for n in range(count)]
    )
    stats = await repository.stats()
    assert stats["by_source"] == {"Wire": 3, "Daily": 2}  # ties by name; the five without a source take no slot
    assert stats["sources"] == 4
    assert stats["total"] == 13


async def test_search_filters_and_paginates(repository: ArticleRepository) -> None:
    await repository.store([article(f"n{i}") for i in range(5)])
    await repository.store(
        [article("sport", text="The striker scored twice.", topics=[], language="de", source="Sport")]
    )
    await repository.store([article("dup", duplicate_of="n1")])

    assert {a.id for a in (await repository.search(Query(q="Douma", limit=50))).items} == {
        *(f"n{i}" for i in range(5)),
        "dup",
    }
    assert [a.id for a in (await repository.search(Query(language="de"))).items] == ["sport"]
    assert [a.id for a in (await repository.search(Query(source="Sport"))).items] == ["sport"]
    assert [a.id for a in (await repository.search(Query(duplicates="only"))).items] == ["dup"]
    assert "dup" not in {a.id for a in (await repository.search(Query(duplicates="exclude", limit=50))).items}
    assert (await repository.search(Query(q='"; DROP TABLE articles; --'))).items == []

    seen, cursor = [], None
    while True:
        page = await repository.search(Query(topic="medtop:16000000", limit=2, cursor=cursor))
        seen += [a.id for a in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted([*(f"n{i}" for i in range(5)), "dup"])


async def test_api_serves_articles_stats_and_guards_with_a_token(tmp_path) -> None:
    settings = StorageSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/api.db", storage_api_token="s3cret-0123456789"
    )
    app = create_app(settings)
    async with TestKafkaBroker(app.state.broker), app.router.lifespan_context(app):
        await app.state.repository.store([article("api-1")])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/articles/api-1")).status_code == 401
            # Outside ASCII, compare_digest raised TypeError: a 500 for anyone, before any token was known.
            for header in ("Bearer éééééééééééééééé".encode(), b"Bearer \xff\xfe"):
                assert (await client.get("/stats", headers={"Authorization": header})).status_code == 401
            client.headers["Authorization"] = "Bearer s3cret-0123456789"
            found = await client.get("/articles", params={"q": "Douma", "topic": "medtop:16000000"})
            assert found.status_code == 200
            assert [a["id"] for a in found.json()["items"]] == ["api-1"]
            assert (await client.get("/articles/api-1")).json()["title"] == "Story api-1"
            assert (await client.get("/articles/missing")).status_code == 404
            assert (await client.get("/articles", params={"limit": 100000})).status_code == 422
            assert (await client.get("/articles", params={"from": "2026-03-01", "to": "2026-03-01"})).json()["items"]
            assert not (await client.get("/articles", params={"from": "2026-03-02"})).json()["items"]
            # A date in ISO 8601's other forms is a whole day too: read as midnight, "to" left that day out.
            for day in ("20260301", "2026-W09-7", "2026W097"):
                assert (await client.get("/articles", params={"from": day, "to": day})).json()["items"], day
            for week in ("2026-W09", "2026W09T10:00"):
                assert (await client.get("/articles", params={"to": week})).status_code == 422  # which day?
            stats = (await client.get("/stats")).json()
            assert stats["total"] == 1
            assert stats["by_topic"] == {"medtop:16000000": 1}
            assert stats["by_language"] == {"en": 1}
            assert (await client.get("/health")).json()["status"] == "ok"
            assert "/articles" in (await client.get("/openapi.json")).json()["paths"]
            assert (await client.get("/ready/api")).json() == {"status": "ok", "problems": [], "lag": {}}


async def test_the_api_stays_ready_while_kafka_is_away(tmp_path, monkeypatch) -> None:
    """Only the consumer needs Kafka: the API's readiness asks the database alone, and says when it is away."""
    app = create_app(StorageSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/ready.db"))

    async def kafka_away(self: StageWatch) -> Verdict:
        return Verdict(problems=["Kafka does not answer"])

    monkeypatch.setattr(StageWatch, "readiness", kafka_away)
    async with TestKafkaBroker(app.state.broker), app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/ready")).status_code == 503
            assert (await client.get("/ready/api")).status_code == 200

            async def database_away() -> None:
                raise ConnectionRefusedError

            monkeypatch.setattr(app.state.repository, "ping", database_away)
            away = await client.get("/ready/api")
            assert away.status_code == 503
            assert away.json()["problems"] == ["the database does not answer: ConnectionRefusedError"]


async def test_api_serves_ids_with_slashes_and_other_scripts(tmp_path) -> None:
    settings = StorageSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/ids.db")
    app = create_app(settings)
    odd = ["../../etc/passwd", "статья-記事-مقال", "https://example.com/a?b=c&d=e#f"]
    async with TestKafkaBroker(app.state.broker), app.router.lifespan_context(app):
        await app.state.repository.store([article(i) for i in odd])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for article_id in odd:
                quoted = "/articles/" + quote(article_id, safe="")  # as clients encode a path segment
                found = await client.get(quoted)
                assert found.status_code == 200, (article_id, found.text)
                assert found.json()["id"] == article_id
                revisions = await client.get(quoted + "/revisions")
                assert [r["revision"] for r in revisions.json()] == [1]


@pytest.mark.parametrize("sort", ["date", "relevance"])
async def test_a_page_of_long_articles_stops_at_its_text_budget_and_the_cursor_goes_on(
    database_url: str, sort: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 articles at ingest's 2 MiB limit, with the text as it arrived, made one page of over a gigabyte."""
    monkeypatch.setattr(repository_module, "PAGE_TEXT_BUDGET", 250_000)
    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        repo = ArticleRepository(engine)
        long_text = "Douma " + "word " * 20_000  # 100,006 characters
        await repo.store([article(f"long-{i}", text=long_text, arrived_text=long_text) for i in range(5)])
        await repo.store([article(f"short-{i}") for i in range(3)])
        seen: list[list[str]] = []
        cursor = None
        while True:
            page = await repo.search(Query(q="Douma", sort=sort, limit=10, cursor=cursor))
            seen.append([item.id for item in page.items])
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        ids = [article_id for page_ids in seen for article_id in page_ids]
        assert sorted(ids) == sorted([*(f"long-{i}" for i in range(5)), *(f"short-{i}" for i in range(3))])
        for page_ids in seen:  # 200,012 characters an article: one a page, with the short ones beside one of them
            assert sum(1 for i in page_ids if i.startswith("long-")) == 1
        assert len(seen) == 5
    finally:
        await engine.dispose()


def test_an_api_open_beyond_this_machine_without_a_token_is_said() -> None:
    """The image listens on 0.0.0.0 (a container's port must be reachable): with no token, that is said at start."""
    assert open_to_others(StorageSettings(storage_api_host="0.0.0.0"))
    assert open_to_others(StorageSettings(storage_api_host="storage.internal"))
    assert not open_to_others(StorageSettings(storage_api_host="0.0.0.0", storage_api_token="t" * 32))
    for here in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST", "localhost."):
        assert not open_to_others(StorageSettings(storage_api_host=here))


async def test_a_word_repeated_in_a_search_is_matched_and_ranked_once(repository: ArticleRepository) -> None:
    """ "a" 249 times, sorted by relevance, cost 16 s of CPU over 20,000 articles: FTS5's ranking grew with the square
    of the repeats. A repeated word matches what it matches once, so it is asked for once."""
    from sqlalchemy import event

    await repository.store(
        [article(f"n{i}", text=f"A storm hit a city and a bus {'a ' * i}stopped.") for i in range(6)]
    )
    await repository.store([article("other", text="Rebels left Douma by bus.")])
    asked: list[str] = []

    @event.listens_for(repository.engine.sync_engine, "before_cursor_execute")
    def note(_conn: object, _cursor: object, statement: str, parameters: object, _context: object, _many: bool) -> None:
        if "MATCH" in statement:
            asked.extend(str(p) for p in (parameters if isinstance(parameters, tuple | list) else [parameters]))

    once = await repository.search(Query(q="a bus", sort="relevance", limit=50))
    repeated = await repository.search(Query(q=" ".join(["a", "A"] * 120) + " bus BUS", sort="relevance", limit=50))
    assert [a.id for a in repeated.items] == [a.id for a in once.items]
    assert {a.id for a in once.items} == {f"n{i}" for i in range(6)}
    assert asked
    assert all(p.count('"a"') <= 1 and '"A"' not in p for p in asked), asked
