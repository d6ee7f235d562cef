"""Async engines for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import event, func, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}


IDLE_IN_TRANSACTION_MS = 300_000
CONNECT_TIMEOUT_S = 15
"""How long a PostgreSQL connection may take to open (asyncpg's own is 60 s): a server that accepts and never answers
held a command a silent minute, then said "TimeoutError: " and nothing more; services retry sooner."""


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` and ``sqlite://`` URLs too, and give them the async driver.

    libpq's ``sslmode`` (what managed PostgreSQL services hand out) is asyncpg's ``ssl``, with the same modes:
    passed on as it was, asyncpg refused the unknown argument in a traceback and every replica crash-looped.
    """
    parsed = make_url(url)
    if "+" not in parsed.drivername and parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    if "sslmode" in parsed.query and parsed.get_backend_name() == "postgresql":
        query = dict(parsed.query)
        mode = query.pop("sslmode")
        parsed = parsed.set(query={"ssl": mode, **query})
    return parsed.render_as_string(hide_password=False)


def as_utc(value: datetime) -> datetime:
    """Every time Newsflow stores is UTC: SQLite keeps no offset, so one is fixed on the way in and out."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# How many characters of SQLite's stored text, and PostgreSQL's format, write each period.
_PERIODS = {"month": (7, "YYYY-MM"), "day": (10, "YYYY-MM-DD"), "minute": (16, "YYYY-MM-DD HH24:MI")}


def utc_period(column: Any, period: Literal["month", "day", "minute"], *, sqlite: bool) -> Any:
    """A stored time's month, day or minute as text (``YYYY-MM-DD HH:MM`` cut to it, UTC), for counting in the
    database.

    In UTC on PostgreSQL too: ``to_char`` of a ``timestamptz`` writes the session's time zone, the server's by
    default, and on a server not set to UTC every count landed hours away from the minute it belongs to.
    """
    length, postgres_format = _PERIODS[period]
    if sqlite:
        return func.substr(column, 1, length)  # SQLite keeps the UTC time as text, 'YYYY-MM-DD HH:MM:SS.ffffff'
    return func.to_char(func.timezone("UTC", column), postgres_format)


def minute_of(stamp: str) -> datetime:
    """The minute :func:`utc_period` wrote."""
    return datetime.fromisoformat(stamp.replace(" ", "T")).replace(tzinfo=UTC)


def is_sqlite(engine_or_url: AsyncEngine | str) -> bool:
    url = engine_or_url if isinstance(engine_or_url, str) else str(engine_or_url.url)
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, **options: Any) -> AsyncEngine:
    """An engine tuned for many small concurrent processes sharing one database."""
    url = normalise_url(url)
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": 60}, **options)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets readers (the API) run beside the writer; busy_timeout makes
            # replicas wait for the write lock instead of failing.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    options.setdefault("pool_size", 5)
    options.setdefault("pool_pre_ping", True)
    # Over a URL's ?timeout=, which SQLAlchemy hands asyncpg as text (TypeError at every connect); a caller's stands.
    options["connect_args"] = {"timeout": CONNECT_TIMEOUT_S, **options.get("connect_args", {})}
    engine = create_async_engine(url, **options)

    @event.listens_for(engine.sync_engine, "connect")
    def _end_abandoned_transactions(dbapi_connection: Any, _record: Any) -> None:
        # A replica that vanished mid-transaction (its node lost) held its locks, cleanup's index lock among them,
        # until TCP noticed, hours by default: the server ends a transaction left idle this long instead. Newsflow's
        # own are never idle longer than the seconds a batch's work takes between statements. A SET, not a startup
        # parameter, which PgBouncer refuses.
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")
        cursor.close()

    return engine


async def ping_database(engine: AsyncEngine) -> None:
    """Raise unless the database answers a trivial query: the stage's probe for "is it the environment?"."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def dialect_insert(engine: AsyncEngine) -> Any:
    """The ``insert`` that knows ``ON CONFLICT`` for this engine's database."""
    if is_sqlite(engine):
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert
