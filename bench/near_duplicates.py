"""Cleanup's near-duplicate index as it grows: CPU per article of a batch's lookup and insert at each index size.

    .venv/bin/python bench/near_duplicates.py [--articles 20000] [--batch 100] [--window 5000]

What the index costs at 1,000 articles is not what it costs after a month of a feed. Three indexes on SQLite are
fed the same batches in turns, so the machine's drift falls on all alike: one keeps every article; one keeps every
article in the rowid table the buckets had before migration 0005; one forgets all but the newest ``--window`` in
each batch's transaction (as ``CLEANUP_DUPLICATE_DAYS`` does by age), the cost of forgetting counted.

The articles are our written English ones with their content words renamed for each copy: a different story in the
same language. Function words stay ("of the", "in a"), and they are what fills the LSH buckets that every article
shares; a real feed, whose stories also share subjects, fills them at least as much. Each tenth article is a
syndicated copy (the first two thirds of an earlier one), so the index also answers what it is for: the share of
those found is printed beside the cost.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import table, written_articles
from sqlalchemy import text as sql

from newsflow_cleanup.near_duplicates import DuplicateIndex
from newsflow_shared.db import make_engine, upgrade

_WORD = re.compile(r"\w+")
LSH_COLUMNS = "bucket VARCHAR(40) NOT NULL, article_id VARCHAR(200) NOT NULL, PRIMARY KEY (bucket, article_id)"


def stories(count: int) -> list[tuple[str, str, str | None]]:
    """``(id, text, id of the original it copies or None)``: renamed written articles, each tenth a copy."""
    texts = written_articles()
    frequency = Counter(word.lower() for text in texts for word in _WORD.findall(text))
    function_words = {word for word, _ in frequency.most_common(150)}
    made: list[tuple[str, str, str | None]] = []
    for index in range(count):
        if index % 10 == 9 and index >= 100:
            original_id, original, _ = made[index - 55]  # never a copy itself
            paragraphs = original.split("\n\n")
            made.append((f"a{index}", "\n\n".join(paragraphs[: max(1, len(paragraphs) * 2 // 3)]), original_id))
            continue
        copy = index // len(texts)

        def rename(match: re.Match[str], copy: int = copy) -> str:
            word = match.group(0)
            return word if word.lower() in function_words or copy == 0 else f"{word}{copy}"

        made.append((f"a{index}", _WORD.sub(rename, texts[index % len(texts)]), None))
    return made


def size_mb(path: Path) -> float:
    """The database with its write-ahead log."""
    return sum(part.stat().st_size for part in path.parent.glob(f"{path.name}*") if part.is_file()) / 2**20


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument(
        "--window", type=int, default=5_000, help="The forgetting index keeps this many of the newest articles"
    )
    parser.add_argument("--checkpoints", default="1000,5000,10000,20000,50000,100000")
    args = parser.parse_args()
    checkpoints = sorted(int(value) for value in args.checkpoints.split(",") if int(value) <= args.articles)
    items = stories(args.articles)
    folder = Path(tempfile.mkdtemp(prefix="newsflow-bench-dups-"))
    # Every article kept; every article kept in a rowid table; only the newest --window kept.
    before_0005, forgetting = "all, rowid", f"newest {args.window:,}"
    variants = ("all", before_0005, forgetting)
    paths = {name: folder / f"index-{number}.db" for number, name in enumerate(variants)}
    engines, indexes = {}, {}
    for name in variants:
        url = f"sqlite+aiosqlite:///{paths[name]}"
        await upgrade(url)
        engines[name] = make_engine(url)
        indexes[name] = DuplicateIndex(engines[name])
        if name == before_0005:  # the buckets in a table and, again, in its primary key's index
            async with engines[name].begin() as connection:
                await connection.execute(sql("DROP TABLE cleanup_lsh"))
                await connection.execute(sql(f"CREATE TABLE cleanup_lsh ({LSH_COLUMNS})"))
    spent: dict[str, list[float]] = {name: [] for name in variants}
    found: dict[str, list[bool]] = {name: [] for name in variants}
    started_at: list[datetime] = []  # when each batch was indexed: its articles' first_seen_at
    rows: list[list[str]] = []
    for start in range(0, len(items), args.batch):
        batch = items[start : start + args.batch]
        started_at.append(datetime.now(UTC))
        done = start + len(batch)
        for name in variants:  # in turns, batch by batch
            began = time.process_time()
            async with engines[name].begin() as connection:
                matches = await indexes[name].check_and_add_many(connection, [(i, text) for i, text, _ in batch])
                if name == forgetting and done > args.window:  # as CLEANUP_DUPLICATE_DAYS does, by count here
                    cut = started_at[(done - args.window) // args.batch]
                    await indexes[name].forget_oldest(connection, cut, 2 * len(batch))
            spent[name].append((time.process_time() - began) * 1000 / len(batch))
            found[name] += [
                match is not None and match.duplicate_of == original
                for (_, _, original), match in zip(batch, matches, strict=True)
                if original
            ]
        if checkpoints and done >= checkpoints[0]:
            checkpoints.pop(0)
            last = max(1, 1000 // args.batch)  # the last thousand articles' batches
            rows.append(
                [f"{done:,}"]
                + [f"{statistics.mean(spent[name][-last:]):.2f}" for name in variants]
                + [f"{size_mb(paths[name]):.0f}" for name in variants]
                + [f"{sum(found[name][-100:]) / max(1, len(found[name][-100:])):.2f}" for name in variants]
            )
            print(f"  {done:,} articles: {', '.join(rows[-1][1:])}", file=sys.stderr)
    table(
        f"Near-duplicate lookup and insert on SQLite, batches of {args.batch}. Indexes: all articles kept ('all'), all"
        f" kept in the rowid table of before migration 0005 ('all, rowid'), only the newest {args.window:,} kept.\n"
        "ms: CPU per article over the last 1,000 (this process with SQLite; forgetting included); MB: the database;"
        " found: the share of the last 100 syndicated copies found",
        ["articles", *(f"ms {name}" for name in variants), *(f"MB {name}" for name in variants)]
        + [f"found {name}" for name in variants],
        rows,
    )
    for engine in engines.values():
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
