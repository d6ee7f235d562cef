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
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from newsflow_shared import CleanArticle, Removal, TemporaryFailure
from newsflow_shared.db.engine import dialect_insert
from newsflow_shared.db.tables import cleanup_source_lines


def line_key(line: str) -> str:
    normalised = " ".join(line.lower().split())
    return hashlib.blake2b(normalised.encode(), digest_size=16).hexdigest()


class LearnedBoilerplate:
    def __init__(self, engine: AsyncEngine, *, min_articles: int = 5, max_chars: int = 120) -> None:
        self.engine = engine
        self.min_articles = min_articles
        self.max_chars = max_chars
        self._insert = dialect_insert(engine)

    def candidates(self, article: CleanArticle) -> dict[str, str]:
        """Short paragraphs, by their key."""
        return {line_key(p): p for p in article.text.split("\n\n") if p and len(p) <= self.max_chars}

    async def strip(self, article: CleanArticle) -> CleanArticle:
        """The article without the lines its source is known to repeat."""
        lines = self.candidates(article)
        if not article.source or not lines:
            return article
        try:
            async with self.engine.connect() as connection:
                counts = dict(
                    (
                        await connection.execute(
                            select(cleanup_source_lines.c.line_hash, func.count())
                            .where(
                                cleanup_source_lines.c.source == article.source,
                                cleanup_source_lines.c.line_hash.in_(list(lines)),
                                cleanup_source_lines.c.article_id != article.id,
                            )
                            .group_by(cleanup_source_lines.c.line_hash)
                        )
                    ).all()
                )
        except (OperationalError, DBAPIError, OSError) as error:
            raise TemporaryFailure(f"the learned boilerplate is not reachable: {error}") from error
        learned = {key for key, seen in counts.items() if seen + 1 >= self.min_articles}
        if not learned:
            return article
        kept = [p for p in article.text.split("\n\n") if line_key(p) not in learned or len(p) > self.max_chars]
        removed = [
            Removal(
                what=lines[key], why=f"learned: the same line is in {counts[key] + 1} articles from {article.source}"
            )
            for key in learned
        ]
        return article.model_copy(update={"text": "\n\n".join(kept), "removed": [*article.removed, *removed]})

    async def learn(self, article: CleanArticle, lines: dict[str, str]) -> None:
        """Count this article's short lines for its source (once per article, however often redelivered)."""
        if not article.source or not lines:
            return
        now = datetime.now(UTC)
        try:
            async with self.engine.begin() as connection:
                await connection.execute(
                    self._insert(cleanup_source_lines).on_conflict_do_nothing(),
                    [
                        {
                            "source": article.source,
                            "line_hash": key,
                            "article_id": article.id,
                            "line": line,
                            "seen_at": now,
                        }
                        for key, line in lines.items()
                    ],
                )
        except (OperationalError, DBAPIError, OSError) as error:
            raise TemporaryFailure(f"the learned boilerplate is not reachable: {error}") from error


async def forget(engine: AsyncEngine, source: str | None = None) -> int:
    """Reset what was learned, for one source or all; return the number of line records removed."""
    statement = delete(cleanup_source_lines)
    if source is not None:
        statement = statement.where(cleanup_source_lines.c.source == source)
    async with engine.begin() as connection:
        return (await connection.execute(statement)).rowcount or 0
