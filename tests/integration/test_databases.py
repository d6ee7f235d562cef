"""PostgreSQL for real: migrations on an empty database, and the pipeline storing into it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from newsflow_cli.inputs import read_inputs
from newsflow_shared import StoredArticle
from newsflow_shared.db import make_engine, upgrade
from newsflow_shared.db.migrate import _PG_LOCK_ID, alembic_config
from newsflow_shared.db.tables import metadata
from newsflow_storage.repository import ArticleRepository, Query

from ..unit.test_storage import article as enriched
from .harness import Pipeline, article, isolated_env

ROOT = Path(__file__).parents[2]


@pytest.mark.postgres
async def test_migrations_build_an_empty_postgres_database(fresh_postgres: str) -> None:
    await migrate_and_check(fresh_postgres)


async def test_migrations_build_an_empty_sqlite_database(tmp_path: Path) -> None:
    await migrate_and_check(f"sqlite+aiosqlite:///{tmp_path}/m.db")


async def test_sqlite_keeps_the_near_duplicate_buckets_through_0005_and_back(tmp_path: Path) -> None:
    """0005 rebuilds SQLite's bucket table as one B-tree (WITHOUT ROWID); its downgrade rebuilds the old one."""
    url = f"sqlite+aiosqlite:///{tmp_path}/m.db"
    rows = [("0:ab", "one"), ("0:ab", "two"), ("1:cd", "one")]

    async def buckets_and_table() -> tuple[list[tuple[str, str]], str]:
        async with engine.connect() as connection:
            found = sorted(tuple(row) for row in await connection.execute(text("SELECT * FROM cleanup_lsh")))
            ddl = await connection.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'cleanup_lsh'"))
        return found, ddl

    await upgrade(url, "0004")
    engine = make_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO cleanup_lsh VALUES ('0:ab', 'two'), ('1:cd', 'one'), ('0:ab', 'one')")
        )
    await upgrade(url)
    found, ddl = await buckets_and_table()
    assert found == rows
    assert "WITHOUT ROWID" in ddl
    await downgrade(engine, "0004")
    found, ddl = await buckets_and_table()
    assert found == rows
    assert "WITHOUT ROWID" not in ddl
    await engine.dispose()


@pytest.mark.postgres
async def test_postgres_keeps_what_it_can_search_through_0006_and_back(fresh_postgres: str) -> None:
    """0006 has a trigger compute the search vector of the first 100,000 characters, where the column was generated
    from the whole text; the vectors stored before stay, new and updated articles are found, and back again."""

    async def generated_and_found(words: str) -> tuple[str, set[str]]:
        async with engine.connect() as connection:
            generated = await connection.scalar(
                text("SELECT is_generated FROM information_schema.columns WHERE column_name = 'search'")
            )
        return generated, {a.id for a in (await repository.search(Query(q=words))).items}

    await upgrade(fresh_postgres, "0005")
    engine = make_engine(fresh_postgres)
    repository = ArticleRepository(engine)
    try:
        await repository.store([enriched("before"), enriched("changed")])
        await upgrade(fresh_postgres)
        assert await generated_and_found("Douma") == ("NEVER", {"before", "changed"})
        await repository.store([enriched("after"), enriched("changed", text="Rebels left Aleppo by bus.", model="m2")])
        assert await generated_and_found("Douma") == ("NEVER", {"before", "after"})
        assert await generated_and_found("Aleppo") == ("NEVER", {"changed"})
        await downgrade(engine, "0005")
        assert await generated_and_found("Douma") == ("ALWAYS", {"before", "after"})
        assert await generated_and_found("Aleppo") == ("ALWAYS", {"changed"})
    finally:
        await engine.dispose()


def _differences_from_tables(connection: Connection) -> list[object]:
    """Alembic's autogenerate comparison, less what the migrations make in a dialect's own SQL: SQLite's FTS5 tables
    and PostgreSQL's search column, its index and trigger (tables.py cannot declare those)."""

    def declared(item: object, name: str | None, kind: str, reflected: bool, compared_to: object) -> bool:
        if kind == "table" and reflected and compared_to is None:
            return False  # a table tables.py does not have: articles_fts and its shadow tables
        return not (name or "").startswith(("search", "ix_articles_search"))

    context = MigrationContext.configure(connection, opts={"include_object": declared})
    return list(compare_metadata(context, metadata))


async def insert_a_letter(engine: AsyncEngine, **more: str) -> None:
    """One dead letter at offset 7 ("not JSON"), in plain SQL: the columns of the revision the database is at, plus
    ``more`` (a later revision's)."""
    row = dict(
        source_topic="articles.raw",
        source_partition=0,
        source_offset=7,
        stage="ingest",
        error="MalformedMessage",
        reason="not JSON",
        original=b"{",
        original_size=1,
        original_truncated=0,
        headers="{}",
        attempts=1,
        failed_at="2026-12-01 00:00:00",
        **more,
    )
    async with engine.begin() as connection:
        await connection.execute(
            text(f"INSERT INTO dead_letters ({', '.join(row)}) VALUES ({', '.join(f':{c}' for c in row)})"), row
        )


async def test_0008_sets_letters_aside_and_its_downgrade_keeps_them(tmp_path: Path) -> None:
    """0008 adds ``set_aside_at`` to the dead letters and their kinds' index; going back keeps every letter."""
    url = f"sqlite+aiosqlite:///{tmp_path}/m.db"
    await upgrade(url, "0007")
    engine = make_engine(url)
    try:
        await insert_a_letter(engine)
        await upgrade(url)
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE dead_letters SET set_aside_at = '2026-12-02 00:00:00'"))
            index = await connection.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'ix_dead_letters_kind'"))
        assert "set_aside_at" in index
        await downgrade(engine, "0007")
        async with engine.connect() as connection:
            kept = (await connection.execute(text("SELECT source_offset, reason FROM dead_letters"))).all()
            columns = {row[1] for row in await connection.execute(text("PRAGMA table_info(dead_letters)"))}
        assert [tuple(row) for row in kept] == [(7, "not JSON")]
        assert "set_aside_at" not in columns
    finally:
        await engine.dispose()


async def test_0009_claims_lapse_and_its_downgrade_keeps_the_letters(tmp_path: Path) -> None:
    """0009 adds ``redrive_claimed_until`` and its index; going back to 0008 keeps every letter, claimed or not."""
    url = f"sqlite+aiosqlite:///{tmp_path}/m.db"
    await upgrade(url)
    engine = make_engine(url)
    try:
        await insert_a_letter(engine, redriven_at="2026-12-02 00:00:00", redrive_claimed_until="2026-12-02 00:15:00")
        await downgrade(engine, "0008")
        async with engine.connect() as connection:
            kept = (await connection.execute(text("SELECT source_offset, redriven_at FROM dead_letters"))).all()
            columns = {row[1] for row in await connection.execute(text("PRAGMA table_info(dead_letters)"))}
        assert [row[0] for row in kept] == [7]
        assert kept[0][1] is not None
        assert "redrive_claimed_until" not in columns
    finally:
        await engine.dispose()


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Alembic's downgrade to ``revision`` (the services only ever upgrade)."""

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def migrate_and_check(url: str) -> None:
    await upgrade(url)
    await upgrade(url)  # a second start finds the schema current
    engine = make_engine(url)
    async with engine.connect() as connection:
        version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        for table in metadata.tables:
            assert (await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one() == 0
        # The migrations build what tables.py declares, column for column and index for index: a column added to
        # one and not the other (0008's set_aside_at, say) is a service that fails on the other's database.
        differences = await connection.run_sync(_differences_from_tables)
    await engine.dispose()
    assert differences == []
    assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.mark.kafka
@pytest.mark.postgres
async def test_pipeline_stores_into_postgres_and_the_api_finds_the_seed(
    kafka_bootstrap: str, fresh_postgres: str
) -> None:
    pipeline = Pipeline(isolated_env(kafka_bootstrap, fresh_postgres))
    await pipeline.start()
    try:
        inputs = list(read_inputs([str(ROOT / "samples/seed-article.txt")]))
        inputs += [
            article(id=f"pg-{i}", title=f"Report {i}", text=f"The council approved budget number {i} on Monday.")
            for i in range(20)
        ]
        results = await pipeline.run(inputs)
        assert [kind for kind, _ in results.values()].count("stored") == len(inputs)
        seed_id = results[inputs[0].trace_id][1]["id"]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.api_port}") as client:
            found = (await client.get("/articles", params={"q": "Douma", "topic": "medtop:16000000"})).json()
            stats = (await client.get("/stats")).json()
        assert [a["id"] for a in found["items"]] == [seed_id]
        assert stats["total"] == len(inputs)
    finally:
        await pipeline.stop()


@pytest.mark.postgres
async def test_two_replicas_storing_one_article_at_once_count_its_revisions(
    fresh_postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebalance can leave a batch finishing on one replica while another reads the same partition: both read
    revision 1, and each wrote and announced revision 2 with different content; the history kept only one."""
    await upgrade(fresh_postgres)
    engine = make_engine(fresh_postgres)
    write = ArticleRepository._write

    async def at_once(*models: str) -> list[StoredArticle]:
        both_read = asyncio.Barrier(len(models))

        async def once_all_have_read(self: ArticleRepository, *args: Any) -> Any:
            await both_read.wait()
            return await write(self, *args)

        with monkeypatch.context() as patch:
            patch.setattr(ArticleRepository, "_write", once_all_have_read)
            stored = await asyncio.gather(*(ArticleRepository(engine).store([enriched("x", model=m)]) for m in models))
        return [one for [one] in stored]

    try:
        repository = ArticleRepository(engine)
        await repository.store([enriched("x", model="m1")])
        a, b = await at_once("m2", "m3")
        assert sorted([a.revision, b.revision]) == [2, 3]
        history = [(r["revision"], r["enrichment"]["lineage"][-1]["model"]) for r in await repository.revisions("x")]
        assert history == [(1, "m1"), *sorted([(a.revision, "m2"), (b.revision, "m3")])]
        kept = await repository.get("x")
        assert kept is not None
        assert (kept.revision, kept.lineage[-1].model) == (3, max(a, b, key=lambda s: s.revision).lineage[-1].model)
        # The same enrichment from both: one new revision, announced by both as the one kept.
        c, d = await at_once("m4", "m4")
        assert (c.revision, d.revision) == (4, 4)
        assert [r["revision"] for r in await repository.revisions("x")] == [1, 2, 3, 4]
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_schema_check_cut_off_by_the_database_is_done_again(fresh_postgres: str) -> None:
    """A replica starting while PostgreSQL restarts lost its connection mid-check and exited (CI's chaos test)."""
    checking: asyncio.Task[str | None] | None = None
    blocker = make_engine(fresh_postgres)
    watcher = make_engine(fresh_postgres)
    try:
        async with blocker.connect() as holding:
            # The migration's first statement takes this lock: holding it keeps the check waiting, in the middle.
            await holding.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _PG_LOCK_ID})
            checking = asyncio.create_task(upgrade(fresh_postgres, wait=60))
            async with watcher.connect() as connection:
                # Outside a transaction: within one, pg_stat_activity is read once and kept.
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                waiting: list[int] = []
                for _ in range(100):
                    waiting = list(
                        (
                            await connection.execute(
                                text(
                                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                    "AND query LIKE '%pg_advisory_xact_lock%'"
                                )
                            )
                        ).scalars()
                    )
                    if waiting:
                        break
                    await asyncio.sleep(0.1)
                assert waiting, "the schema check never waited for the lock"
                # What a server's shutdown does to each session: "terminating connection due to administrator command".
                await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": waiting[0]})
            await asyncio.sleep(1)
            assert not checking.done(), checking
            await holding.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_LOCK_ID})
        reached = await asyncio.wait_for(checking, 60)
        assert reached == ScriptDirectory.from_config(alembic_config()).get_current_head()
    finally:
        if checking is not None:
            checking.cancel()
        await blocker.dispose()
        await watcher.dispose()


@pytest.mark.postgres
async def test_a_database_that_answers_but_refuses_the_schema_is_not_asked_again(
    fresh_postgres: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A read-only database answers SELECT 1 and refuses the migration: it was asked again 300 times a second for the
    whole start-up wait, each time logged as "the database went away"."""
    engine = make_engine(fresh_postgres)
    try:
        async with engine.connect() as connection:
            name = (await connection.execute(text("SELECT current_database()"))).scalar_one()
            await connection.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
            await connection.commit()
    finally:
        await engine.dispose()
    with pytest.raises(DBAPIError, match="read-only transaction"):
        await upgrade(fresh_postgres, wait=60)
    assert "went away" not in caplog.text
