"""What migration 0006 costs an operator: the seconds PostgreSQL holds ``articles`` to rebuild its search vector.

    .venv/bin/python bench/search_vector.py [--articles 10000 100000] [--chars 3000]

For each size, a fresh database at revision 0005 is filled with articles of ``--chars`` characters of distinct words
(the most a search vector holds per character of plain words). A tenth more are inserted at 0005 (the generated
column computing their vectors), the database is upgraded to 0006, a tenth more are inserted again (the trigger
computing them), and it is downgraded; each step timed.
PostgreSQL from DATABASE_URL_POSTGRES or deploy/local/postgres.sh. SQLite has nothing to migrate.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import table
from alembic import command
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine
from storage import postgres_database

from newsflow_shared.db import make_engine, upgrade
from newsflow_shared.db.migrate import alembic_config

# One statement fills the table: md5 words differ from article to article, as the words of real stories mostly do.
FILL = text("""
    INSERT INTO articles (id, title, text, language, language_confidence, topics, source, metadata, removed, lineage,
                          content_hash, enrichment_hash, revision, received_at, stored_at, updated_at)
    SELECT 'a' || i, 'Story ' || i,
           (SELECT string_agg(left(md5(i::text || '-' || j::text), 8), ' ') FROM generate_series(1, :words) j),
           'en', 0.99, '[]', 'Wire', '{}', '[]', '[]', md5(i::text), md5(i::text), 1, now(), now(), now()
    FROM generate_series(CAST(:first AS integer), CAST(:first AS integer) + CAST(:articles AS integer) - 1) i
""")


async def fill(engine: AsyncEngine, first: int, articles: int, chars: int) -> float:
    """Seconds to insert ``articles`` articles, their search vectors computed as the revision computes them."""
    started = time.perf_counter()
    async with engine.begin() as connection:
        await connection.execute(FILL, {"first": first, "articles": articles, "words": chars // 9})
    return time.perf_counter() - started


async def measure(articles: int, chars: int) -> list[object]:
    url = await postgres_database()
    await upgrade(url, "0005")
    engine = make_engine(url)
    more = max(articles // 10, 1_000)
    try:
        await fill(engine, 1, articles, chars)
        inserted_before = await fill(engine, articles + 1, more, chars)
        async with engine.connect() as connection:
            size = await connection.scalar(text("SELECT pg_total_relation_size('articles')"))
        started = time.perf_counter()
        await upgrade(url)
        upgraded = time.perf_counter() - started
        inserted_after = await fill(engine, articles + more + 1, more, chars)

        def downgrade(sync_connection: Connection) -> None:
            config = alembic_config()
            config.attributes["connection"] = sync_connection
            command.downgrade(config, "0005")

        started = time.perf_counter()
        async with engine.begin() as connection:
            await connection.run_sync(downgrade)
        downgraded = time.perf_counter() - started
    finally:
        await engine.dispose()
    return [
        f"{articles:,}",
        f"{size / 2**20:,.0f}",
        f"{upgraded:.2f}",
        f"{downgraded:.1f}",
        f"{inserted_before / more * 1000:.2f}",
        f"{inserted_after / more * 1000:.2f}",
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--chars", type=int, default=3_000)
    options = parser.parse_args()
    rows = [await measure(count, options.chars) for count in options.articles]
    table(
        f"Migration 0006 on PostgreSQL, articles of {options.chars:,} characters",
        ["articles", "table MiB", "upgrade s", "downgrade s", "insert ms/article at 0005", "at 0006"],
        rows,
    )


if __name__ == "__main__":
    asyncio.run(main())
