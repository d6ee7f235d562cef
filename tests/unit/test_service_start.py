"""What a service waits for at start (its database, its topics), and how it says why it cannot go on."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from newsflow_classify.settings import ClassifySettings
from newsflow_cleanup.settings import CleanupSettings
from newsflow_ingest.settings import IngestSettings
from newsflow_shared import ServiceSettings
from newsflow_shared.db import require_database
from newsflow_shared.service import require_address
from newsflow_storage.settings import StorageSettings


def test_a_server_that_never_answers_is_one_line_and_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        require_database("postgresql://newsflow:pw-secret@no-such-host.invalid:5432/db", timeout=1)
    assert ended.value.code == 3
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: the database at postgresql+asyncpg://newsflow:***@no-such-host.invalid:5432/db")
    assert line.endswith("is DATABASE_URL right and the server up?")
    assert "pw-secret" not in line


def test_a_sqlite_file_that_cannot_be_made_is_named_without_the_long_wait(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its folder is a file here; in a container, a read-only one. It waited 120 s, then a traceback."""
    (tmp_path / "a-file").write_text("")
    database = tmp_path / "a-file" / "newsflow.db"
    started = time.monotonic()
    with pytest.raises(SystemExit) as ended:
        require_database(f"sqlite+aiosqlite:///{database}")
    assert ended.value.code == 3
    assert time.monotonic() - started < 5
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"error: the SQLite database {database} cannot be opened: unable to open database file; is its folder there"
        " and writable by this user (DATABASE_URL)?"
    )


def test_a_sqlite_file_in_a_folder_not_yet_there_is_made(tmp_path: Path) -> None:
    require_database(f"sqlite+aiosqlite:///{tmp_path}/data/newsflow.db")
    assert (tmp_path / "data" / "newsflow.db").is_file()


def test_only_a_service_that_keeps_state_waits_for_the_database() -> None:
    assert not ServiceSettings().uses_database  # classify's
    assert StorageSettings().uses_database
    assert IngestSettings().uses_database
    assert not IngestSettings(ingest_dedupe=False).uses_database
    assert CleanupSettings(cleanup_near_duplicates=False).uses_database  # it still learns boilerplate
    assert not CleanupSettings(cleanup_near_duplicates=False, cleanup_learn_boilerplate=False).uses_database


def test_each_service_waits_at_start_for_the_topics_it_reads_or_writes() -> None:
    assert ServiceSettings().topics_used == ServiceSettings().topics.all()  # the commands: all of them
    assert IngestSettings().topics_used == ["articles.raw", "articles.ingested", "articles.skipped", "articles.dlq"]
    assert CleanupSettings().topics_used == [
        "articles.ingested",
        "articles.clean",
        "articles.unsupported",
        "articles.dlq",
    ]
    assert ClassifySettings().topics_used == ["articles.clean", "articles.enriched", "articles.dlq"]
    assert StorageSettings().topics_used == ["articles.enriched", "articles.stored", "articles.dlq"]


def test_a_sqlite_file_busy_with_another_process_is_not_refused(tmp_path: Path) -> None:
    """Replicas starting at once: switching a database to WAL found it locked at once, and a replica exited 3."""
    database = tmp_path / "busy.db"
    holder = sqlite3.connect(database)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        require_database(f"sqlite+aiosqlite:///{database}")
    finally:
        holder.rollback()
        holder.close()


def test_a_sqlite_uri_is_left_to_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``?mode=ro&uri=true`` was opened as a plain file: a writable database made where none was to be."""
    monkeypatch.chdir(tmp_path)
    require_database("sqlite+aiosqlite:///file:data.db?mode=ro&uri=true")
    assert not (tmp_path / "data.db").exists()
    assert not (tmp_path / "file:data.db").exists()


@pytest.mark.parametrize(
    ("module", "env", "named"),
    [
        ("newsflow_storage", {"STORAGE_API_HOST": "locahost.invalid"}, "STORAGE_API_HOST=locahost.invalid"),
        ("newsflow_ingest", {"HEALTH_HOST": "256.1.1.1"}, "HEALTH_HOST=256.1.1.1"),
        ("newsflow_ingest", {"HEALTH_HOST": "a" * 100}, "HEALTH_HOST=" + "a" * 100),  # the IDNA codec's traceback
        ("newsflow_ingest", {"HEALTH_PORT": "{taken}"}, "HEALTH_PORT={taken}"),
    ],
)
def test_where_a_service_cannot_listen_is_said_at_once_naming_the_variable(
    module: str, env: dict[str, str], named: str, tmp_path: Path
) -> None:
    """A mistyped host or a port in use showed only after the waits for Kafka and the database, as exit 3 and
    uvicorn's "Name or service not known", no variable named."""
    with socket.create_server(("0.0.0.0", 0)) as taken:
        port = str(taken.getsockname()[1])
        environment = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached: the address is tried first
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/newsflow.db",
            **{k: v.replace("{taken}", port) for k, v in env.items()},
        }
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", module], env=environment, capture_output=True, text=True, timeout=60, check=False
        )
    assert done.returncode == 78, done.stderr
    assert time.monotonic() - started < 30
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert named.replace("{taken}", port) in line
    assert "cannot listen there" in line


def test_listening_on_every_ipv6_address_beside_an_ipv4_listener_is_allowed() -> None:
    """uvicorn binds "::" alone (IPv6 only), beside a listener on the same IPv4 port: the check refused it."""
    try:
        socket.create_server(("::", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("IPv6 is off on this machine")
    with socket.create_server(("127.0.0.1", 0)) as ipv4:
        require_address("::", ipv4.getsockname()[1], ("HEALTH_HOST", "HEALTH_PORT"))  # does not exit
    with socket.create_server(("127.0.0.1", 0)) as taken, pytest.raises(SystemExit) as ended:
        require_address("127.0.0.1", taken.getsockname()[1], ("HEALTH_HOST", "HEALTH_PORT"))
    assert ended.value.code == 78


def test_a_host_of_several_addresses_is_tried_on_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn binds every address a host name resolves to: the first alone was tried, so a port taken on the
    second passed the check and failed uvicorn's start after the waits."""
    try:
        taken = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("IPv6 is off on this machine")
    port = taken.getsockname()[1]
    both = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: both)
    with taken, pytest.raises(SystemExit) as ended:
        require_address("localhost", port, ("HEALTH_HOST", "HEALTH_PORT"))
    assert ended.value.code == 78


def test_with_json_logs_the_reason_a_service_exits_at_start_is_a_record_at_any_level(tmp_path: Path) -> None:
    """A log shipper parsing JSON misread the plain "error: …" line; and LOG_LEVEL=CRITICAL must not hide why."""
    environment = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/newsflow.db",
        "HEALTH_HOST": "256.1.1.1",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "CRITICAL",
    }
    record = last_word_of_ingest(environment)
    assert "HEALTH_HOST=256.1.1.1" in record["event"]
    assert "cannot listen there" in record["event"]


def test_with_json_logs_a_refused_setting_is_one_record_and_the_commands_stay_plain(tmp_path: Path) -> None:
    """The services' settings refusal was plain text under LOG_FORMAT=json; a command run by hand in the same pod
    (the ConfigMap sets LOG_FORMAT for everything there) is read by a person and keeps plain lines."""
    environment = {**os.environ, "LOG_FORMAT": "json", "LOG_LEVEL": "TRACE"}
    record = last_word_of_ingest(environment)
    assert "LOG_LEVEL='TRACE'" in record["event"]
    newsflow = Path(sys.executable).with_name("newsflow")
    done = subprocess.run([str(newsflow), "status"], env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 78, done.stderr
    assert done.stderr.startswith("ServiceSettings: 1 setting(s) in the environment cannot be used")


def last_word_of_ingest(environment: dict[str, str]) -> dict[str, Any]:
    """The one JSON record ingest writes before it exits 78, at CRITICAL."""
    done = subprocess.run(
        [sys.executable, "-m", "newsflow_ingest"], env=environment, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 78, done.stderr
    [line] = done.stderr.strip().splitlines()
    record: dict[str, Any] = json.loads(line)
    assert (record["level"], record["service"]) == ("critical", "ingest")
    return record
