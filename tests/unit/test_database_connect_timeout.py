"""A PostgreSQL that accepts a connection and never answers: asyncpg waited its own 60 s, silent, for each try."""

from __future__ import annotations

import socket
import time

import pytest

from newsflow_shared.db import engine as engine_module
from newsflow_shared.db import make_engine, ping_database
from newsflow_shared.errors import first_line


async def test_a_silent_server_is_given_up_on_after_the_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "CONNECT_TIMEOUT_S", 1)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel accepts; nobody ever answers
        port = silent.getsockname()[1]
        engine = make_engine(f"postgresql://newsflow:newsflow@127.0.0.1:{port}/newsflow")
        started = time.monotonic()
        try:
            with pytest.raises(TimeoutError) as raised:
                await ping_database(engine)
        finally:
            await engine.dispose()
    assert time.monotonic() - started < 10
    assert first_line(raised.value, 100) == "no answer in time"
