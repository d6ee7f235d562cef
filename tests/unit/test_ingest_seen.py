"""Ingest's memory of what it passed on, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
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


async def test_a_forgetting_that_lands_before_its_remembering_stands(database_url: str) -> None:
    """Ingest remembers a batch after Kafka took it; a later stage can refuse one of its articles, and ingest forget
    it, before then. The late row brought it back, and the corrected article, pushed again, was skipped as seen."""
    await upgrade(database_url)
    engine = make_engine(database_url)
    seen = SeenStore(engine)
    try:
        passed_at = datetime.now(UTC)  # the batch's outputs go out
        await seen.forget(["refused"])  # cleanup refused it, the DLQ reader forgot it: no row yet
        await seen.remember({"refused": "hash-1", "fine": "hash-2"}, passed_at)  # the batch's rows land late
        assert await seen.lookup(["refused", "fine"]) == {"fine": "hash-2"}
        # A later version passed on after the forgetting is remembered as ever, and a later forgetting wins again.
        await seen.remember({"refused": "hash-3"}, datetime.now(UTC))
        assert await seen.lookup(["refused"]) == {"refused": "hash-3"}
        await seen.forget(["refused", "fine"])
        assert await seen.lookup(["refused", "fine"]) == {}
    finally:
        await engine.dispose()


async def test_ids_no_article_can_have_are_not_forgotten(database_url: str) -> None:
    """A dead letter written by hand can name any id: one over 200 characters, or with a NUL, failed the forgetting
    of its whole batch on PostgreSQL (and the reader retried it); such ids were never remembered, so none is due."""
    await upgrade(database_url)
    engine = make_engine(database_url)
    seen = SeenStore(engine)
    try:
        await seen.remember({"refused": "hash-1"})
        await seen.forget(["refused", "x" * 201, "nul\x00id", "with space", ""])
        assert await seen.lookup(["refused"]) == {}
        async with engine.connect() as connection:
            assert (await connection.execute(select(ingest_seen.c.article_id))).scalars().all() == ["refused"]
    finally:
        await engine.dispose()
