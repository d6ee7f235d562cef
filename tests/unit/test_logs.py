"""Logging: plain tracebacks in both formats, a stop in mid-batch said plainly, and a deadline exit that a held log
lock cannot delay."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
import structlog

from newsflow_shared import ServiceSettings
from newsflow_shared.broker import make_broker
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
