"""The database commands (``db upgrade``, the init job's; the cleanup forget commands) fail in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def newsflow(
    *args: str, database_url: str | None, cwd: Path | None = None, home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"COLUMNS": "400"}
    if database_url is not None:
        environment["DATABASE_URL"] = database_url
    if home is not None:
        environment["NEWSFLOW_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "newsflow_cli", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.mark.parametrize("command", [("db", "upgrade"), ("cleanup", "forget-boilerplate", "--all")])
def test_a_server_that_cannot_be_reached_is_one_line_and_exit_3(command: tuple[str, ...]) -> None:
    """`db upgrade` printed 522 lines of traceback for an unknown host, and exited 1."""
    done = newsflow(*command, database_url="postgresql+asyncpg://newsflow:pw-secret@no-such-host.invalid:5432/db")
    assert done.returncode == 3
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: the database at postgresql+asyncpg://newsflow:***@no-such-host.invalid:5432/db")
    assert "pw-secret" not in done.stderr


@pytest.mark.parametrize(
    "command", [("cleanup", "forget-boilerplate", "--all"), ("cleanup", "forget-duplicates", "--all")]
)
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


def test_the_database_commands_find_newsflow_runs_database(tmp_path: Path) -> None:
    """As dlq and replay do: they read the default, a newsflow.db in the current folder, and said there was none."""
    home = tmp_path / "state"
    home.mkdir()
    done = newsflow("db", "upgrade", database_url=f"sqlite+aiosqlite:///{home}/newsflow.db")
    assert done.returncode == 0, done.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for command in (
        ("cleanup", "forget-boilerplate", "--all"),
        ("cleanup", "forget-duplicates", "--all"),
        ("db", "upgrade"),
    ):
        done = newsflow(*command, database_url=None, cwd=elsewhere, home=home)
        assert done.returncode == 0, (command, done.stderr)
    assert list(elsewhere.iterdir()) == []


def test_db_upgrade_with_no_database_named_makes_none(tmp_path: Path) -> None:
    """It made ./newsflow.db, unasked, and said the schema was up to date."""
    done = newsflow("db", "upgrade", database_url=None, cwd=tmp_path, home=tmp_path / "no-state")
    assert done.returncode == 2
    assert "DATABASE_URL is not set" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_forget_duplicates_where_cleanups_libraries_are_missing_says_where_to_run_it(tmp_path: Path) -> None:
    """Storage's image, where the README ran the runbook's commands, has no datasketch: a traceback."""
    database = f"sqlite+aiosqlite:///{tmp_path}/newsflow.db"
    assert newsflow("db", "upgrade", database_url=database).returncode == 0
    script = "import sys; sys.modules['datasketch'] = None; from newsflow_cli.main import app; app()"
    done = subprocess.run(
        [sys.executable, "-c", script, "cleanup", "forget-duplicates", "--all"],
        env={**os.environ, "DATABASE_URL": database, "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    assert "lacks cleanup's dependencies (datasketch)" in done.stderr
    assert "deploy/newsflow-cleanup" in done.stderr


def test_db_upgrade_says_the_revision_it_reached(tmp_path: Path) -> None:
    """`db upgrade 0001` stopped there and said "up to date"; an unknown revision was 319 lines of traceback."""
    from newsflow_shared.db.migrate import latest_revision

    database = f"sqlite+aiosqlite:///{tmp_path}/new.db"
    done = newsflow("db", "upgrade", "0001", database_url=database)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().endswith(
        f"the database schema is at revision 0001; this release's latest is {latest_revision()}"
    )
    done = newsflow("db", "upgrade", database_url=database)
    assert done.stderr.strip().endswith(f"the database schema is up to date (revision {latest_revision()})")
    done = newsflow("db", "upgrade", "no-such-revision", database_url=database)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "no-such-revision" in line
    assert f"this release's latest is {latest_revision()}" in line


def test_replay_from_stored_with_no_database_makes_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no DATABASE_URL and no `newsflow run` state it made ./newsflow.db, then a "no such table: articles"
    traceback. Kafka is taken as answering: the database is looked for before anything is sent."""
    import asyncio

    from typer.testing import CliRunner

    from newsflow_cli import main
    from newsflow_shared import ServiceSettings, settings_from_environment

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(main, "with_kafka", lambda work: asyncio.run(work(settings_from_environment(ServiceSettings))))
    result = CliRunner().invoke(main.app, ["replay", "--id", "a-1"], env={"COLUMNS": "400"})
    assert result.exit_code == 3, result.output
    assert "no SQLite database at sqlite+aiosqlite:///newsflow.db" in result.output
    assert "replaying" not in result.output  # no empty progress bar under the error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("forget-boilerplate",), "give --source S, or --all to forget everything"),
        (("forget-duplicates",), "give --older-than-days D, or --all to forget everything"),
        (("forget-duplicates", "--older-than-days", "3", "--all"), "--all forgets everything"),
    ],
)
def test_forgetting_everything_is_asked_for_by_name(args: tuple[str, ...], said: str, tmp_path: Path) -> None:
    """A bare `forget-duplicates` emptied the whole index, and `forget-boilerplate` every source's lines, unasked."""
    database = f"sqlite+aiosqlite:///{tmp_path}/newsflow.db"
    assert newsflow("db", "upgrade", database_url=database).returncode == 0
    done = newsflow("cleanup", *args, database_url=database)
    assert done.returncode == 2
    assert said in done.stderr


def test_forgetting_a_source_that_taught_nothing_says_so(tmp_path: Path) -> None:
    """A mistyped --source said "forgot 0 learned line records" and exit 0."""
    database = f"sqlite+aiosqlite:///{tmp_path}/newsflow.db"
    assert newsflow("db", "upgrade", database_url=database).returncode == 0
    done = newsflow("cleanup", "forget-boilerplate", "--source", "exmaple.com", database_url=database)
    assert done.returncode == 1
    assert "nothing was learned of the source 'exmaple.com'" in done.stderr
