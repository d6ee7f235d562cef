"""Stopping: nothing outlives ``newsflow process``, and every service exits within seconds of SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from newsflow_cli.inputs import Input
from newsflow_cli.kafka_io import producer, push
from newsflow_cli.local_kafka import free_port
from newsflow_shared import ServiceSettings, ensure_topics
from newsflow_shared.db import upgrade

from ..hostile.records import good
from ..hostile.strategies import GOOD
from .harness import isolated_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def children_of(pid: int) -> set[int]:
    """Every live descendant of ``pid``, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            ppid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:"))
            parents[int(entry.name)] = ppid
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.add(pid)
    return living


def wait_until(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_nothing_outlives_process_however_it_ends(tmp_path: Path, how: signal.Signals) -> None:
    source = tmp_path / "many.jsonl"
    # Far more than the stack answers in the 10 s before the signal (300 were all answered once cold start got quick).
    source.write_text("\n".join(json.dumps(good(f"stop-{i}")) for i in range(5000)) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"}}
    env["CLASSIFY_COMPILE"] = "off"
    parent = subprocess.Popen(
        [sys.executable, "-m", "newsflow_cli", "process", "--json", str(source)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        # Its own broker and four services, all busy with the articles.
        assert wait_until(lambda: len(children_of(parent.pid)) >= 5, 120), "the stack did not start"
        time.sleep(10)
        started = children_of(parent.pid)
        parent.send_signal(how)
        assert wait_until(lambda: not alive(started), 30), f"still running after {how.name}: {alive(started)}"
        if how != signal.SIGKILL:
            assert parent.wait(30) != 0  # stopped before every input was answered
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in alive(children_of(parent.pid)):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("service", ["ingest", "cleanup", "classify", "storage"])
async def test_a_busy_service_exits_within_ten_seconds_of_sigterm(
    kafka_bootstrap: str, tmp_path: Path, service: str
) -> None:
    env = isolated_env(kafka_bootstrap, f"sqlite+aiosqlite:///{tmp_path}/stop.db") | {
        "CLASSIFY_COMPILE": "off",
        "HEALTH_PORT": str(free_port()),
        "STORAGE_API_PORT": str(free_port()),
        "BATCH_MAX_RECORDS": "500",
    }
    settings = ServiceSettings(**{k.lower(): v for k, v in env.items()})
    await ensure_topics(settings)
    await upgrade(settings.database_url)
    topic = {"ingest": "raw", "cleanup": "ingested", "classify": "clean", "storage": "enriched"}[service]
    message = GOOD[topic]()
    inputs = [Input(label=str(i), value=json.dumps({**message, "id": f"busy-{i}"}).encode()) for i in range(2_000)]
    async with producer(settings) as client:
        await push(client, settings.model_copy(update={"topic_raw": env[f"TOPIC_{topic.upper()}"]}), inputs)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", f"newsflow_{service}", env={**os.environ, **env}
    )
    try:
        await asyncio.sleep(25)  # started, models loaded, in the middle of the 2,000 articles
        assert process.returncode is None, f"{service} exited early with {process.returncode}"
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        await asyncio.wait_for(process.wait(), 20)
        # SHUTDOWN_TIMEOUT_S is 9: the deadline holds with a second to spare.
        assert time.monotonic() - started <= 10, f"{service} took {time.monotonic() - started:.1f}s to stop"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
