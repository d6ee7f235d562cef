"""Ingest's memory of what it passed on, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine.default import CACHE_HIT

from newsflow_ingest.seen import SeenStore
from newsflow_shared.db import make_engine, upgrade
from newsflow_shared.db.tables import ingest_seen


async def remembers_the_last_hash_and_the_first_sighting(url: str) -> None:
    await upgrade(url)
    engine = make_engine(url)
    cache: list[object] = []  # each INSERT's CacheStats

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def note_cache(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            cache.append(context.cache_hit)

    seen = SeenStore(engine)
    try:
        await seen.remember({"a": "hash-a", "b": "hash-b"})
        async with engine.connect() as connection:
            first = dict(
                (await connection.execute(select(ingest_seen.c.article_id, ingest_seen.c.first_seen_at))).all()
            )
        await seen.remember({"b": "hash-b2", "c": "hash-c", "d": "hash-d"})

        assert await seen.lookup(["a", "b", "c", "d", "e"]) == {
            "a": "hash-a",
            "b": "hash-b2",
            "c": "hash-c",
            "d": "hash-d",
        }
        async with engine.connect() as connection:
            b = (await connection.execute(select(ingest_seen).where(ingest_seen.c.article_id == "b"))).one()
        assert b.first_seen_at == first["b"]  # the first sighting stays, the last one moves
        assert b.last_seen_at > b.first_seen_at
        # A batch of another size reuses the compiled statement: compiling it for every batch was ingest's CPU.
        assert len(cache) == 2
        assert cache[-1] == CACHE_HIT
    finally:
        await engine.dispose()


async def test_seen_store_on_sqlite(tmp_path: Path) -> None:
    await remembers_the_last_hash_and_the_first_sighting(f"sqlite+aiosqlite:///{tmp_path}/seen.db")


@pytest.mark.postgres
async def test_seen_store_on_postgres(fresh_postgres: str) -> None:
    await remembers_the_last_hash_and_the_first_sighting(fresh_postgres)
