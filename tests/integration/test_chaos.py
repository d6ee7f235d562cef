"""Chaos: 2,000 articles while every service is killed mid-batch, the broker is killed, PostgreSQL stops.

The promise it checks: nothing is lost, and nothing is stored twice (one row and one revision per
article), whatever dies and whenever.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsflow_cli.inputs import Input
from newsflow_cli.kafka_io import producer, push
from newsflow_cli.local_kafka import LocalKafka
from newsflow_shared.db import make_engine
from newsflow_shared.db.tables import article_revisions, articles

from .harness import Pipeline, isolated_env

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]
ROOT = Path(__file__).parents[2]
COUNT = 2_000
SUBJECTS = ["council budget", "rail strike", "cup final", "flood warning", "chip factory", "museum opening"]


def articles_to_push(start: int, stop: int) -> list[Input]:
    return [
        Input(
            label=f"chaos-{i}",
            value=json.dumps(
                {
                    "id": f"chaos-{i}",
                    "title": f"Report {i} on the {SUBJECTS[i % len(SUBJECTS)]}",
                    "text": (
                        f"Officials gave details of the {SUBJECTS[i % len(SUBJECTS)]} on day {i}. "
                        "Residents and business owners said they wanted clearer answers about what happens next.\n\n"
                        f"A spokesperson said a further statement would follow, the {i}th this year."
                    ),
                    "source": "Chaos Wire",
                }
            ).encode(),
        )
        for i in range(start, stop)
    ]


async def counts(url: str) -> tuple[int, int, int]:
    """Rows, revisions, and the highest revision; (-1, -1, -1) while the database is away."""
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(select(func.count()).select_from(articles))).scalar_one()
            revisions = (await connection.execute(select(func.count()).select_from(article_revisions))).scalar_one()
            highest = (await connection.execute(select(func.max(articles.c.revision)))).scalar_one() or 0
            return rows, revisions, highest
    except Exception:
        return -1, -1, -1
    finally:
        await engine.dispose()


@pytest.mark.timeout(2400)
async def test_nothing_lost_and_nothing_doubled_under_chaos(
    tmp_path: Path, own_postgres: tuple[dict[str, str], str]
) -> None:
    pg_env, url = own_postgres
    postgres = str(ROOT / "deploy/local/postgres.sh")
    kafka = await asyncio.to_thread(LocalKafka(tmp_path / "kafka").start)
    # Small batches, so that every kill lands between commits with more to come.
    pipeline = Pipeline(
        isolated_env(kafka.bootstrap_servers, url) | {"BATCH_MAX_RECORDS": "50", "CLASSIFY_COMPILE": "off"}
    )
    await pipeline.start()
    supervisor = pipeline.supervisor
    assert supervisor is not None
    loop = asyncio.get_running_loop()

    async def stored_at_least(n: int, timeout: float = 900) -> None:
        deadline = loop.time() + timeout
        while (await counts(url))[0] < n:
            assert loop.time() < deadline, f"fewer than {n} stored after {timeout:.0f}s: {await counts(url)}"
            for name, code in supervisor.exited().items():
                lines = "".join(supervisor.last_lines(name)[-20:])
                raise AssertionError(f"{name} exited with {code} while {n} were awaited; its last lines:\n{lines}")
            await asyncio.sleep(0.5)

    async def kill_and_restart(service: str) -> None:
        await supervisor.kill(service)
        await supervisor.start_one(service)

    try:
        async with producer(pipeline.settings) as client:
            await push(client, pipeline.settings, articles_to_push(0, COUNT // 2))
        await stored_at_least(150)
        await kill_and_restart("storage")
        await stored_at_least(300)
        await kill_and_restart("classify")
        await stored_at_least(450)
        await kill_and_restart("cleanup")

        # Ingest is quick: kill it while it reads the second half.
        async with producer(pipeline.settings) as client:
            await push(client, pipeline.settings, articles_to_push(COUNT // 2, COUNT))
        await kill_and_restart("ingest")

        await stored_at_least(700)
        kafka.process.kill()  # type: ignore[union-attr]
        await asyncio.to_thread(kafka.process.wait)  # type: ignore[union-attr]
        await asyncio.sleep(3)
        kafka = await asyncio.to_thread(
            LocalKafka(kafka.workdir, port=kafka.port, controller_port=kafka.controller_port).start
        )

        await stored_at_least(1_000)
        await asyncio.to_thread(subprocess.run, [postgres, "stop"], env=pg_env, check=True)
        await asyncio.sleep(20)
        await asyncio.to_thread(subprocess.run, [postgres, "start"], env=pg_env, check=True, capture_output=True)

        await stored_at_least(COUNT)
        await asyncio.sleep(5)  # anything stored twice would show up now
        rows, revisions, highest = await counts(url)
        assert rows == COUNT, f"{rows} rows for {COUNT} articles"
        assert revisions == COUNT, f"{revisions} revisions: an article was stored twice"
        assert highest == 1
        assert supervisor.exited() == {}, f"a service gave up: {supervisor.exited()}"
    finally:
        await pipeline.stop()
        await asyncio.to_thread(kafka.stop)
