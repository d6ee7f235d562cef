"""Whose fault is a failure: the record's own (dead-letter it) or the environment's (retry, without limit).

Decided once, here, for every stage. The environment is Kafka and the database: connection
refused, broker unavailable, time-outs, a database that is down, read-only, overloaded, or that
chose this transaction as a deadlock victim. Everything else, a value the database refuses, an
output that cannot be encoded, a recursion, a bug met by one odd article, belongs to the record.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from enum import Enum

from aiokafka import errors as kafka_errors
from sqlalchemy import exc as sql_errors

from .errors import RejectedInput, TemporaryFailure


class Fault(Enum):
    RECORD = "record"
    ENVIRONMENT = "environment"


# SQLSTATE classes (the first two characters) that say the database, not the data, is the problem:
# 08 connection exception, 25 invalid transaction state (read-only transaction: 25006),
# 40 transaction rollback (deadlock, serialization failure), 53 insufficient resources,
# 57 operator intervention (shutdown, query cancelled), 58 system error (I/O).
TEMPORARY_SQLSTATE_CLASSES = frozenset({"08", "25", "40", "53", "57", "58"})
# 22 data exception (value too long, bad encoding, out of range), 23 integrity constraint,
# 42 syntax error or access rule violation (e.g. a value of the wrong type for its column),
# 54 program limit exceeded (a text too long for a tsvector): the same statement fails however often it is tried.
RECORD_SQLSTATE_CLASSES = frozenset({"22", "23", "42", "54"})

# SQLite has no SQLSTATE; its result codes say the same things.
_SQLITE_TEMPORARY = frozenset(
    {"SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_READONLY"}
)
_SQLITE_RECORD = frozenset({"SQLITE_CONSTRAINT", "SQLITE_MISMATCH", "SQLITE_TOOBIG", "SQLITE_RANGE"})

# Kafka refuses these for what the message is, however often it is sent.
_KAFKA_RECORD_ERRORS = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, what it wraps (SQLAlchemy's ``orig``) and its causes."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]


def sqlstate(error: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE anywhere in the error's chain (asyncpg and SQLAlchemy both carry it)."""
    for item in _chain(error):
        code = getattr(item, "sqlstate", None) or getattr(item, "pgcode", None)
        if isinstance(code, str) and len(code) == 5:
            return code
    return None


def fault_of(error: BaseException) -> Fault:
    """Whether ``error`` is the record's own or the environment's."""
    if isinstance(error, RejectedInput):
        return Fault.RECORD
    if isinstance(error, TemporaryFailure) and not any(
        isinstance(item, sql_errors.DBAPIError) for item in _chain(error) if item is not error
    ):
        return Fault.ENVIRONMENT
    code = sqlstate(error)
    if code is not None:
        return Fault.RECORD if code[:2] in RECORD_SQLSTATE_CLASSES else Fault.ENVIRONMENT
    for item in _chain(error):
        if isinstance(item, sqlite3.Error):
            primary = _sqlite_primary(item)
            if primary in _SQLITE_TEMPORARY:
                return Fault.ENVIRONMENT
            if primary in _SQLITE_RECORD:
                return Fault.RECORD
            if isinstance(item, sqlite3.IntegrityError | sqlite3.DataError | sqlite3.ProgrammingError):
                return Fault.RECORD
            return Fault.ENVIRONMENT
        if isinstance(item, _KAFKA_RECORD_ERRORS):
            return Fault.RECORD
        if isinstance(item, kafka_errors.KafkaError):
            return Fault.ENVIRONMENT
        if isinstance(item, sql_errors.DisconnectionError | sql_errors.TimeoutError):
            return Fault.ENVIRONMENT
        if isinstance(item, sql_errors.IntegrityError | sql_errors.DataError):
            return Fault.RECORD
        if isinstance(item, sql_errors.OperationalError | sql_errors.InterfaceError):
            return Fault.ENVIRONMENT
        if isinstance(item, ConnectionError | TimeoutError | asyncio.TimeoutError):
            return Fault.ENVIRONMENT
        if isinstance(item, OSError):
            return Fault.ENVIRONMENT
    if isinstance(error, TemporaryFailure):
        return Fault.ENVIRONMENT
    return Fault.RECORD


# What says the database as a whole cannot take writes now, whatever the record: no space or memory, too many
# connections, read-only, an I/O error, a shutdown, another writer's lock. A probe's read still answers meanwhile.
_STORE_WIDE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58"})
_STORE_WIDE_SQLSTATES = frozenset({"25006"})  # read-only transaction: a replica promoted late, a standby
# A statement's time-out and its temporary files' limit: a record may cost that much on its own, and would stall the
# stage if it were waited for.
_ONE_STATEMENTS_LIMITS = frozenset({"57014", "53400"})
_SQLITE_STORE_WIDE = _SQLITE_TEMPORARY  # each of SQLite's (busy, locked, I/O, full, read-only) is the whole file's


def _sqlite_primary(error: sqlite3.Error) -> str:
    """SQLite's primary result code: extended codes (SQLITE_IOERR_READ) share their primary code's first two words."""
    return "_".join((getattr(error, "sqlite_errorname", "") or "").split("_")[:2])


def store_cannot_write(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot write anything now, not this record.

    Its own answer to a probe (a read) proves nothing then: storage took a full disk for each article's own fault,
    dead-lettered every article that came, and stayed ready. The stage waits for it instead, as for an outage.
    """
    code = sqlstate(error)
    if code is not None:
        wide = code[:2] in _STORE_WIDE_SQLSTATE_CLASSES or code in _STORE_WIDE_SQLSTATES
        return wide and code not in _ONE_STATEMENTS_LIMITS
    for item in _chain(error):
        if isinstance(item, sqlite3.Error):
            return _sqlite_primary(item) in _SQLITE_STORE_WIDE
    return False
