"""PostgreSQL for real: migrations on an empty database, and the pipeline storing into it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from newsflow_cli.inputs import read_inputs
from newsflow_shared.db import make_engine, upgrade
from newsflow_shared.db.migrate import alembic_config
from newsflow_shared.db.tables import metadata

from .harness import Pipeline, article, isolated_env

ROOT = Path(__file__).parents[2]


@pytest.mark.postgres
async def test_migrations_build_an_empty_postgres_database(fresh_postgres: str) -> None:
    await migrate_and_check(fresh_postgres)


async def test_migrations_build_an_empty_sqlite_database(tmp_path: Path) -> None:
    await migrate_and_check(f"sqlite+aiosqlite:///{tmp_path}/m.db")


async def migrate_and_check(url: str) -> None:
    await upgrade(url)
    await upgrade(url)  # a second start finds the schema current
    engine = make_engine(url)
    async with engine.connect() as connection:
        version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        for table in metadata.tables:
            assert (await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one() == 0
    await engine.dispose()
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
