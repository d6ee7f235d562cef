"""Run Alembic migrations to head, safely from many processes starting at once."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError
from alembic.util.exc import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import first_line
from ..failures import sqlstate
from ..logs import say_at_start
from .engine import is_sqlite, make_engine, normalise_url

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_ID = 0x6E657773  # "news": one advisory lock for all Newsflow migrations


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def wait_for_database(engine: AsyncEngine, timeout: float) -> None:
    """Return once the database answers; after ``timeout`` seconds raise the last error, naming the cause."""
    deadline = asyncio.get_running_loop().time() + timeout
    delay = 0.5
    while True:
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            return
        except (OSError, DBAPIError) as error:
            if asyncio.get_running_loop().time() + delay > deadline:
                raise ConnectionError(_no_answer(engine, timeout, error)) from error
            reason = first_line(error, 200)  # "unable to open database file", say
            log.warning("waiting for the database (%s: %s); retrying in %.1fs", type(error).__name__, reason, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def _no_answer(engine: AsyncEngine, timeout: float, error: Exception) -> str:
    # The first line only: a driver's message goes on with the statement and a link to SQLAlchemy's docs.
    return (
        f"the database at {engine.url.render_as_string(hide_password=True)} did not answer within {timeout:.0f}s: "
        f"{first_line(error, 200)}; is DATABASE_URL right and the server up?"
    )


def require_database(database_url: str, timeout: float = 120.0) -> None:
    """For a service's start: wait for the database, or exit with one line saying why not.

    Left to the app's start, the wait ended in the ASGI server's traceback of the lifespan, the reason at its foot;
    and a SQLite file that could not be opened was waited for, 120 s, as if it were a server still starting.
    """

    async def answers() -> None:
        engine = make_engine(url)
        try:
            await wait_for_database(engine, timeout)
        finally:
            await engine.dispose()

    url = normalise_url(database_url)
    try:
        parsed = make_url(url)
        if is_sqlite(url):
            if parsed.query.get("uri") != "true":  # a URI filename (?mode=ro&uri=true) is the engine's to open
                _open_sqlite(parsed.database)
        else:
            asyncio.run(answers())
    except ConnectionError as error:
        say_at_start(str(error))
        raise SystemExit(3) from None


def _open_sqlite(database: str | None) -> None:
    """A local file opens at once or never (a folder that is not there, or not writable): no waiting."""
    if not database or database == ":memory:":
        return
    path = Path(database)  # as the engine reads it: "~" is no home folder there
    with contextlib.suppress(OSError):  # where it cannot be made, opening the file says why
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=5)) as connection:  # busy: see below
            connection.execute("PRAGMA journal_mode=WAL")  # as the engine does: it writes, where a SELECT would not
    except sqlite3.Error as error:
        if "locked" in str(error):  # replicas starting at once: open, and busy (the migration's lock waits)
            return
        raise ConnectionError(
            f"the SQLite database {path} cannot be opened: {error}; is its folder there and writable by this user "
            "(DATABASE_URL)?"
        ) from error


async def upgrade(database_url: str, revision: str = "head", *, wait: float = 0.0) -> str | None:
    """Bring the schema to ``revision``; return the revision it is at then. Concurrent callers wait for each other
    instead of racing.

    With ``wait``, a database that is still starting gets that many seconds to answer first.
    """
    url = normalise_url(database_url)
    engine = make_engine(url)
    clock = asyncio.get_running_loop().time
    deadline = clock() + wait
    pause = 0.5
    try:
        while True:
            if wait:
                await wait_for_database(engine, max(deadline - clock(), 0.0))
            try:
                with _file_lock(url):
                    async with engine.begin() as connection:
                        if not is_sqlite(url):
                            await connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
                        return await connection.run_sync(_run_alembic, revision)
            except (OSError, DBAPIError) as error:
                # A database restarted while a replica checked the schema (the migration is one transaction, so it
                # is simply done again): that replica exited with a traceback, and `newsflow run` stopped the
                # pipeline with it. Anything else (a refused statement, a read-only database that answers) is raised
                # at once: asked again, a read-only one was asked 300 times a second for the whole wait.
                if not wait or not _connection_lost(error) or clock() + pause >= deadline:
                    raise
                log.warning(
                    "the database went away while the schema was checked (%s: %s); checking again in %.1fs",
                    type(error).__name__,
                    first_line(error, 200),
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
    finally:
        await engine.dispose()


def _connection_lost(error: BaseException) -> bool:
    """The connection ended under the statement: the server stopped or restarted (SQLSTATE 08, 57P01-57P03)."""
    if isinstance(error, OSError) or (isinstance(error, DBAPIError) and error.connection_invalidated):
        return True
    code = sqlstate(error)
    return code is not None and (code.startswith("08") or code in {"57P01", "57P02", "57P03"})


def upgrade_blocking(database_url: str, revision: str = "head") -> None:
    asyncio.run(upgrade(database_url, revision))


def latest_revision() -> str | None:
    """The newest schema revision this release has."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _run_alembic(connection: Connection, revision: str) -> str | None:
    config = alembic_config()
    config.attributes["connection"] = connection
    scripts = ScriptDirectory.from_config(config)
    if revision == "head" and (newer := _unknown_revision(connection, scripts)) is not None:
        # A newer release migrated this database and this one was put back (`kubectl rollout undo`): Alembic
        # refused ("Can't locate revision"), and every replica of the stages that use the database crash-looped.
        # Within a major version a migration only adds (tables, columns, indexes, triggers that fill a column), so
        # this release's statements still work on the newer schema.
        log.warning(
            "the database's schema is at revision %s, newer than this release knows (its newest is %s): a newer "
            "release migrated it. Carrying on without migrating, as migrations within a major version only add to "
            "the schema; the newer release's `newsflow db upgrade` or its start takes it on from there",
            newer,
            scripts.get_current_head(),
        )
        return newer
    command.upgrade(config, revision)
    return MigrationContext.configure(connection).get_current_revision()


def _unknown_revision(connection: Connection, scripts: ScriptDirectory) -> str | None:
    """The database's schema revision where it is a later one of Newsflow's than this release has, else None.

    Only a later number of ours: a database of another application (a mistaken ``DATABASE_URL``) has an Alembic
    revision this release does not know either, and carried on, every article was dead-lettered for the tables
    missing; Alembic refuses that one at start, as it should.
    """
    newest = scripts.get_current_head() or ""
    for current in MigrationContext.configure(connection).get_current_heads():
        try:
            scripts.get_revision(current)
        except (ResolutionError, CommandError):
            later = re.fullmatch(r"[0-9]{4}", current) and newest.isdigit() and int(current) > int(newest)
            # Numbered like ours and holding our tables: another application may number its revisions too.
            if later and all(inspect(connection).has_table(name) for name in ("articles", "dead_letters")):
                return current
    return None


@contextmanager
def _file_lock(url: str) -> Iterator[None]:
    """SQLite has no advisory locks: serialise migrations with a lock file beside the database."""
    database = make_url(url).database if is_sqlite(url) else None
    if not database or database == ":memory:":
        yield
        return
    path = Path(database).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.migrate-lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
