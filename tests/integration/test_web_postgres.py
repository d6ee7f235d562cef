"""Storage's web page on PostgreSQL: every page answers, relevance uses ts_rank, dead letters are kept once."""

from __future__ import annotations

import httpx
import pytest
from faststream.kafka import TestKafkaBroker

from newsflow_shared.db import make_engine, upgrade
from newsflow_storage.app import create_app
from newsflow_storage.repository import ArticleRepository
from newsflow_storage.settings import StorageSettings
from newsflow_storage.web import browse

from .. import webdata

pytestmark = pytest.mark.postgres


async def test_every_page_answers_on_postgresql(fresh_postgres: str) -> None:
    app = create_app(StorageSettings(database_url=fresh_postgres, kafka_bootstrap_servers="127.0.0.1:9"))
    async with TestKafkaBroker(app.state.broker), app.router.lifespan_context(app):
        await app.state.repository.store([webdata.seed_article(), webdata.hostile_article()])
        for _ in range(2):  # a redelivered batch of dead letters adds no row
            await app.state.dead_letters.keep([webdata.dead_letter(i) for i in range(3)])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            for path in (
                "/?q=Douma",
                "/?q=Douma&sort=relevance",
                "/?topic=medtop:16000000",
                "/?language=en&source=Seed+Wire",
                "/?from=2018-04-01&to=2018-04-30",
                f"/article/{webdata.SEED_ID}",
            ):
                page = await client.get(path)
                assert page.status_code == 200, path
                assert webdata.SEED_ID in page.text or "Latest News" in page.text, path
            pipeline = await client.get("/pipeline")
            assert "Re-drive all 3" in pipeline.text
            assert (await client.get("/articles", params={"source": "a\x00b"})).status_code == 422
            ranked = await client.get("/articles", params={"q": "Douma", "sort": "relevance"})
            assert [a["id"] for a in ranked.json()["items"]] == [webdata.SEED_ID]


async def test_facets_page_and_total_are_what_a_count_by_hand_finds_on_postgresql(
    fresh_postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await upgrade(fresh_postgres)
    repo = ArticleRepository(make_engine(fresh_postgres))
    corpus = webdata.facet_corpus()
    for article in corpus:  # one batch each: every article its own stored_at, newest last
        await repo.store([article])
    monkeypatch.setattr(browse, "FACET_SAMPLE", 25)
    monkeypatch.setattr(browse, "COUNT_CAP", 28)
    try:
        await webdata.check_facets(repo, corpus, exact_words=False)
        monkeypatch.setattr(browse, "FACET_SAMPLE", 3)
        await webdata.check_facets(repo, corpus, exact_words=False, limit=2)
    finally:
        await repo.engine.dispose()
