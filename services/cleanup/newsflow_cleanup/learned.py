"""Boilerplate learned per source: a short line that recurs across many articles of one source is not news.

Rules catch the boilerplate every site has ("Advertisement", "Share this article"); each
site also has its own ("Follow @DailyPlanet for live updates", a recurring sign-off). A
line of at most ``max_chars`` seen in ``min_articles`` different articles from the same
``source`` is removed from every later one, with the count as its reason. The counts live
in the database: shared by all replicas, kept across restarts, and reset with
``newsflow cleanup forget-boilerplate``. Near-duplicates are not counted, or one story
syndicated five times would teach its own sentences as boilerplate.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from newsflow_shared import CleanArticle, Removal
from newsflow_shared.contracts import listed_removals
from newsflow_shared.db.engine import dialect_insert
from newsflow_shared.db.tables import cleanup_source_lines

Lines = dict[str, str]
_LINES_PER_END = 100  # short lines an article offers to learn and to strip, from its top and from its bottom
_KEYS_PER_STATEMENT = 5_000


def line_key(line: str) -> str:
    normalised = " ".join(line.lower().split())
    return hashlib.blake2b(normalised.encode(), digest_size=16).hexdigest()


class LearnedBoilerplate:
    def __init__(self, engine: AsyncEngine, *, min_articles: int = 5, max_chars: int = 120) -> None:
        self.engine = engine
        self.min_articles = min_articles
        self.max_chars = max_chars
        self._insert = dialect_insert(engine)

    def candidates(self, article: CleanArticle) -> Lines:
        """Short paragraphs, by their key: the first and the last ``_LINES_PER_END`` of them.

        Boilerplate sits at the top and the bottom of a page. An article of 2 MB can be 40,000 short lines (a list, a
        table): looking each of them up for its source cost the event loop ~0.5 s per article, and a batch of 30 such
        articles would have held it past the consumer group's session (the statements failed first: see below).
        """
        short = [p for p in article.text.split("\n\n") if p and len(p) <= self.max_chars]
        if len(short) > 2 * _LINES_PER_END:
            short = short[:_LINES_PER_END] + short[-_LINES_PER_END:]
        return {line_key(p): p for p in short}

    async def strip(self, article: CleanArticle) -> CleanArticle:
        async with self.engine.connect() as connection:
            [stripped] = await self.strip_many(connection, [article])
        return stripped

    async def learn(self, article: CleanArticle, lines: Lines) -> None:
        async with self.engine.begin() as connection:
            await self.learn_many(connection, [(article, lines)])

    async def strip_many(
        self, connection: AsyncConnection, articles: list[CleanArticle], lines: list[Lines] | None = None
    ) -> list[CleanArticle]:
        """Each article without the lines its source is known to repeat (two queries for each 5,000 of the batch's
        short lines).

        ``lines``: each article's :meth:`candidates`, when the caller has them already (it learns from them after).
        """
        if lines is None:
            lines = [self.candidates(a) for a in articles]
        wanted = {(a.source, key) for a, short in zip(articles, lines, strict=True) if a.source for key in short}
        if not wanted:
            return articles
        sources = {source for source, _ in wanted}
        keys = sorted({key for _, key in wanted})
        ids = [a.id for a in articles]
        columns = cleanup_source_lines.c
        totals: dict[tuple[str, str], int] = {}
        own: set[tuple[str, str, str]] = set()
        # A few thousand keys at a time: a batch brings up to 200 an article, and asyncpg refuses a statement of more
        # than 32,767 values (SQLite's default limit is 32,766), which would fail the whole batch.
        for start in range(0, len(keys), _KEYS_PER_STATEMENT):
            scope = (columns.source.in_(sources), columns.line_hash.in_(keys[start : start + _KEYS_PER_STATEMENT]))
            counted = select(columns.source, columns.line_hash, func.count().label("seen")).where(*scope)
            for row in await connection.execute(counted.group_by(columns.source, columns.line_hash)):
                totals[(row.source, row.line_hash)] = row.seen
            theirs = select(columns.source, columns.line_hash, columns.article_id).where(
                *scope, columns.article_id.in_(ids)
            )
            own.update((row.source, row.line_hash, row.article_id) for row in await connection.execute(theirs))
        return [self._without_learned(a, short, totals, own) for a, short in zip(articles, lines, strict=True)]

    def _without_learned(
        self,
        article: CleanArticle,
        lines: Lines,
        totals: dict[tuple[str, str], int],
        own: set[tuple[str, str, str]],
    ) -> CleanArticle:
        if not article.source:
            return article
        # The keys the article's candidates already have, by paragraph: each short paragraph is hashed once per
        # batch. Two paragraphs that differ only in case or spacing share a key, but the candidates keep one of them.
        key_of = {paragraph: key for key, paragraph in lines.items()}
        removed: list[Removal] = []
        kept: list[str] = []
        for paragraph in article.text.split("\n\n"):
            key = (key_of.get(paragraph) or line_key(paragraph)) if len(paragraph) <= self.max_chars else None
            others = totals.get((article.source, key), 0) - ((article.source, key, article.id) in own) if key else 0
            if key and others + 1 >= self.min_articles:
                removed.append(
                    Removal(
                        what=paragraph, why=f"learned: the same line is in {others + 1} articles from {article.source}"
                    )
                )
            else:
                kept.append(paragraph)
        if not removed:
            return article
        # Listed within the contract's bounds again: model_copy does not validate, and classify refused the article.
        listed = listed_removals([*article.removed, *removed])
        return article.model_copy(update={"text": "\n\n".join(kept), "removed": listed})

    async def learn_many(self, connection: AsyncConnection, seen: list[tuple[CleanArticle, Lines]]) -> None:
        """Count each article's short lines for its source, once per article however often redelivered.

        ``seen``: each article as :meth:`strip_many` left it, with its :meth:`candidates`. A line it already had
        removed as learned is not counted again: counted in every article, each of a source's boilerplate lines grew
        by a row an article for good, and so did looking it up, since it counts them: 0.177 ms per article at one
        source's 1,000th article, 0.790 at its 50,000th, against 0.128 and 0.164 now (``bench/learned_boilerplate.py``).
        """
        now = datetime.now(UTC)
        rows = [
            {"source": article.source, "line_hash": key, "article_id": article.id, "line": line, "seen_at": now}
            for article, lines in seen
            if article.source
            for paragraphs in [set(article.text.split("\n\n"))]
            for key, line in lines.items()
            if line in paragraphs
        ]
        if rows:
            await connection.execute(self._insert(cleanup_source_lines).on_conflict_do_nothing(), rows)


async def forget(engine: AsyncEngine, source: str | None = None) -> int:
    """Reset what was learned, for one source or all; return the number of line records removed."""
    statement = delete(cleanup_source_lines)
    if source is not None:
        statement = statement.where(cleanup_source_lines.c.source == source)
    async with engine.begin() as connection:
        return (await connection.execute(statement)).rowcount or 0
