"""The database commands (``db upgrade``, the init job's; the cleanup forget commands) fail in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def newsflow(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATABASE_URL": database_url, "COLUMNS": "400"}
    return subprocess.run(
        [sys.executable, "-m", "newsflow_cli", *args], env=environment, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", [("db", "upgrade"), ("cleanup", "forget-boilerplate")])
def test_a_server_that_cannot_be_reached_is_one_line_and_exit_3(command: tuple[str, ...]) -> None:
    """`db upgrade` printed 522 lines of traceback for an unknown host, and exited 1."""
    done = newsflow(*command, database_url="postgresql+asyncpg://newsflow:pw-secret@no-such-host.invalid:5432/db")
    assert done.returncode == 3
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: the database at postgresql+asyncpg://newsflow:***@no-such-host.invalid:5432/db")
    assert "pw-secret" not in done.stderr


@pytest.mark.parametrize("command", [("cleanup", "forget-boilerplate"), ("cleanup", "forget-duplicates")])
def test_a_sqlite_file_that_is_not_there_is_named_not_made(command: tuple[str, ...], tmp_path: Path) -> None:
    """It was made empty, and then found to have no tables, in 489 lines."""
    database = tmp_path / "newsflow.db"
    done = newsflow(*command, database_url=f"sqlite+aiosqlite:///{database}")
    assert done.returncode == 3
    assert (
        done.stderr.strip()
        == f"error: no SQLite database at sqlite+aiosqlite:///{database}: the services make it as they start"
    )
    assert not database.exists()


def test_db_upgrade_makes_a_new_sqlite_file(tmp_path: Path) -> None:
    done = newsflow("db", "upgrade", database_url=f"sqlite+aiosqlite:///{tmp_path}/new.db")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "new.db").is_file()
