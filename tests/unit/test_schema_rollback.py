"""A release put back after a newer one migrated the database (`kubectl rollout undo`) still starts and stores."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.util.exc import CommandError
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
            await connection.execute(text("UPDATE alembic_version SET version_num = '0010'"))
        with caplog.at_level(logging.WARNING, logger="newsflow_shared.db.migrate"):
            await upgrade(database_url)
        [said] = [r.getMessage() for r in caplog.records if "newer than this release knows" in r.getMessage()]
        assert "0010" in said
        async with engine.connect() as connection:
            version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        assert version == "0010"  # left as it was
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


@pytest.mark.parametrize("revision", ["ae1027a6acf", "0042"])
async def test_a_database_of_another_application_is_still_refused(tmp_path: Path, revision: str) -> None:
    """Carried on as "newer", a mistaken DATABASE_URL had no tables of ours, and every article was dead-lettered;
    another application may number its revisions as we do."""
    url = f"sqlite+aiosqlite:///{tmp_path}/other.db"
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
            await connection.execute(text(f"INSERT INTO alembic_version VALUES ('{revision}')"))
        with pytest.raises(CommandError, match="Can't locate revision"):
            await upgrade(url)
    finally:
        await engine.dispose()
