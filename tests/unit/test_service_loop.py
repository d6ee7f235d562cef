"""The service's uvicorn loop: woken by the stop signal itself, not by looking for it ten times a second."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest
import uvicorn

from newsflow_shared import service


async def test_a_stop_signal_ends_the_idle_loop_without_waiting_for_its_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    # A tick far longer than the test may take: only the signal's own wake-up can end the loop in time.
    monkeypatch.setattr(service, "_TICK_SECONDS", 60.0)
    server = service._Server(uvicorn.Config(app=None), deadline=30)
    server._armed = True  # no exit timer or alarm: this test process must not be ended by them
    ticks: list[int] = []
    on_tick = server.on_tick

    async def counted(counter: int) -> bool:
        ticks.append(counter)
        return await on_tick(counter)

    monkeypatch.setattr(server, "on_tick", counted)
    previous = signal.signal(signal.SIGUSR1, server.handle_exit)  # as uvicorn's capture_signals installs it
    try:
        # From another thread, so that the signal comes while the loop waits in epoll, as a real SIGTERM does.
        sender = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1))
        started = time.monotonic()
        sender.start()
        await asyncio.wait_for(server.main_loop(), 30)
        took = time.monotonic() - started
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert server.should_exit
    assert ticks == [0, 0], "one tick at the start, one when the signal woke the loop"
    assert took < 10, f"the loop ended {took:.1f} s after the start, not at the signal"
