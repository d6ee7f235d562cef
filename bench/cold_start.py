"""Cold start: from ``newsflow run`` to the first article stored, and from a new classify replica starting to the
first article it classified being stored, with the default model.

    .venv/bin/python bench/cold_start.py [--runs 2] [--fresh-compile-cache]

(1) starts ``newsflow run`` in a fresh folder (its own local broker, SQLite and all four services), pushes one
article as soon as the command says it is running, and reads the article back from storage's API. (2) starts the
same with no classify replica, pushes one article (it waits on the clean topic), then starts one classify process
and times it to the article stored. Each milestone is printed in seconds from the start.

``--fresh-compile-cache`` points torch's compile cache at an empty folder, as on a new machine or image;
otherwise the cache under /tmp (what a second start on the same machine finds) is used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import table, wait_for_ok

from newsflow_cli.inputs import Input
from newsflow_cli.kafka_io import producer, push
from newsflow_cli.local_kafka import free_port
from newsflow_shared import ServiceSettings

ARTICLE = {
    "id": "cold-start-1",
    "title": "Parliament passes the budget after a night of talks",
    "text": "The parliament passed next year's budget on Thursday after talks that ran through the night. "
    "The finance minister said the plan cuts taxes for families and raises spending on schools and hospitals.",
}


async def _lines(stream: asyncio.StreamReader, seen: dict[str, float], started: float, log: list[str]) -> None:
    """Note when the command's own milestones appear in its output."""
    marks = {
        "Kafka is serving on": "Kafka serves",
        "Newsflow is running": "services started",
    }
    async for raw in stream:
        line = raw.decode(errors="replace")
        log.append(f"{time.perf_counter() - started:7.2f} {line}")
        for needle, name in marks.items():
            if needle in line and name not in seen:
                seen[name] = time.perf_counter() - started
        for service in ("ingest", "cleanup", "storage"):  # each consumes once its main topic is assigned
            if (
                f"{service} |" in line
                and "assigned to partitions" in line
                and "dlq" not in line.split("assigned")[1][:60]
            ):
                seen.setdefault(f"{service} up", time.perf_counter() - started)
        if "Kafka is serving on" in line:
            seen["bootstrap"] = line.split("Kafka is serving on", 1)[1].split()[0]  # type: ignore[assignment]


async def _push(bootstrap: str, article: dict[str, str]) -> None:
    """What ``newsflow push`` does, in this process (a new Python process would add its own start to the time)."""
    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap)
    async with producer(settings) as client:
        await push(client, settings, [Input(label="cold-start", value=json.dumps(article).encode())])


async def _stored(port: int, article_id: str, timeout: float = 600) -> None:
    if not await wait_for_ok(f"http://127.0.0.1:{port}/articles/{article_id}", timeout, interval=0.1):
        raise TimeoutError(f"{article_id} was not stored within {timeout:.0f} s")


async def one_run(replica: bool, env: dict[str, str], log_to: Path | None = None) -> dict[str, float]:
    """Milestones of one cold start in seconds; ``replica``: time a classify process started last."""
    home = Path(tempfile.mkdtemp(prefix="newsflow-cold-"))
    port = free_port()
    env = {**env, "NEWSFLOW_HOME": str(home), "STORAGE_API_PORT": str(port), "LOG_LEVEL": "INFO"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("DATABASE_URL", None)
    seen: dict[str, float] = {}
    log: list[str] = []
    started = time.perf_counter()
    command = [sys.executable, "-m", "newsflow_cli", "run"] + (["--classify", "0"] if replica else [])
    run = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True
    )
    assert run.stdout is not None
    readers = [asyncio.create_task(_lines(run.stdout, seen, started, log))]
    classify = None
    try:
        while "services started" not in seen:
            if run.returncode is not None:
                raise RuntimeError("newsflow run exited:\n" + "".join(log[-30:]))
            await asyncio.sleep(0.05)
        await _push(str(seen["bootstrap"]), ARTICLE)
        seen["article pushed"] = time.perf_counter() - started
        if replica:
            while not all(f"{name} up" in seen for name in ("ingest", "cleanup", "storage")):
                await asyncio.sleep(0.1)
            await asyncio.sleep(3)  # the article waits on the clean topic; the other services are idle
            classify_started = time.perf_counter()
            classify = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "newsflow_classify",
                env={
                    **env,
                    "KAFKA_BOOTSTRAP_SERVERS": str(seen["bootstrap"]),
                    "DATABASE_URL": f"sqlite+aiosqlite:///{home / 'newsflow.db'}",
                    "HEALTH_PORT": str(free_port()),
                },
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            assert classify.stdout is not None
            readers.append(asyncio.create_task(_lines(classify.stdout, seen, started, log)))
            await _stored(port, ARTICLE["id"])
            return {"classify replica start to stored": time.perf_counter() - classify_started}
        await _stored(port, ARTICLE["id"])
        seen["first article stored"] = time.perf_counter() - started
        return {k: v for k, v in seen.items() if isinstance(v, float) and not k.endswith(" up")}
    finally:
        for process in (classify, run):
            if process is not None and process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 60)
                except TimeoutError:
                    process.kill()
        for reader in readers:
            reader.cancel()
        if log_to is not None:
            await asyncio.to_thread(log_to.write_text, "".join(log))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--fresh-compile-cache", action="store_true")
    parser.add_argument("--logs", type=Path, help="write each run's output, with seconds from its start, here")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.fresh_compile_cache:
        env["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="newsflow-inductor-")
    results: list[dict[str, float]] = []
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    for run in range(args.runs):
        for replica in (False, True):
            log = args.logs / f"run{run + 1}-{'replica' if replica else 'run'}.log" if args.logs else None
            results.append(asyncio.run(one_run(replica, env, log)))
    names = list(dict.fromkeys(name for result in results for name in result))
    rows = [[name, " / ".join(f"{r[name]:.1f}" for r in results if name in r)] for name in names]
    table(
        f"Cold start, seconds from the start ({args.runs} runs; "
        f"{'an empty' if args.fresh_compile_cache else 'the existing'} compile cache)",
        ["milestone", "seconds"],
        rows,
    )


if __name__ == "__main__":
    main()
