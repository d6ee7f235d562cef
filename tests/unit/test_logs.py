"""Logging: plain tracebacks in both formats, a stop in mid-batch said plainly, and a deadline exit that a held log
lock cannot delay."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
import structlog

from newsflow_shared import ServiceSettings, logs
from newsflow_shared.broker import make_broker, told
from newsflow_shared.logs import configure_logging

ARTICLE_TEXT = "Parliament extended the measures"  # short enough that no renderer wraps it


@pytest.fixture
def written() -> Iterator[io.StringIO]:
    """What the service's log handler writes, with the root logger and structlog put back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    yield stream
    root.handlers[:], root.level = handlers, level
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def log_failure(stream: io.StringIO, fmt: str) -> str:
    configure_logging("cleanup", "INFO", fmt)
    logging.getLogger().handlers[0].stream = stream  # type: ignore[attr-defined]

    def handle(batch: list[str]) -> None:
        raise ValueError("the database refused the batch")

    try:
        handle([ARTICLE_TEXT] * 50)
    except ValueError as error:
        logging.getLogger("newsflow_shared.stage").error("giving up on a batch", exc_info=error)
    return stream.getvalue()


def test_the_console_shows_a_plain_traceback_without_the_frames_variables(written: io.StringIO) -> None:
    output = log_failure(written, "console")
    assert "Traceback (most recent call last)" in output
    assert "ValueError: the database refused the batch" in output
    assert 'raise ValueError("the database refused the batch")' in output
    # rich's default would print the frame's locals: every article of the batch, into the log.
    assert ARTICLE_TEXT not in output


def test_json_lines_carry_the_traceback_as_text(written: io.StringIO) -> None:
    [line] = log_failure(written, "json").splitlines()
    record = json.loads(line)
    assert record["event"] == "giving up on a batch"
    assert record["level"] == "error"
    assert record["service"] == "cleanup"
    assert record["exception"].startswith("Traceback (most recent call last)")
    assert record["exception"].endswith("ValueError: the database refused the batch")
    assert "exc_info" not in record
    assert ARTICLE_TEXT not in line


def test_a_batch_cancelled_by_the_stop_is_reported_as_redelivered_not_as_an_error(written: io.StringIO) -> None:
    configure_logging("classify", "INFO", "json")
    logging.getLogger().handlers[0].stream = written  # type: ignore[attr-defined]
    make_broker(ServiceSettings(), "classify")
    make_broker(ServiceSettings(), "classify")  # a second broker in one process adds no second rewrite
    logger = logging.getLogger("newsflow.classify.broker")
    # As FastStream's logging middleware reports an exception out of a handler.
    logger.log(logging.ERROR, "CancelledError: ", exc_info=asyncio.CancelledError())
    logger.log(logging.ERROR, "KeyError: 'id'", exc_info=KeyError("id"))
    cancelled, other = (json.loads(line) for line in written.getvalue().splitlines())
    assert cancelled["level"] == "info"
    assert cancelled["event"] == "stopped in the middle of a batch: it is not committed and will be redelivered"
    assert "exception" not in cancelled
    assert other["level"] == "error"
    assert other["event"] == "KeyError: 'id'"
    assert "KeyError: 'id'" in other["exception"]


def test_a_quieter_log_level_hides_the_rewritten_line(written: io.StringIO) -> None:
    configure_logging("classify", "WARNING", "json")
    logging.getLogger().handlers[0].stream = written  # type: ignore[attr-defined]
    make_broker(ServiceSettings(), "classify")
    logging.getLogger("newsflow.classify.broker").error("CancelledError: ", exc_info=asyncio.CancelledError())
    assert written.getvalue() == ""


def test_a_batch_rewound_after_the_stages_own_warning_keeps_its_traceback_for_debug(written: io.StringIO) -> None:
    """With PostgreSQL down, each retry's re-raise (to rewind the batch) added FastStream's 143-line traceback under
    the stage's own warning."""
    configure_logging("ingest", "INFO", "json")
    logging.getLogger().handlers[0].stream = written  # type: ignore[attr-defined]
    make_broker(ServiceSettings(), "ingest")
    logger = logging.getLogger("newsflow.ingest.broker")
    refused = ConnectionRefusedError("connection refused")
    told(refused)
    logger.error("ConnectionRefusedError: ", exc_info=refused)
    assert written.getvalue() == ""
    logger.error("KeyError: 'id'", exc_info=KeyError("id"))  # not said by the stage: as it was
    assert json.loads(written.getvalue())["level"] == "error"
    configure_logging("ingest", "DEBUG", "json")
    logging.getLogger().handlers[0].stream = debug = io.StringIO()  # type: ignore[attr-defined]
    logger.error("ConnectionRefusedError: ", exc_info=refused)
    [line] = debug.getvalue().splitlines()
    assert json.loads(line)["level"] == "debug"
    assert "ConnectionRefusedError: connection refused" in json.loads(line)["exception"]


def test_the_kafka_clients_repeated_errors_are_said_once_a_minute_with_how_many_were_left_out(
    written: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Kafka away, one idle replica wrote ~150 aiokafka error lines a second, none of them its own."""
    now = [1000.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: now[0])
    configure_logging("ingest", "INFO", "json")
    logging.getLogger().handlers[0].stream = written  # type: ignore[attr-defined]
    client, fetcher = logging.getLogger("aiokafka"), logging.getLogger("aiokafka.consumer.fetcher")
    for _ in range(150):
        client.error("Unable connect to node with id %s: %s", 1, "[Errno 111] Connect call failed")
        fetcher.error("Failed fetch messages from %s: %s", 1, "NodeNotReadyError")
        logging.getLogger("newsflow.ingest").warning("the stage's own line %d", 1)
    now[0] += 59
    client.error("Unable connect to node with id %s: %s", 1, "again")
    now[0] += 2
    client.error("Unable connect to node with id %s: %s", 1, "still")
    events = [json.loads(line)["event"] for line in written.getvalue().splitlines()]
    assert events.count("the stage's own line 1") == 150
    kafka = [e for e in events if "stage's own" not in e]
    assert kafka == [
        "Unable connect to node with id 1: [Errno 111] Connect call failed",
        "Failed fetch messages from 1: NodeNotReadyError",
        "Unable connect to node with id 1: still (and 150 more like it in the last minute)",
    ]


def test_faststreams_own_lines_are_json_lines_too() -> None:
    """FastStream's app logger had a handler of its own: "FastStream app starting..." in colour, not JSON, under
    LOG_FORMAT=json, from every service at every start and stop."""
    script = textwrap.dedent(
        """
        from newsflow_ingest.app import create_app

        create_app().logger.info("FastStream app starting...")  # the logger FastStream's app says it with
        """
    )
    environment = {**os.environ, "LOG_FORMAT": "json"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False, env=environment
    )
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stderr.splitlines() if "FastStream app" in line]
    assert json.loads(line)["event"] == "FastStream app starting..."


@pytest.mark.parametrize("lock_held", [False, True], ids=["log free", "log lock held"])
def test_the_deadline_exit_leaves_even_while_another_thread_holds_the_logs_lock(lock_held: bool) -> None:
    script = textwrap.dedent(
        f"""
        import logging, threading, time
        from newsflow_shared import service
        from newsflow_shared.logs import configure_logging

        configure_logging("classify")
        if {lock_held}:
            logging.getLogger().handlers[0].acquire()  # as the main thread does while it writes a long record
        threading.Thread(target=service._exit_now, args=(9,)).start()
        time.sleep(120)
        """
    )
    # Without the bounded last word the process would wait for the lock for good: the timeout would fail the test.
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0
    said = "still busy 9s after the stop signal: exiting now" in finished.stderr
    assert said is not lock_held


def _as_first_process() -> list[str]:
    """``unshare`` makes the child PID 1 of a namespace of its own, as in a container, where one can (root)."""
    trial = (
        subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True, check=False)
        if shutil.which("unshare")
        else None
    )
    return ["unshare", "--pid", "--fork"] if trial is not None and trial.returncode == 0 else []


def test_the_backstop_ends_a_process_stuck_in_c_even_as_a_containers_first_process() -> None:
    """The exit timer is Python and cannot run while a C call holds the GIL; the backstop behind it was SIGALRM's
    default action, which the kernel drops for PID 1: in a container such a process lived on until SIGKILL."""
    script = textwrap.dedent(
        """
        import os
        from newsflow_shared import service

        print("pid", os.getpid(), flush=True)
        service._arm_backstop(1)
        sum(range(10**12))  # one C call, GIL held, for hours
        """
    )
    started = time.monotonic()
    finished = subprocess.run(
        [*_as_first_process(), sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert time.monotonic() - started < 20
    assert finished.returncode == 1
    assert "Timeout (0:00:01)!" in finished.stderr
    assert "most recent call first" in finished.stderr  # where it was stuck, for whoever reads the log
