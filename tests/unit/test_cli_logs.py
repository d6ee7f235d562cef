"""A command's share of the Kafka client's log: each kind of error once a minute, as the services have it."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest

from newsflow_cli.main import quiet_client_logs
from newsflow_shared.logs import QuietRepeats


@pytest.fixture
def handlers_as_they_were() -> Iterator[None]:
    # Without the handler an earlier test's configure_logging left (a service's, with its own stream).
    root, client = logging.getLogger(), logging.getLogger("aiokafka")
    handlers, levels = root.handlers[:], (root.level, client.level)
    root.handlers[:] = [h for h in handlers if not any(isinstance(f, QuietRepeats) for f in h.filters)]
    root.setLevel(logging.WARNING)  # as in a command's process
    client.setLevel(logging.NOTSET)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(levels[0])
        client.setLevel(levels[1])


@pytest.mark.usefixtures("handlers_as_they_were")
def test_a_broker_away_is_said_once_not_a_line_per_attempt() -> None:
    # `tail` with the broker away: 45 lines a second of these, 2,439 in a minute.
    said = io.StringIO()
    quiet_client_logs(said)
    client = logging.getLogger("aiokafka.consumer.fetcher")
    for _ in range(100):
        client.error("Unable connect to node with id %s: %s", 1, "Connect call failed")
    logging.getLogger("newsflow_cli").warning("the command's own warning")
    assert said.getvalue().splitlines() == [
        "Unable connect to node with id 1: Connect call failed",
        "the command's own warning",
    ]


@pytest.mark.usefixtures("handlers_as_they_were")
def test_lines_go_to_stderr_as_it_is_when_they_are_written(monkeypatch: pytest.MonkeyPatch) -> None:
    # A progress bar stands in for sys.stderr while it draws, and prints a line above itself: a handler holding the
    # stderr of the start wrote into the bar.
    quiet_client_logs()
    drawing = io.StringIO()
    monkeypatch.setattr(sys, "stderr", drawing)
    logging.getLogger("aiokafka.conn").warning("Unable to request metadata")
    assert drawing.getvalue() == "Unable to request metadata\n"
