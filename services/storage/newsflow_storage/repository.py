"""Where articles are kept: idempotent batch upserts, lookups, search and counts.

Contract: :meth:`ArticleRepository.store` writes a batch in one transaction. An
article whose enrichment did not change is left as it is (a redelivery); one whose
enrichment changed is updated, its revision grows by one and the new enrichment
is appended to ``article_revisions``. Rows are never duplicated: the id is the key.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy import and_, column, func, literal_column, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from newsflow_shared import EnrichedArticle, StoredArticle
from newsflow_shared.db.engine import as_utc, dialect_insert, is_sqlite, utc_period
from newsflow_shared.db.tables import article_revisions, article_topics, articles
from newsflow_shared.taxonomy import load_taxonomy

from .records import enrichment_hash, enrichment_snapshot, from_row, to_row

Duplicates = Literal["include", "exclude", "only"]
Sort = Literal["date", "relevance"]

RELEVANCE_WINDOW = 5_000
"""On SQLite, sort=relevance ranks the newest this many articles that have the words."""
# A page's articles carry their text and the text as it arrived (with what cleanup removed, a part of the latter):
# at ingest's 2 MiB limit, 200 of them were over a gigabyte in storage's memory (the rows, the models, the JSON),
# past its container's limit. A page stops short of STORAGE_PAGE_MAX once those texts pass this many characters
# (always one article at least), and its next_cursor goes on from there. The page's ids and their texts' sizes are
# read first, then the rows of those that fit (a streamed read held up to 50 rows at once with asyncpg).
PAGE_TEXT_BUDGET = 16_000_000
# Control characters (NUL above all) are never part of a word: FTS5 and PostgreSQL refuse them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Page:
    items: list[StoredArticle]
    next_cursor: str | None


@dataclass(frozen=True)
class Query:
    q: str | None = None
    topic: str | None = None
    language: str | None = None
    source: str | None = None
    published_from: datetime | None = None
    published_to: datetime | None = None
    duplicates: Duplicates = "include"
    duplicate_of: str | None = None  # the copies of one article
    article_id: str | None = None  # one article: for ids a client cannot keep in a path (a ".." segment)
    limit: int = 50
    cursor: str | None = None
    sort: Sort = "date"


STATS_SOURCES = 1000
"""``/stats`` counts the articles of this many sources, those with the most first."""


class ArticleRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = dialect_insert(engine)
        self._sqlite = is_sqlite(engine)

    async def store(self, batch: list[EnrichedArticle]) -> list[StoredArticle]:
        """Upsert a batch in one transaction; return the stored record of each distinct article.

        A handful of set-based statements per batch, not per article: that is what makes
        thousands of rows a second possible on PostgreSQL.
        """
        latest = {article.id: article for article in batch}  # a later copy in the batch wins
        now = datetime.now(UTC)
        # Database errors propagate: the stage sorts them by SQLSTATE into the database's trouble
        # (the batch is retried) and one article's own (it is found and dead-lettered).
        async with self.engine.begin() as connection:
            existing = {
                row.id: row
                for row in await connection.execute(
                    select(articles.c.id, articles.c.enrichment_hash, articles.c.revision, articles.c.stored_at).where(
                        articles.c.id.in_(list(latest))
                    )
                )
            }
            stored, changed = self._plan(latest.values(), existing, now)
            if changed:
                written = await self._write(connection, changed, now)
                for i, article in enumerate(stored):
                    if article.id in written:
                        revision, stored_at = written[article.id]
                        stored[i] = article.model_copy(update={"revision": revision, "stored_at": stored_at})
        return stored

    @staticmethod
    def _plan(
        batch: Iterable[EnrichedArticle], existing: dict[str, Any], now: datetime
    ) -> tuple[list[StoredArticle], list[tuple[EnrichedArticle, dict[str, Any]]]]:
        """Which articles are new or changed (with their rows), and the stored record of every one."""
        stored: list[StoredArticle] = []
        changed: list[tuple[EnrichedArticle, dict[str, Any]]] = []
        for article in batch:
            current = existing.get(article.id)
            digest = enrichment_hash(article)
            first_stored = as_utc(current.stored_at) if current is not None else now
            if current is not None and current.enrichment_hash == digest:
                revision = current.revision  # a redelivery: nothing to write
            else:
                revision = current.revision + 1 if current is not None else 1
                changed.append(
                    (article, to_row(article, revision=revision, stored_at=first_stored, now=now, digest=digest))
                )
            # Already validated: construct without validating the whole article again. From ``__dict__`` (the
            # contracts ignore extra fields, so it holds them all): ``dict(article)`` first asks pydantic for a
            # ``keys`` attribute, an AttributeError raised and caught per article (10 against 22 µs).
            stored.append(StoredArticle.model_construct(**article.__dict__, stored_at=first_stored, revision=revision))
        return stored, changed

    async def _write(
        self, connection: AsyncConnection, changed: list[tuple[EnrichedArticle, dict[str, Any]]], now: datetime
    ) -> dict[str, tuple[int, datetime]]:
        """Write the new and changed articles; return the revision and first storing of each, as the database has them.

        The revision is counted by the database, not from the read before: two replicas that both read revision 1
        of an article (one still finishing a batch after a rebalance gave its partition to the other) each wrote
        revision 2, with different content, and the history kept only the first. On PostgreSQL the upsert waits for
        the other's row and adds one to what that committed; an enrichment the other already stored is left as it is.
        """
        rows = [row for _, row in changed]
        upsert = self._insert(articles)
        written = await connection.execute(
            upsert.on_conflict_do_update(
                index_elements=[articles.c.id],
                set_={k: upsert.excluded[k] for k in rows[0] if k not in {"id", "stored_at", "revision"}}
                | {"revision": articles.c.revision + 1},
                where=articles.c.enrichment_hash.is_distinct_from(upsert.excluded.enrichment_hash),
            ).returning(articles.c.id, articles.c.revision, articles.c.stored_at),
            rows,
        )
        revisions = {row.id: (row.revision, as_utc(row.stored_at)) for row in written}
        if unchanged := [row["id"] for row in rows if row["id"] not in revisions]:
            # Stored meanwhile by another replica, the same enrichment: its revision is the one to announce.
            found = await connection.execute(
                select(articles.c.id, articles.c.revision, articles.c.stored_at).where(articles.c.id.in_(unchanged))
            )
            revisions |= {row.id: (row.revision, as_utc(row.stored_at)) for row in found}
        changed = [(article, row) for article, row in changed if row["id"] not in unchanged]
        if not changed:
            return revisions
        ids = [row["id"] for _, row in changed]
        await connection.execute(article_topics.delete().where(article_topics.c.article_id.in_(ids)))
        topic_rows = [topic for article, _ in changed for topic in self._topic_rows(article)]
        if topic_rows:
            await connection.execute(article_topics.insert(), topic_rows)
        await connection.execute(
            self._insert(article_revisions).on_conflict_do_nothing(),
            [
                {
                    "article_id": article.id,
                    "revision": revisions[article.id][0],
                    "enrichment": enrichment_snapshot(article),
                    "recorded_at": now,
                }
                for article, _ in changed
            ],
        )
        return revisions

    @staticmethod
    def _topic_rows(article: EnrichedArticle) -> list[dict[str, Any]]:
        """Each assigned topic, plus its broader topics, so a filter on any level finds the article."""
        taxonomy = load_taxonomy()
        rows: dict[str, dict[str, Any]] = {}
        for topic in article.topics:
            rows[topic.code] = {"article_id": article.id, "code": topic.code, "score": topic.score, "direct": 1}
            for broader in taxonomy.ancestors(topic.code):
                if broader not in rows:
                    rows[broader] = {"article_id": article.id, "code": broader, "score": topic.score, "direct": 0}
        return list(rows.values())

    async def get(self, article_id: str) -> StoredArticle | None:
        if not could_be_stored(article_id):
            return None
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(articles).where(articles.c.id == article_id))).first()
        return from_row(row) if row else None

    async def scan(self, ids: list[str] | None = None, batch: int = 500) -> AsyncIterator[list[StoredArticle]]:
        """Every stored article (or those in ``ids``), in id order, a batch at a time."""
        last = ""
        while True:
            statement = select(articles).where(articles.c.id > last).order_by(articles.c.id).limit(batch)
            if ids is not None:
                statement = statement.where(articles.c.id.in_(ids))
            async with self.engine.connect() as connection:
                rows = list(await connection.execute(statement))
            if not rows:
                return
            yield [from_row(r) for r in rows]
            last = rows[-1].id

    async def revisions(self, article_id: str, *, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """The article's revisions after revision ``after``, oldest first, at most ``limit`` of them.

        Bounded because an article can have thousands: a live blog re-sent with each update for a week.
        """
        if not could_be_stored(article_id):
            return []
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(article_revisions)
                .where(article_revisions.c.article_id == article_id, article_revisions.c.revision > after)
                .order_by(article_revisions.c.revision)
                .limit(limit)
            )
            return [dict(r._mapping) for r in rows]

    async def search(self, query: Query) -> Page:
        """A page of matches, newest first or (with words to search) best match first."""
        words = search_words(query.q)
        if query.sort == "relevance" and words:
            return await self._search_by_relevance(query, words)
        conditions = self.conditions(query)
        if query.cursor:
            stored_at, last_id = decode_cursor(query.cursor)
            conditions.append(
                or_(articles.c.stored_at < stored_at, and_(articles.c.stored_at == stored_at, articles.c.id < last_id))
            )
        async with self.engine.connect() as connection:
            return await self._newest_page(connection, conditions, query.limit)

    def conditions(self, query: Query, *, full_text: bool = True, indexed: bool = False) -> list[Any]:
        """The WHERE clauses of ``query``'s filters (not its cursor): shared by search and the web page's facets.

        ``indexed``: let SQLite drive by the topic, language and source indexes (counting), instead of walking
        the newest articles first (a page of results, a facet sample).
        """
        conditions = []
        words = search_words(query.q)
        if words and full_text:
            conditions.append(self._matches(words))
        if query.topic:
            conditions.append(self._has_topic(query.topic, indexed=indexed))
        if query.language:
            conditions.append(
                articles.c.language == query.language if indexed else self._equals("language", query.language)
            )
        if query.source:
            conditions.append(articles.c.source == query.source if indexed else self._equals("source", query.source))
        published_at = articles.c.published_at if indexed else self._unindexed("published_at")
        if query.published_from:
            conditions.append(published_at >= query.published_from)
        if query.published_to:
            conditions.append(published_at < query.published_to)
        if query.duplicates == "exclude":
            conditions.append(articles.c.duplicate_of.is_(None))
        elif query.duplicates == "only":
            conditions.append(articles.c.duplicate_of.is_not(None))
        if query.duplicate_of:  # a few rows of ix_articles_duplicate_of: the planner may well drive by it
            conditions.append(articles.c.duplicate_of == query.duplicate_of)
        if query.article_id is not None:
            conditions.append(articles.c.id == query.article_id)
        return conditions

    def _text_size(self) -> Any:
        """The characters of an article's text and arrived text (bytes on PostgreSQL, whose octet_length reads the
        size from a stored value's header without decompressing it)."""
        size = func.length if self._sqlite else func.octet_length
        return (size(articles.c.text) + func.coalesce(size(articles.c.arrived_text), 0)).label("size")

    async def _rows_within_budget(
        self, connection: AsyncConnection, sized: list[Any], limit: int
    ) -> tuple[list[Any], bool]:
        """The rows of the (id, size) pairs ``sized``, in their order, that fit a page; and whether more follow."""
        taken, more = _ids_within_budget(sized, limit)
        found = await connection.execute(select(articles).where(articles.c.id.in_(taken))) if taken else []
        by_id = {row.id: row for row in found}
        return [by_id[i] for i in taken if i in by_id], more

    async def _search_by_relevance(self, query: Query, words: str) -> Page:
        """Best match first (FTS5's bm25, PostgreSQL's ts_rank); the cursor is the position in that order.

        On SQLite only the newest ``RELEVANCE_WINDOW`` articles with the words are ranked: ranking
        every match of a common word (100,000 at 100,000 articles) costs ~200 ms of CPU, the window
        ~20 ms. Ranks are not unique and move when articles are added, so keyset paging on them would
        skip or repeat; an offset is honest about what it is.
        """
        offset = decode_offset(query.cursor) if query.cursor else 0
        conditions = self.conditions(query, full_text=False)
        async with self.engine.connect() as connection:
            if self._sqlite:
                ids = await self._ranked_ids_sqlite(connection, words, conditions, offset, query.limit + 1)
                sizes = await connection.execute(select(articles.c.id, self._text_size()).where(articles.c.id.in_(ids)))
                size_of = {row.id: row.size for row in sizes}
                ranked = [(i, size_of[i]) for i in ids if i in size_of]  # FTS5's order
                rows, more = await self._rows_within_budget(connection, ranked, query.limit)
            else:
                rank = text("ts_rank(articles.search, websearch_to_tsquery('simple', :rank_q)) DESC").bindparams(
                    rank_q=words
                )
                statement = (
                    select(articles.c.id, self._text_size())
                    .where(self._matches(words), *conditions)
                    .order_by(rank, articles.c.id)
                )
                ranked = list(await connection.execute(statement.offset(offset).limit(query.limit + 1)))
                rows, more = await self._rows_within_budget(connection, ranked, query.limit)
        items = [from_row(r) for r in rows]
        next_cursor = encode_offset(offset + len(items)) if more else None
        return Page(items=items, next_cursor=next_cursor)

    @staticmethod
    async def _ranked_ids_sqlite(
        connection: AsyncConnection, words: str, conditions: list[Any], offset: int, limit: int
    ) -> list[str]:
        phrase = fts5_phrase(words)
        # FTS5 walks a doclist by rowid, newest last: the rowid where the window starts is one cheap step.
        floor = (
            await connection.execute(
                text(
                    "SELECT rowid FROM articles_fts WHERE articles_fts MATCH :fts ORDER BY rowid DESC LIMIT 1 OFFSET :n"
                ).bindparams(fts=phrase, n=RELEVANCE_WINDOW - 1)
            )
        ).scalar() or 0
        # Without other filters FTS5 ranks, sorts and cuts the page alone, and only the page's rows are joined
        # (~7 ms for 5,000 matches of two words, where joining all 5,000 to articles took ~13 ms). Equal scores
        # (near-duplicates score alike) go in rowid order, which never changes, so an offset neither skips nor repeats.
        inner = "SELECT rowid AS rid, bm25(articles_fts) AS score FROM articles_fts WHERE articles_fts MATCH :fts "
        inner += "AND rowid >= :floor" + ("" if conditions else " ORDER BY score, rid LIMIT :limit OFFSET :offset")
        ranked = (
            text(inner)
            .bindparams(fts=phrase, floor=floor, **({} if conditions else {"limit": limit, "offset": offset}))
            .columns(column("rid"), column("score"))
            .subquery("ranked")
        )
        statement = (
            select(articles.c.id)
            .select_from(ranked.join(articles, literal_column("articles.rowid") == ranked.c.rid))
            .where(*conditions)
            .order_by(ranked.c.score, ranked.c.rid)
            .offset(offset if conditions else 0)
            .limit(limit)
        )
        return list((await connection.execute(statement)).scalars())

    # On SQLite the unary "+" keeps the planner from driving the query by the matches (tens of
    # thousands for a common word, then sorted): it walks the stored_at index newest first and stops
    # at a page. 100,000 articles: p95 from ~340 ms to ~15 ms (bench/storage.py).

    def _unindexed(self, column: str) -> Any:
        """``column``, which SQLite will test while it walks the newest first rather than drive by its own index.

        A month is ~8,600 of 100,000 articles: drive by ``published_at`` and each must be read for its
        ``stored_at``, then all sorted (~28 ms); walk ``ix_articles_newest``, which holds ``published_at``, and
        stop at a page (~7 ms) or the facets' sample (~13 ms).
        """
        if self._sqlite:
            return literal_column(f"+articles.{column}", type_=articles.c[column].type)
        return articles.c[column]

    def _equals(self, column: str, value: str) -> Any:
        if self._sqlite:
            return text(f"+articles.{column} = :{column}").bindparams(**{column: value})
        return articles.c[column] == value

    def _has_topic(self, code: str, *, indexed: bool = False) -> Any:
        if self._sqlite and not indexed:
            return text("+articles.id IN (SELECT article_id FROM article_topics WHERE code = :topic)").bindparams(
                topic=code
            )
        return articles.c.id.in_(select(article_topics.c.article_id).where(article_topics.c.code == code))

    def _matches(self, q: str) -> Any:
        if self._sqlite:
            return text("+articles.rowid IN (SELECT rowid FROM articles_fts WHERE articles_fts MATCH :fts)").bindparams(
                fts=fts5_phrase(q)
            )
        return text("articles.search @@ websearch_to_tsquery('simple', :fts)").bindparams(fts=q)

    async def match_count(self, connection: AsyncConnection, words: str) -> tuple[int, int] | None:
        """How many articles have all the words, exactly, and about how many articles there are (the largest
        rowid), where that is cheap; None where it is not.

        On SQLite FTS5 counts the words' doclists without reading an article or building a set of
        rowids: ~2-7 ms for a word in all 100,000 articles, where counting through ``articles`` took
        ~90 ms. PostgreSQL would visit every match in the GIN index and the heap: None there.
        """
        if not self._sqlite:
            return None
        statement = text(
            "SELECT (SELECT count(*) FROM articles_fts WHERE articles_fts MATCH :fts), "
            "(SELECT coalesce(max(rowid), 0) FROM articles)"
        ).bindparams(fts=fts5_phrase(words))
        matched, rows = (await connection.execute(statement)).one()
        return int(matched), int(rows)

    async def newest_of(self, connection: AsyncConnection, ids: list[str], limit: int) -> Page:
        """The page of ``limit`` articles out of ``ids`` (the first ``limit`` + 1 a search found), newest first."""
        if not ids:
            return Page(items=[], next_cursor=None)
        return await self._newest_page(connection, [articles.c.id.in_(ids)], limit)

    async def _newest_page(self, connection: AsyncConnection, conditions: list[Any], limit: int) -> Page:
        """The newest ``limit`` articles that meet ``conditions``, as every page is read: ids and text sizes first,
        then the rows that fit :data:`PAGE_TEXT_BUDGET` (the web page's first view read 21 articles whole, ~90
        million characters at ingest's limit); its cursor goes on from the last."""
        statement = (
            select(articles.c.id, self._text_size())
            .where(*conditions)
            .order_by(articles.c.stored_at.desc(), articles.c.id.desc())
            .limit(limit + 1)
        )
        rows, more = await self._rows_within_budget(connection, list(await connection.execute(statement)), limit)
        items = [from_row(r) for r in rows]
        next_cursor = encode_cursor(items[-1].stored_at, items[-1].id) if more and items else None
        return Page(items=items, next_cursor=next_cursor)

    async def stats(self) -> dict[str, Any]:
        async with self.engine.connect() as connection:
            total = (await connection.execute(select(func.count()).select_from(articles))).scalar_one()

            async def counts(column: Any, source: Any = articles, most: int | None = None) -> dict[str, int]:
                statement = select(column, func.count()).select_from(source).group_by(column)
                if most is not None:  # no slot for the articles without one
                    statement = statement.where(column.is_not(None)).order_by(func.count().desc(), column).limit(most)
                return {str(k): v for k, v in await connection.execute(statement) if k is not None}

            day = utc_period(articles.c.stored_at, "day", sqlite=self._sqlite)
            return {
                "total": total,
                "by_topic": await counts(article_topics.c.code, article_topics),
                "by_language": await counts(articles.c.language),
                # Sources are whatever producers write: 100,000 of them made a 1.7 MB answer.
                "by_source": await counts(articles.c.source, most=STATS_SOURCES),
                "sources": (await connection.execute(select(func.count(articles.c.source.distinct())))).scalar_one(),
                "by_day": await counts(day),
                "duplicates": (
                    await connection.execute(select(func.count()).where(articles.c.duplicate_of.is_not(None)))
                ).scalar_one(),
            }

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))


def encode_cursor(stored_at: datetime, article_id: str) -> str:
    return base64.urlsafe_b64encode(f"{stored_at.isoformat()}|{article_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, article_id = raw.split("|", 1)
        if not could_be_stored(article_id):  # a made-up cursor: PostgreSQL refuses its NUL, a 500 for a 422
            raise ValueError(article_id)
        # In UTC here, as every cursor this API wrote: a made-up year 1 at +14:00 cannot be, and PostgreSQL's
        # driver raised OverflowError converting it, a 500 where a bad cursor is a 422.
        return as_utc(datetime.fromisoformat(stamp)), article_id
    except (ValueError, OverflowError) as error:
        raise ValueError("the cursor is not one this API returned") from error


def encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset|{offset}".encode()).decode().rstrip("=")


def decode_offset(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, offset = raw.split("|", 1)
        if kind != "offset" or not offset.isdigit() or int(offset) > 1_000_000:
            raise ValueError(raw)
        return int(offset)
    except ValueError as error:
        raise ValueError("the cursor is not one this API returned for this sort") from error


def could_be_stored(article_id: str) -> bool:
    """False for an id with a NUL character: no stored id holds one (ingest removes them, the contracts refuse them),
    and PostgreSQL refuses one even in a query, which made a request for such an id a server error, not "not found"."""
    return "\x00" not in article_id


def search_words(q: str | None) -> str | None:
    """The words of a search, or None when there are none: only spaces (or control characters) is no search."""
    if q is None:
        return None
    return " ".join(_CONTROL.sub(" ", q).split()) or None


def fts5_phrase(words: str) -> str:
    """Each word quoted: user text never becomes FTS5 syntax (AND, NEAR, *, column filters).

    Each word once (FTS5 folds case, so "A" is "a"): a word repeated matches what it matches once, but ranking cost
    grew with the square of the repeats, 16 s of CPU for "a" 249 times over 20,000 articles.
    """
    distinct = dict.fromkeys(word.lower() for word in words.split())
    return " ".join('"' + word.replace('"', '""') + '"' for word in distinct)


def day_start(value: date) -> datetime:
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _ids_within_budget(sized: list[Any], limit: int) -> tuple[list[str], bool]:
    """The ids of the (id, text size) pairs ``sized`` (in the page's order, ``limit`` + 1 asked for) whose articles
    fit a page: at most ``limit``, and no more text than :data:`PAGE_TEXT_BUDGET` past the first; and whether more
    follow."""
    taken: list[str] = []
    total = 0
    for article_id, size in sized:
        if len(taken) == limit or (taken and total + size > PAGE_TEXT_BUDGET):
            return taken, True
        taken.append(article_id)
        total += size
    return taken, False
