"""A release put back after a newer one migrated the database (`kubectl rollout undo`) still starts and stores."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from newsflow_shared import EnrichedArticle
from newsflow_shared.db import make_engine, upgrade
from newsflow_storage.repository import ArticleRepository


async def test_a_schema_newer_than_this_release_is_used_as_it_is(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Alembic refused ("Can't locate revision identified by '0010'"), and every replica that uses the database
    crash-looped. Within a major version migrations only add, so this release carries on, saying so."""
    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        async with engine.begin() as connection:  # as a newer release's migration leaves it: a column more
            await connection.execute(text("ALTER TABLE articles ADD COLUMN added_later TEXT"))
            await connection.execute(text("UPDATE alembic_version SET version_num = '0010_from_the_future'"))
        with caplog.at_level(logging.WARNING, logger="newsflow_shared.db.migrate"):
            await upgrade(database_url)
        [said] = [r.getMessage() for r in caplog.records if "newer than this release knows" in r.getMessage()]
        assert "0010_from_the_future" in said
        async with engine.connect() as connection:
            version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        assert version == "0010_from_the_future"  # left as it was
        article = EnrichedArticle(
            id="after-rollback",
            text="Storms closed the ports.",
            language="en",
            language_confidence=0.9,
            content_hash="h",
            published_at=datetime(2026, 3, 1, tzinfo=UTC),
        )
        await ArticleRepository(engine).store([article])
        assert (await ArticleRepository(engine).get("after-rollback")) is not None
    finally:
        await engine.dispose()
