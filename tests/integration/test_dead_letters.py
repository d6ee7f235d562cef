"""Dead letters can be listed and re-driven once their cause is fixed; a refused article pushed again is not skipped."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from newsflow_cli.inputs import Input
from newsflow_cli.kafka_io import OutcomeWatcher
from newsflow_cli.local_kafka import free_port
from newsflow_shared.db import make_engine
from newsflow_storage.dead_letters import DeadLetterStore

from .harness import Pipeline, first_with_id, isolated_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SHORT = {"id": "too-short", "title": "Brief", "text": "Markets rose today on hopes of a rate cut."}


@pytest.fixture
async def strict_cleanup(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Pipeline]:
    """A pipeline whose cleanup refuses articles under 200 characters: a cause an operator can fix."""
    running = Pipeline(
        isolated_env(kafka_bootstrap, f"sqlite+aiosqlite:///{tmp_path}/dlq.db")
        | {"CLEANUP_MIN_CHARS": "200", "CLASSIFY_COMPILE": "off"}
    )
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def newsflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsflow_cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_a_refused_article_is_not_skipped_when_pushed_again(strict_cleanup: Pipeline) -> None:
    first = await strict_cleanup.run([Input("short", json.dumps(SHORT).encode())])
    assert [kind for kind, _ in first.values()] == ["dead-letter"]
    await asyncio.sleep(3)  # ingest reads the dead letter and forgets the article
    again = await strict_cleanup.run([Input("short again", json.dumps(SHORT).encode())])
    [(kind, record)] = again.values()
    assert kind == "dead-letter", "pushed again, the article must be processed again, not skipped as a re-send"
    assert record["stage"] == "cleanup"


async def test_dead_letters_are_listed_and_redriven_after_the_fix(strict_cleanup: Pipeline) -> None:
    results = await strict_cleanup.run([Input("short", json.dumps(SHORT).encode())])
    assert [kind for kind, _ in results.values()] == ["dead-letter"]
    env = strict_cleanup.env

    listed = await asyncio.to_thread(newsflow, env, "dlq", "list", "--json", "--stage", "cleanup")
    assert listed.returncode == 0, listed.stderr
    [letter] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert letter["article_id"] == "too-short"
    assert "no article text is left" in letter["reason"]
    shown = await asyncio.to_thread(newsflow, env, "dlq", "show", letter["where"])
    assert json.loads(shown.stdout)["original_text"].startswith("{")

    # The fix: cleanup accepts short articles again.
    supervisor = strict_cleanup.supervisor
    assert supervisor is not None
    await supervisor.kill("cleanup")
    strict_cleanup.env["CLEANUP_MIN_CHARS"] = "1"
    supervisor.env["CLEANUP_MIN_CHARS"] = "1"
    await supervisor.start_one("cleanup")

    refused = await asyncio.to_thread(newsflow, env, "dlq", "redrive")
    assert refused.returncode == 2  # no filter and no --all: nothing is sent by accident
    # Storage's copy (the web page's) has the letter waiting: the command marks it, as the page's button does.
    page_copy = DeadLetterStore(make_engine(env["DATABASE_URL"]))
    try:
        for _ in range(60):
            if [kind.waiting for kind in await page_copy.kinds()] == [1]:
                break
            await asyncio.sleep(0.5)
        watcher = OutcomeWatcher(strict_cleanup.settings)
        await watcher.start()
        try:
            redriven = await asyncio.to_thread(newsflow, env, "dlq", "redrive", "--id", "too-short")
            assert redriven.returncode == 0, redriven.stderr
            assert "re-drove 1 dead letters" in redriven.stderr
            kind, record = await asyncio.wait_for(first_with_id(watcher, {"too-short"}), 180)
        finally:
            await watcher.stop()
        assert kind == "stored"
        assert record["id"] == "too-short"
        [counted] = await page_copy.kinds()
        assert (counted.waiting, counted.redriven) == (0, 1)
        # And what the page (or this command) re-drove is not sent again.
        again = await asyncio.to_thread(newsflow, env, "dlq", "redrive", "--id", "too-short")
        said = " ".join(again.stderr.split())  # as rich wrapped it
        assert "not re-driven 1 dead letters the web page re-drove or set aside" in said
        assert "re-drove 0 dead letters" in said
    finally:
        await page_copy.engine.dispose()


async def test_re_drives_without_storages_copy_send_each_refused_record_once_a_run(strict_cleanup: Pipeline) -> None:
    """From the host with Compose (PostgreSQL not published) and the cause not fixed yet: each run re-sent the letters
    of every run before it as well, 2 -> 4 -> 8 -> 16 letters. Now a run sends only the newest letter of each record."""
    inputs = [Input(f"short {i}", json.dumps(SHORT | {"id": f"short-{i}"}).encode()) for i in range(2)]
    results = await strict_cleanup.run(inputs)
    assert [kind for kind, _ in results.values()] == ["dead-letter"] * 2
    env = {k: v for k, v in strict_cleanup.env.items() if k != "DATABASE_URL"}
    listed: list[int] = []
    for run in range(3):
        redriven = await asyncio.to_thread(newsflow, env, "dlq", "redrive", "--stage", "cleanup")
        assert redriven.returncode == 0, redriven.stderr
        said = " ".join(redriven.stderr.split())
        assert "re-drove 2 dead letters" in said, said
        if run:
            assert f"not re-driven {2 * run} dead letters re-driven before" in said, said
        for _ in range(120):  # both refused again by cleanup
            letters = await asyncio.to_thread(newsflow, env, "dlq", "list", "--json", "--stage", "cleanup")
            listed.append(len(letters.stdout.splitlines()))
            if listed[-1] == 2 * (run + 2):
                break
            await asyncio.sleep(0.5)
        assert listed[-1] == 2 * (run + 2), listed


def test_a_broker_that_does_not_answer_is_one_clear_line(tmp_path: Path) -> None:
    source = tmp_path / "a.jsonl"
    source.write_text(json.dumps(SHORT) + "\n")
    result = newsflow({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, "push", str(source))
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert "no Kafka answers at 127.0.0.1:1" in result.stderr


def test_a_port_that_does_not_speak_kafka_asks_for_the_security_protocol(tmp_path: Path) -> None:
    """A broker that wants TLS, spoken to in plain text, takes the connection and then says nothing a plain client
    understands: that is not "no Kafka", and the line says what to set."""
    source = tmp_path / "a.jsonl"
    source.write_text(json.dumps(SHORT) + "\n")
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nothing ever answers
        port = silent.getsockname()[1]
        result = newsflow({"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}, "push", str(source))
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert f"something listens at 127.0.0.1:{port}" in result.stderr
    assert "did not answer as Kafka over PLAINTEXT" in result.stderr
    assert "set KAFKA_SECURITY_PROTOCOL" in result.stderr


def test_commands_find_the_broker_newsflow_run_started(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    started = subprocess.run(
        # A free port, not the default 9092: a broker the developer runs there would fail this test.
        [sys.executable, "-m", "newsflow_cli", "kafka", "start", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    try:
        topics = subprocess.run(
            [sys.executable, "-m", "newsflow_cli", "topics"], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert topics.returncode == 0, topics.stderr
        assert "created" in topics.stderr or "all topics exist" in topics.stderr
    finally:
        subprocess.run([sys.executable, "-m", "newsflow_cli", "kafka", "stop"], cwd=tmp_path, env=env, check=False)


def test_kafka_start_says_which_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        started = subprocess.run(
            [sys.executable, "-m", "newsflow_cli", "kafka", "start", "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert started.returncode == 3
    message = " ".join(started.stderr.split())  # rich wraps the line
    assert f"127.0.0.1:{port} is already in use" in message, started.stderr
    assert "newsflow kafka stop" in message


async def test_stage_lag_counts_what_a_stage_has_not_committed(kafka_bootstrap: str, tmp_path: Path) -> None:
    from newsflow_cli.kafka_io import producer, push
    from newsflow_shared import ServiceSettings, ensure_topics
    from newsflow_shared.lag import stage_lag

    env = isolated_env(kafka_bootstrap, f"sqlite+aiosqlite:///{tmp_path}/lag.db")
    settings = ServiceSettings(**{k.lower(): v for k, v in env.items()})
    await ensure_topics(settings)
    async with producer(settings) as client:
        await push(client, settings, [Input(str(i), json.dumps(SHORT).encode()) for i in range(7)])
    # No service runs: ingest's group never committed, so all seven wait there.
    assert await stage_lag(settings) == {"ingest": 7, "cleanup": 0, "classify": 0, "storage": 0}
    # A topic this client cannot see (missing here; storage's user may not describe the others) is unknown, not 0.
    unseen = settings.model_copy(update={"topic_clean": f"{settings.topic_clean}-never-made"})
    assert await stage_lag(unseen) == {"ingest": 7, "cleanup": 0, "storage": 0}
