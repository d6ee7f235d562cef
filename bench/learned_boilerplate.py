"""Cleanup's learned boilerplate as one source's articles add up: CPU per article of a batch's strip and learn.

    .venv/bin/python bench/learned_boilerplate.py [--articles 20000] [--batch 100] [--before REF]

Every article of the source carries five lines of its boilerplate (a promotion, a newsletter, a photo credit, a
copyright line, "Read more"), three short lines of its own (captions) and a paragraph of prose. Each batch is
stripped and learned from as the service does (the candidates, ``strip_many``, then ``learn_many`` on what is left,
in one transaction on SQLite). With ``--before REF`` REF's ``learned`` module, imported into this process under a
name of its own, is fed the same batches in turns, each going first as often as the other.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import module_at, table

from newsflow_cleanup.learned import LearnedBoilerplate
from newsflow_shared import CleanArticle
from newsflow_shared.db import make_engine, upgrade

SOURCE = "Daily Planet"
BOILERPLATE = [
    "Follow @DailyPlanet for live updates",
    "Sign up for our morning briefing",
    "Photo: Daily Planet",
    "Copyright 2026 Daily Planet",
    "Read more",
]


def article(number: int) -> CleanArticle:
    rng = random.Random(number)
    captions = [f"Caption {rng.randrange(10**9)}" for _ in range(3)]
    prose = " ".join(f"w{rng.randrange(10**6)}" for _ in range(150))
    return CleanArticle(
        id=f"a{number}",
        title="Title",
        text="\n\n".join([BOILERPLATE[0], prose, *captions, *BOILERPLATE[1:]]),
        content_hash=str(number),
        source=SOURCE,
        language="en",
        language_confidence=1.0,
    )


def learner_class_at(ref: str) -> type[LearnedBoilerplate]:
    """``LearnedBoilerplate`` of the git revision ``ref``."""
    module = module_at(ref, "services/cleanup", "newsflow_cleanup/learned.py")
    return module.LearnedBoilerplate  # type: ignore[no-any-return]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--checkpoints", default="1000,5000,10000,20000,50000")
    parser.add_argument("--before", metavar="REF", help="Also REF's learned boilerplate, in turns.")
    args = parser.parse_args()
    checkpoints = sorted(int(value) for value in args.checkpoints.split(",") if int(value) <= args.articles)
    classes = {"now": LearnedBoilerplate}
    if args.before:
        classes[args.before] = learner_class_at(args.before)
    variants = tuple(classes)
    folder = Path(tempfile.mkdtemp(prefix="newsflow-bench-learned-"))
    engines, learners = {}, {}
    for number, name in enumerate(variants):
        url = f"sqlite+aiosqlite:///{folder}/learned-{number}.db"
        await upgrade(url)
        engines[name] = make_engine(url)
        learners[name] = classes[name](engines[name])
    spent: dict[str, list[float]] = {name: [] for name in variants}
    removed: dict[str, int] = {}
    rows: list[list[str]] = []
    for start in range(0, args.articles, args.batch):
        batch = [article(number) for number in range(start, start + args.batch)]
        turn = start // args.batch % len(variants)
        for name in variants[turn:] + variants[:turn]:
            learner = learners[name]
            began = time.process_time()
            lines = [learner.candidates(a) for a in batch]
            async with engines[name].begin() as connection:
                stripped = await learner.strip_many(connection, batch, lines)
                await learner.learn_many(connection, list(zip(stripped, lines, strict=True)))
            spent[name].append((time.process_time() - began) * 1000 / len(batch))
            removed[name] = len(stripped[-1].removed)
        done = start + args.batch
        if checkpoints and done >= checkpoints[0]:
            checkpoints.pop(0)
            last = max(1, 1000 // args.batch)
            rows.append(
                [f"{done:,}"]
                + [f"{sum(spent[name][-last:]) / len(spent[name][-last:]):.3f}" for name in variants]
                + [str(removed[name]) for name in variants]
            )
            print(f"  {done:,} articles: {', '.join(rows[-1][1:])}", file=sys.stderr)
    table(
        f"Learned boilerplate of one source on SQLite, batches of {args.batch}: CPU ms per article over the last"
        " 1,000 (this process with SQLite), and the lines removed from the last article (its five of boilerplate)",
        ["articles", *(f"ms {name}" for name in variants), *(f"removed {name}" for name in variants)],
        rows,
    )
    for engine in engines.values():
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
