"""The pipeline view's rates: SQLite's own count of the lineage is the count decoded in Python."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import text as sql
from sqlalchemy import update

from newsflow_shared import Lineage
from newsflow_shared.db import make_engine, upgrade
from newsflow_shared.db.engine import is_sqlite
from newsflow_shared.db.tables import articles
from newsflow_storage.dead_letters import DeadLetterStore
from newsflow_storage.repository import ArticleRepository
from newsflow_storage.web import pipeline

from .. import webdata


async def test_lineage_rates_counted_by_sqlite_are_those_decoded_in_python(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/rates.db"
    await upgrade(url)
    repo = ArticleRepository(make_engine(url))
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    corpus = []
    for i, article in enumerate(webdata.facet_corpus(40)):
        at = start + timedelta(minutes=i % 7, seconds=i)
        offset = timezone(timedelta(hours=2)) if i % 3 == 0 else UTC  # an offset counts in UTC's minute
        lineage = [
            Lineage(stage="ingest", version="t", at=at),
            Lineage(stage="cleanup", version="t", at=(at + timedelta(seconds=30)).astimezone(offset)),
            Lineage(stage="classify", version="t", at=at + timedelta(minutes=1)),
        ]
        corpus.append(article.model_copy(update={"lineage": lineage, "received_at": at - timedelta(seconds=5)}))
    await repo.store(corpus)
    since = start - timedelta(minutes=30)
    try:
        async with repo.engine.connect() as connection:
            by_sql = await pipeline._lineage_rates_sql(connection, since)
            by_rows = await pipeline._lineage_rates_rows(connection, since)
        totals: dict[tuple[str, datetime], int] = {}
        for stage, at, count in by_rows:
            totals[stage, at] = totals.get((stage, at), 0) + count
        assert {(stage, at): count for stage, at, count in by_sql} == totals
        assert {stage for stage, _ in totals} == {"ingest", "cleanup", "classify"}
        assert sum(totals.values()) == 3 * len(corpus)
        rates = await pipeline._rates(repo, since)
        assert sum(rates["storage"].values()) == len(corpus)
    finally:
        await repo.engine.dispose()


async def test_each_minute_counts_what_happened_in_it_whatever_the_database_s_time_zone(database_url: str) -> None:
    """Counted by the database, in UTC: PostgreSQL's ``to_char`` writes the session's zone, and on a server not set to
    UTC the storage rate landed hours away from its minutes (outside the page's hour, so it read zero)."""
    await upgrade(database_url)
    engine = make_engine(database_url)
    if not is_sqlite(engine):
        async with engine.connect() as connection:
            name = await connection.scalar(sql("SELECT current_database()"))
        async with engine.connect() as connection:
            await connection.execute(sql(f"ALTER DATABASE \"{name}\" SET timezone TO 'America/New_York'"))
            await connection.commit()
        await engine.dispose()  # new connections take the database's zone
        engine = make_engine(database_url)
        async with engine.connect() as connection:
            assert await connection.scalar(sql("SHOW timezone")) == "America/New_York"
    repo, letters = ArticleRepository(engine), DeadLetterStore(engine)
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    try:
        await repo.store(
            [article.model_copy(update={"id": f"r{i}"}) for i, article in enumerate(webdata.facet_corpus(4))]
        )
        await letters.keep(
            [webdata.dead_letter(n).model_copy(update={"failed_at": minute + timedelta(seconds=n)}) for n in range(5)]
        )
        since = minute - timedelta(minutes=30)
        assert await letters.per_minute(since) == {"ingest": {minute: 5}}
        rates = await pipeline._rates(repo, since)
        this_minute = datetime.now(UTC).replace(second=0, microsecond=0)
        assert sum(rates["storage"].values()) == 4
        assert set(rates["storage"]) <= {this_minute, this_minute - timedelta(minutes=1)}  # stored just now
        # /stats' days are UTC's too: 02:00 UTC is the evening before in New York.
        today = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0)
        async with engine.begin() as connection:
            await connection.execute(update(articles).where(articles.c.id == "r0").values(stored_at=today))
        assert (await repo.stats())["by_day"] == {str(today.date()): 4}
    finally:
        await engine.dispose()
