"""The search page's facets, page and total against a count by hand, on SQLite (PostgreSQL: test_web_postgres)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from newsflow_shared.db import make_engine, upgrade
from newsflow_storage.repository import ArticleRepository
from newsflow_storage.web import browse

from .. import webdata


@pytest.mark.parametrize(("sample", "cap", "limit"), [(25, 28, 7), (3, 28, 2)])
async def test_facets_page_and_total_are_what_a_count_by_hand_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample: int, cap: int, limit: int
) -> None:
    """A sample of 3 puts common words in a window of the newest candidates, and the word only older
    articles have sends the sample back to every match: both must count what the hand counts."""
    url = f"sqlite+aiosqlite:///{tmp_path}/facets.db"
    await upgrade(url)
    repo = ArticleRepository(make_engine(url))
    corpus = webdata.facet_corpus()
    for article in corpus:  # one batch each: every article its own stored_at, newest last
        await repo.store([article])
    monkeypatch.setattr(browse, "FACET_SAMPLE", sample)
    monkeypatch.setattr(browse, "COUNT_CAP", cap)
    calls: list[tuple[Any, int | None]] = []  # (query, window) of each sample asked for
    sample_counts = browse._sample_counts

    async def spy(*args: Any) -> Any:
        calls.append((args[2], args[-1]))
        return await sample_counts(*args)

    monkeypatch.setattr(browse, "_sample_counts", spy)
    try:
        await webdata.check_facets(repo, corpus, exact_words=True, limit=limit)
    finally:
        await repo.engine.dispose()
    narrowed = [query.q for query, window in calls if window is not None]
    again = [a[0].q for a, b in pairwise(calls) if a[0] is b[0] and a[1] is not None and b[1] is None]
    if sample == 3:
        assert "harbour" in narrowed, "a common word was not narrowed to a window"
        assert set(again) == {"archive"}, "the word only older articles have did not go back to every match"
    else:
        assert not narrowed
