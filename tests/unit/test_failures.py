"""Whose fault is a failure: sorted once, by SQLSTATE class and error type."""

from __future__ import annotations

import sqlite3

import pytest
from aiokafka import errors as kafka_errors
from sqlalchemy import exc as sql_errors

from newsflow_shared import InvalidArticle, TemporaryFailure
from newsflow_shared.failures import Fault, fault_of


class DriverError(Exception):
    """What asyncpg raises: an exception carrying the server's SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"server said {sqlstate}")
        self.sqlstate = sqlstate


def database_error(sqlstate: str) -> sql_errors.DBAPIError:
    return sql_errors.DBAPIError("INSERT ...", {}, DriverError(sqlstate))


@pytest.mark.parametrize(
    ("sqlstate", "fault"),
    [
        ("08006", Fault.ENVIRONMENT),  # connection failure
        ("53300", Fault.ENVIRONMENT),  # too many connections
        ("57P01", Fault.ENVIRONMENT),  # admin shutdown
        ("40P01", Fault.ENVIRONMENT),  # deadlock
        ("40001", Fault.ENVIRONMENT),  # serialization failure
        ("25006", Fault.ENVIRONMENT),  # read-only transaction
        ("22001", Fault.RECORD),  # value too long
        ("22021", Fault.RECORD),  # bad byte sequence (a NUL)
        ("22P05", Fault.RECORD),  # untranslatable character in JSON
        ("23505", Fault.RECORD),  # unique violation
        ("42804", Fault.RECORD),  # datatype mismatch
        ("54000", Fault.RECORD),  # program limit exceeded: string is too long for tsvector
    ],
)
def test_database_errors_are_sorted_by_sqlstate_class(sqlstate: str, fault: Fault) -> None:
    assert fault_of(database_error(sqlstate)) is fault
    # Wrapped by a service as before, the SQLSTATE still decides.
    wrapped = TemporaryFailure("the database refused the batch")
    wrapped.__cause__ = database_error(sqlstate)
    assert fault_of(wrapped) is fault


def sqlite_error(kind: type[sqlite3.Error], name: str) -> sql_errors.DBAPIError:
    error = kind("boom")
    error.sqlite_errorname = name  # type: ignore[attr-defined]
    return sql_errors.DBAPIError("INSERT ...", {}, error)


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (sqlite_error(sqlite3.OperationalError, "SQLITE_BUSY"), Fault.ENVIRONMENT),
        (sqlite_error(sqlite3.OperationalError, "SQLITE_IOERR_WRITE"), Fault.ENVIRONMENT),
        (sqlite_error(sqlite3.OperationalError, "SQLITE_READONLY"), Fault.ENVIRONMENT),
        (sqlite_error(sqlite3.IntegrityError, "SQLITE_CONSTRAINT_NOTNULL"), Fault.RECORD),
        (sqlite_error(sqlite3.DataError, "SQLITE_TOOBIG"), Fault.RECORD),
        (kafka_errors.KafkaConnectionError("refused"), Fault.ENVIRONMENT),
        (kafka_errors.KafkaTimeoutError(), Fault.ENVIRONMENT),
        (kafka_errors.MessageSizeTooLargeError(), Fault.RECORD),
        (ConnectionRefusedError(), Fault.ENVIRONMENT),
        (TimeoutError(), Fault.ENVIRONMENT),
        (TemporaryFailure("the model server is away"), Fault.ENVIRONMENT),
        (InvalidArticle("no body"), Fault.RECORD),
        (RecursionError(), Fault.RECORD),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), Fault.RECORD),
        (OverflowError("date value out of range"), Fault.RECORD),
        (ValueError("a parser met something odd"), Fault.RECORD),
    ],
)
def test_other_failures(error: BaseException, fault: Fault) -> None:
    assert fault_of(error) is fault
