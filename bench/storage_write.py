"""Storage's writes alone (no Kafka): ms per article for new articles, redeliveries and new enrichments.

    .venv/bin/python bench/storage_write.py [--batches 10] [--batch 500] [--before REF [--rounds 3]] [--no-postgres]

``ArticleRepository.store`` as the service calls it, a batch at a time, on SQLite and on PostgreSQL (from
``DATABASE_URL_POSTGRES`` or ``deploy/local/postgres.sh``), each side on a fresh database. ``--before REF`` loads the
git revision REF's ``repository.py`` into this process and times it in turns with this checkout's, fed the same
articles: how a change to the upsert (session 32: the database counts the revision) is measured against what it
replaced. Wall time, as the service waits for it: on PostgreSQL most of it is the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).parent))
from _common import export_revision, table
from storage import postgres_database, synthetic

from newsflow_shared import EnrichedArticle, Lineage
from newsflow_shared.db import make_engine, upgrade
from newsflow_storage import repository as this_checkout

PHASES = ("new articles", "redelivered", "new enrichment")


def repository_at(ref: str) -> ModuleType:
    """REF's ``repository.py``, imported inside this checkout's package: its relative imports (the row helpers, not
    changed by what is measured) are this checkout's."""
    source = Path(export_revision(ref, ["services/storage"])) / "newsflow_storage" / "repository.py"
    name = "newsflow_storage._repository_before"
    spec = importlib.util.spec_from_file_location(name, source)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def one_side(repository_module: ModuleType, url: str, batches: list[list[EnrichedArticle]]) -> dict[str, float]:
    """ms per article of each phase, on a fresh database at ``url``."""
    await upgrade(url)
    engine = make_engine(url)
    repository = repository_module.ArticleRepository(engine)
    enriched_again = [
        [a.model_copy(update={"lineage": [Lineage(stage="classify", version="bench", model="again")]}) for a in b]
        for b in batches
    ]
    results = {}
    try:
        for phase, work in zip(PHASES, (batches, batches, enriched_again), strict=True):
            started = time.perf_counter()
            for batch in work:
                await repository.store(batch)
            results[phase] = (time.perf_counter() - started) * 1000 / sum(len(b) for b in work)
    finally:
        await engine.dispose()
    return results


async def measure(args: argparse.Namespace) -> None:
    sides: dict[str, ModuleType] = {"this checkout": this_checkout}
    if args.before:
        sides = {args.before: repository_at(args.before), **sides}
    databases = ["SQLite"] + ([] if args.no_postgres else ["PostgreSQL"])
    folder = Path(tempfile.mkdtemp(prefix="newsflow-bench-storage-write-"))
    turns: dict[tuple[str, str], list[dict[str, float]]] = {}
    for round_ in range(args.rounds):
        rng = random.Random(round_)
        batches = [
            [synthetic(i * args.batch + j, rng, f"r{round_}") for j in range(args.batch)] for i in range(args.batches)
        ]
        for database in databases:
            for side, module in sides.items():  # in turns, the same articles
                url = (
                    f"sqlite+aiosqlite:///{folder}/{round_}-{side}.db".replace(" ", "-")
                    if database == "SQLite"
                    else await postgres_database()
                )
                turns.setdefault((database, side), []).append(await one_side(module, url, batches))
    rows = []
    for database in databases:
        for phase in PHASES:
            medians = [statistics.median(t[phase] for t in turns[(database, side)]) for side in sides]
            row: list[object] = [database, phase, *(f"{m:.3f}" for m in medians)]
            if len(medians) == 2:
                row.append(f"{medians[1] / medians[0]:.2f}")
            rows.append(row)
    table(
        f"Storage writes, ms per article (batches of {args.batch}, {args.batches} a phase; median of "
        f"{args.rounds} turn(s))",
        ["database", "phase", *sides, *(["after / before"] if len(sides) == 2 else [])],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch", type=int, default=500, help="Articles a batch (the service's BATCH_MAX_RECORDS).")
    parser.add_argument("--before", metavar="REF", help="Also time the git revision REF's repository, in turns.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
