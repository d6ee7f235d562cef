"""The search page's facets, page and total against a count by hand, on SQLite (PostgreSQL: test_web_postgres)."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsflow_shared.db import make_engine, upgrade
from newsflow_storage.repository import ArticleRepository
from newsflow_storage.web import browse

from .. import webdata


async def test_facets_page_and_total_are_what_a_count_by_hand_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/facets.db"
    await upgrade(url)
    repo = ArticleRepository(make_engine(url))
    corpus = webdata.facet_corpus()
    for article in corpus:  # one batch each: every article its own stored_at, newest last
        await repo.store([article])
    monkeypatch.setattr(browse, "FACET_SAMPLE", 25)
    monkeypatch.setattr(browse, "COUNT_CAP", 28)
    try:
        await webdata.check_facets(repo, corpus, exact_words=True)
    finally:
        await repo.engine.dispose()
