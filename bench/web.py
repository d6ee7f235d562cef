"""Web page benchmark: server time of each page of storage's web page at 100,000 stored articles (SQLite).

    .venv/bin/python bench/web.py [--corpus 100000] [--runs 30]

Fills a fresh SQLite database through the repository (the seed article cleaned by cleanup itself,
then synthetic ~2 KB articles with two IPTC topics each, one in ten with its arrived text), keeps
1,000 dead letters, then times each page in process through the ASGI app: the time from request to
the last byte of the response, which is the server's time without any network. Kafka is not
reachable (the lag shows "unknown"), so the pipeline page costs what it costs when Kafka is down.
The target of issue #14 is under 200 ms for every page. Beside the wall times it prints the process's
CPU time per page (all threads): on a shared machine the wall time also holds the wait for a core.

Before and after in one run, on a shared machine:

    .venv/bin/python bench/web.py --database after.db --before REF --before-database before.db [--rounds 3]

runs this benchmark in turns, ``--rounds`` times each: with the storage service and shared package of the
git revision REF (exported with ``git archive``) on ``before.db``, then with this checkout's on ``after.db``,
so that both meet the same load, and prints one table of both. The two databases hold the same articles,
each at its code's schema: copy a filled database before the newer code first opens (and migrates) it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from faststream.kafka import TestKafkaBroker

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))
from _common import LANGUAGES, SOURCES, WORDS, export_revision, table, text_of

from newsflow_shared import EnrichedArticle, Lineage, TopicScore
from newsflow_shared.taxonomy import load_taxonomy
from newsflow_storage.app import create_app
from newsflow_storage.settings import StorageSettings
from tests import webdata

TARGET_MS = 200


def synthetic(index: int, rng: random.Random, second_level: list[tuple[str, str, str]]) -> EnrichedArticle:
    code, label, parent = rng.choice(second_level)
    taxonomy = load_taxonomy()
    text = text_of(rng, 2000)
    return EnrichedArticle(
        id=f"bench-{index}",
        title=" ".join(rng.choice(WORDS) for _ in range(7)).capitalize(),
        text=text,
        arrived_text=f"Advertisement\n\n{text}\n\nRead more: elsewhere" if index % 10 == 0 else None,
        language=rng.choice(LANGUAGES),
        language_confidence=0.99,
        source=rng.choice(SOURCES),
        published_at=datetime(2025, 6, 1, tzinfo=UTC) + timedelta(minutes=5 * index),
        content_hash=uuid.uuid4().hex,
        duplicate_of=f"bench-{index - 1}" if index % 50 == 1 else None,
        duplicate_score=0.8 if index % 50 == 1 else None,
        topics=[
            TopicScore(code=parent, label=taxonomy.topics[parent].name, score=0.7, level=1),
            TopicScore(code=code, label=label, score=0.4, level=2),
        ],
        lineage=[
            Lineage(stage="ingest", version="bench"),
            Lineage(stage="cleanup", version="bench", model="py3langid+lingua"),
            Lineage(stage="classify", version="bench", model="bench", details={"taxonomy": "IPTC"}),
        ],
    )


async def fill(app: object, corpus: int) -> float:
    repository = app.state.repository  # type: ignore[attr-defined]
    rng = random.Random(11)
    taxonomy = load_taxonomy()
    second_level = [(t.code, t.name, t.parent) for t in taxonomy.topics.values() if t.level == 2 and t.parent]
    started = time.perf_counter()
    await repository.store([webdata.seed_article()])
    for start in range(1, corpus, 1000):
        await repository.store([synthetic(i, rng, second_level) for i in range(start, min(start + 1000, corpus))])
    await app.state.dead_letters.keep(  # type: ignore[attr-defined]
        [webdata.dead_letter(offset, stage=rng.choice(["ingest", "cleanup"])) for offset in range(1000)]
    )
    return corpus / (time.perf_counter() - started)


def pages(rng: random.Random, cursor: str) -> dict[str, object]:
    return {
        "search page, no filter": lambda: "/",
        "q, a common word": lambda: "/?q=" + rng.choice(WORDS[:10]),
        "q, any word": lambda: "/?q=" + rng.choice(WORDS),
        "q, two words, best match first": lambda: f"/?q={rng.choice(WORDS)}+{rng.choice(WORDS)}&sort=relevance",
        "q + topic facet": lambda: f"/?q={rng.choice(WORDS)}&topic=medtop:{rng.randint(1, 17):02d}000000",
        "language + source": lambda: f"/?language={rng.choice(LANGUAGES)}&source={rng.choice(SOURCES)}",
        "one month": lambda: "/?from=2025-09-01&to=2025-09-30",
        "next page (cursor)": lambda: "/?cursor=" + cursor,
        "seed article (diff)": lambda: "/article/" + webdata.SEED_ID,
        "any article": lambda: f"/article/bench-{rng.randrange(1, 100_000)}",
        "pipeline": lambda: "/pipeline",
    }


def p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20, method="inclusive")[-1]


async def measure(path: str, corpus: int, runs: int) -> dict[str, dict[str, list[float]]]:
    """Each page's wall and CPU times in ms, ``runs`` of each after three warm-up calls."""
    url = f"sqlite+aiosqlite:///{path}"
    app = create_app(StorageSettings(database_url=url, kafka_bootstrap_servers="127.0.0.1:9", log_level="WARNING"))
    samples: dict[str, dict[str, list[float]]] = {}
    async with TestKafkaBroker(app.state.broker), app.router.lifespan_context(app):
        if (await app.state.repository.stats())["total"] >= corpus:
            print(f"reusing the {corpus:,} articles in {path}", file=sys.stderr)
        else:
            rate = await fill(app, corpus)
            print(f"filled {corpus:,} articles at {rate:,.0f}/s", file=sys.stderr)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            first = (await client.get("/")).text
            cursor = first.split("cursor=", 1)[1].split('"', 1)[0]
            rng = random.Random(5)
            for name, make in pages(rng, cursor).items():
                times, cpu = [], []
                for run in range(runs + 3):
                    page = make()  # type: ignore[operator]
                    begin, begin_cpu = time.perf_counter(), time.process_time()
                    response = await client.get(page)
                    elapsed = (time.perf_counter() - begin) * 1000
                    used = (time.process_time() - begin_cpu) * 1000
                    if response.status_code != 200:
                        raise SystemExit(f"{page}: {response.status_code} {response.text[:200]}")
                    if run >= 3:  # the first calls warm caches
                        times.append(elapsed)
                        cpu.append(used)
                samples[name] = {"wall": times, "cpu": cpu}
    return samples


def compare(args: argparse.Namespace) -> None:
    """Before (REF on --before-database) and after (this checkout on --database) in turns; one table of both."""
    folder = Path(tempfile.mkdtemp(prefix="newsflow-bench-web-turns-"))
    before_path = export_revision(args.before, ["services/storage", "shared"])
    sides = {"before": (args.before_database, {"PYTHONPATH": before_path}), "after": (args.database, {})}
    merged: dict[str, dict[str, dict[str, list[float]]]] = {"before": {}, "after": {}}
    loads = []
    for round_ in range(args.rounds):
        for side, (database, env) in sides.items():
            out = folder / f"{side}-{round_}.json"
            command = [sys.executable, __file__, "--corpus", str(args.corpus), "--runs", str(args.runs)]
            command += ["--database", database, "--json", str(out)]
            subprocess.run(command, env={**os.environ, **env}, check=True)
            loads.append(os.getloadavg()[0])
            for name, kinds in json.loads(out.read_text()).items():
                for kind, values in kinds.items():
                    merged[side].setdefault(name, {}).setdefault(kind, []).extend(values)
    rows = []
    for name, after in merged["after"].items():
        before = merged["before"][name]
        rows.append(
            [name, f"{statistics.median(before['wall']):.1f}", f"{statistics.median(after['wall']):.1f}",
             f"{p95(before['wall']):.1f}", f"{p95(after['wall']):.1f}",
             f"{statistics.median(before['cpu']):.1f}", f"{statistics.median(after['cpu']):.1f}",
             "yes" if p95(after["wall"]) < TARGET_MS else "NO"]
        )  # fmt: skip
    print(f"load average after each turn: {', '.join(f'{x:.1f}' for x in loads)} on {os.cpu_count()} cores")
    table(
        f"Web pages at {args.corpus:,} articles on SQLite: server time in ms, before ({args.before}) and after, "
        f"{args.rounds} turns of {args.runs} runs each",
        ["page", "median before", "median after", "p95 before", "p95 after", "CPU before", "CPU after",
         f"p95 < {TARGET_MS} ms"],
        rows,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--database", help="A SQLite file to fill (kept), or filled by an earlier run: then reused.")
    parser.add_argument("--before", metavar="REF", help="Also time the git revision REF, in turns with this checkout.")
    parser.add_argument("--before-database", help="With --before: REF's database (the same articles, its schema).")
    parser.add_argument("--rounds", type=int, default=3, help="With --before: turns of each.")
    parser.add_argument("--json", help=argparse.SUPPRESS)  # a turn of --before: the raw times, for its driver
    args = parser.parse_args()
    if args.before:
        if not (args.database and args.before_database):
            parser.error("--before needs --database and --before-database")
        compare(args)
        return
    path = args.database or f"{tempfile.mkdtemp(prefix='newsflow-bench-web-')}/web.db"
    samples = asyncio.run(measure(path, args.corpus, args.runs))
    if args.json:
        Path(args.json).write_text(json.dumps(samples))
        return
    rows = [
        [name, f"{statistics.median(s['wall']):.1f}", f"{p95(s['wall']):.1f}", f"{max(s['wall']):.1f}",
         f"{statistics.median(s['cpu']):.1f}", "yes" if p95(s["wall"]) < TARGET_MS else "NO"]
        for name, s in samples.items()
    ]  # fmt: skip
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    table(
        f"Web pages at {args.corpus:,} articles on SQLite: server time in ms ({args.runs} runs each)",
        ["page", "median", "p95", "max", "CPU median", f"p95 < {TARGET_MS} ms"],
        rows,
    )


if __name__ == "__main__":
    main()
