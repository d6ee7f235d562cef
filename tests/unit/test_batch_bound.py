"""BATCH_MAX_RECORDS has a ceiling that every database statement of a batch holds at.

A batch's ids go into ``IN`` lists, one bound value each, and asyncpg binds at most 32,767 values to a statement.
A setting above that made every batch on PostgreSQL fail, retried as the database's trouble: the stage stopped.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from newsflow_classify.settings import ClassifySettings
from newsflow_cleanup.near_duplicates import DuplicateIndex
from newsflow_ingest.seen import SeenStore
from newsflow_shared import ServiceSettings
from newsflow_shared.db import make_engine, upgrade
from newsflow_shared.failures import Fault, fault_of
from newsflow_shared.settings import MOST_RECORDS_A_BATCH
from newsflow_storage.repository import ArticleRepository
from newsflow_storage.settings import StorageSettings

from .test_storage import article

IDS = [f"article-{number}" for number in range(MOST_RECORDS_A_BATCH)]


@pytest.mark.parametrize("settings", [ServiceSettings, StorageSettings, ClassifySettings])
def test_a_batch_larger_than_the_statements_hold_is_refused_at_start(settings: type[ServiceSettings]) -> None:
    assert settings(batch_max_records=MOST_RECORDS_A_BATCH).batch_max_records == MOST_RECORDS_A_BATCH
    with pytest.raises(ValidationError, match="less than or equal to 10000"):
        settings(batch_max_records=MOST_RECORDS_A_BATCH + 1)


async def test_the_largest_batch_passes_through_each_stage_s_statements(database_url: str) -> None:
    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        seen = SeenStore(engine)
        await seen.remember({article_id: "hash" for article_id in IDS})
        assert len(await seen.lookup(IDS)) == MOST_RECORDS_A_BATCH
        await seen.forget(IDS)
        assert await seen.lookup(IDS) == {}

        async with engine.begin() as connection:
            matches = await DuplicateIndex(engine).check_and_add_many(
                connection, [(article_id, f"Story number {article_id} and its words") for article_id in IDS]
            )
        assert len(matches) == MOST_RECORDS_A_BATCH

        stored = await ArticleRepository(engine).store([article(article_id) for article_id in IDS])
        assert [a.revision for a in stored] == [1] * MOST_RECORDS_A_BATCH
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_past_the_ceiling_postgres_refuses_the_statement(fresh_postgres: str) -> None:
    """Why the ceiling: four times it is more values than asyncpg binds, an error that reads as the database's."""
    await upgrade(fresh_postgres)
    engine = make_engine(fresh_postgres)
    try:
        with pytest.raises(Exception, match="cannot exceed 32767") as refused:
            await SeenStore(engine).lookup(f"article-{number}" for number in range(4 * MOST_RECORDS_A_BATCH))
        assert fault_of(refused.value) is Fault.ENVIRONMENT
    finally:
        await engine.dispose()
