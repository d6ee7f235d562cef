"""What ingest has already passed on, shared by every replica through the database.

Database errors are not caught here: the stage sorts them by SQLSTATE into the database's
trouble (retried) and a record's own (dead-lettered), in one place for every service.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import and_, not_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from newsflow_shared.contracts import is_article_id
from newsflow_shared.db.engine import dialect_insert
from newsflow_shared.db.tables import ingest_seen

FORGOTTEN = ""
"""The content hash of a forgotten article: its row stays, with the time it was forgotten, so that a ``remember`` of
the version passed on before it (late, its batch still finishing) does not bring it back."""


def unforgotten(recorded: dict[str, str]) -> dict[str, str]:
    """Of what :meth:`SeenStore.recorded` found, the ids whose last version passed on is still remembered."""
    return {article_id: digest for article_id, digest in recorded.items() if digest != FORGOTTEN}


class SeenStore:
    """Remembers the content hash last passed on for each article id."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        insert = dialect_insert(engine)(ingest_seen)
        # One statement for every batch, its rows passed as parameters: built with the rows as its VALUES, each
        # batch's size made a statement SQLAlchemy compiled anew (~8 % of ingest's CPU in the pipeline).
        self._upsert = insert.on_conflict_do_update(
            index_elements=[ingest_seen.c.article_id],
            set_={"content_hash": insert.excluded.content_hash, "last_seen_at": insert.excluded.last_seen_at},
            # Not over a forgetting that came after the version was passed on: a later stage refused it meanwhile.
            where=not_(
                and_(
                    ingest_seen.c.content_hash == FORGOTTEN,
                    ingest_seen.c.last_seen_at > insert.excluded.last_seen_at,
                )
            ),
        )
        self._forget = insert.on_conflict_do_update(
            index_elements=[ingest_seen.c.article_id],
            set_={"content_hash": insert.excluded.content_hash, "last_seen_at": insert.excluded.last_seen_at},
        )

    async def lookup(self, ids: Iterable[str]) -> dict[str, str]:
        """Content hash per id already seen; ids never seen, or forgotten, are absent."""
        return unforgotten(await self.recorded(ids))

    async def recorded(self, ids: Iterable[str]) -> dict[str, str]:
        """Content hash per id ever passed on, :data:`FORGOTTEN` for one forgotten since: a forgotten article may
        still be stored (an earlier version of it), so its id is still its id."""
        ids = list(set(ids))
        if not ids:
            return {}
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(ingest_seen.c.article_id, ingest_seen.c.content_hash).where(ingest_seen.c.article_id.in_(ids))
            )
            return {row.article_id: row.content_hash for row in rows}

    async def remember(self, seen: dict[str, str], passed_at: datetime | None = None) -> None:
        """Record ``id -> content hash`` after the articles were passed on, from ``passed_at`` (before they were sent).

        Remembered after Kafka took them (a crash before that must not leave them skipped as seen), a batch's rows
        can land after a later stage refused one and ingest forgot it: the forgetting, being later than
        ``passed_at``, stands. Before, the row came back, and the corrected article pushed again was skipped.
        """
        if not seen:
            return
        now = datetime.now(UTC)
        at = (passed_at or now).astimezone(UTC)  # SQLite compares the times as text: all in UTC
        rows = [{"article_id": i, "content_hash": h, "first_seen_at": now, "last_seen_at": at} for i, h in seen.items()]
        async with self.engine.begin() as connection:
            await connection.execute(self._upsert, rows)

    async def forget(self, ids: Iterable[str]) -> None:
        """Forget articles a later stage dead-lettered: pushed again, they are processed, not skipped.

        Ids that no article can have (a letter written by hand to the dead-letter topic) are passed over: ingest never
        remembered them, and PostgreSQL refuses one over 200 characters or with a NUL, which failed the whole batch.
        """
        ids = [i for i in set(ids) if is_article_id(i)]
        if ids:
            now = datetime.now(UTC)
            rows = [
                {"article_id": i, "content_hash": FORGOTTEN, "first_seen_at": now, "last_seen_at": now} for i in ids
            ]
            async with self.engine.begin() as connection:
                await connection.execute(self._forget, rows)
