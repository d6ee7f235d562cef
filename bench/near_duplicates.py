"""Cleanup's near-duplicate index as it grows: CPU per article of a batch's lookup and insert at each index size.

    .venv/bin/python bench/near_duplicates.py [--articles 20000] [--batch 100] [--window 5000]
        [--feed stories|syndicated|templated] [--before REF]

What the index costs at 1,000 articles is not what it costs after a month of a feed. The indexes, on SQLite, are fed
the same batches in turns, so the machine's drift falls on all alike: one keeps every article; one forgets all but
the newest ``--window`` in each batch's transaction (as ``CLEANUP_DUPLICATE_DAYS`` does by age), the cost of
forgetting counted; with ``--before REF``, one more keeps every article with REF's ``near_duplicates`` module,
imported into this process under a name of its own.

The feeds (``--feed``):

- ``stories``: our written English articles with their content words renamed for each copy: a different story in
  the same language. Function words stay ("of the", "in a"), and they are what fills the LSH buckets that every
  article shares; a real feed, whose stories also share subjects, fills them at least as much. Each tenth article is
  a syndicated copy (the first two thirds of an earlier one).
- ``syndicated``: a widely syndicated story. Each article is a copy of one of five stories, three words changed: the
  families grow with every batch, as a wire story's do over a week.
- ``templated``: stories written from one template (results, earnings, weather): 50 words the same in each, 150 of
  their own (a quarter of their word pairs shared, well below the threshold). They share the template's buckets and
  are not copies of each other; each tenth is a copy of an earlier one with three words changed.

"found" is the share of the last 100 copies named a copy of their own family's first article.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import module_at, table, written_articles

from newsflow_cleanup.near_duplicates import DuplicateIndex
from newsflow_shared.db import make_engine, upgrade

_WORD = re.compile(r"\w+")
Item = tuple[str, str, str | None]
"""``(id, text, id of the original it copies or None)``."""


def stories(count: int) -> list[Item]:
    """Renamed written articles, each tenth a copy of an earlier one."""
    texts = written_articles()
    frequency = Counter(word.lower() for text in texts for word in _WORD.findall(text))
    function_words = {word for word, _ in frequency.most_common(150)}
    made: list[Item] = []
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


def with_words_changed(text: str, rng: random.Random, count: int = 3) -> str:
    words = text.split()
    for _ in range(count):
        words[rng.randrange(len(words))] = f"w{rng.randrange(10**9)}"
    return " ".join(words)


def syndicated(count: int) -> list[Item]:
    """Copies of five stories, three words changed in each; the first of each family is its original."""
    rng = random.Random(5)
    originals = written_articles()[:5]
    made: list[Item] = [(f"s{index}", text, None) for index, text in enumerate(originals)]
    for index in range(len(made), count):
        family = index % len(originals)
        made.append((f"s{index}", with_words_changed(originals[family], rng), f"s{family}"))
    return made


def templated(count: int) -> list[Item]:
    """50 words of a template and 150 of their own; each tenth a copy of an earlier one, three words changed."""
    rng = random.Random(6)
    template = " ".join(f"t{rng.randrange(10**9)}" for _ in range(50))
    made: list[Item] = []
    for index in range(count):
        if index % 10 == 9 and index >= 100:
            original_id, original, _ = made[index - 55]
            made.append((f"t{index}", with_words_changed(original, rng), original_id))
            continue
        made.append((f"t{index}", template + " " + " ".join(f"o{rng.randrange(10**9)}" for _ in range(150)), None))
    return made


FEEDS: dict[str, Callable[[int], list[Item]]] = {"stories": stories, "syndicated": syndicated, "templated": templated}


def index_class_at(ref: str) -> type[DuplicateIndex]:
    """``DuplicateIndex`` of the git revision ``ref``."""
    module = module_at(ref, "services/cleanup", "newsflow_cleanup/near_duplicates.py")
    return module.DuplicateIndex  # type: ignore[no-any-return]


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
    parser.add_argument("--feed", choices=FEEDS, default="stories")
    parser.add_argument("--before", metavar="REF", help="Also an index of every article with REF's code, in turns.")
    args = parser.parse_args()
    checkpoints = sorted(int(value) for value in args.checkpoints.split(",") if int(value) <= args.articles)
    items = FEEDS[args.feed](args.articles)
    folder = Path(tempfile.mkdtemp(prefix="newsflow-bench-dups-"))
    forgetting = f"newest {args.window:,}"
    classes = {"all": DuplicateIndex, forgetting: DuplicateIndex}
    if args.before:
        classes[f"all, {args.before}"] = index_class_at(args.before)
    variants = tuple(classes)
    paths = {name: folder / f"index-{number}.db" for number, name in enumerate(variants)}
    engines, indexes = {}, {}
    for name in variants:
        url = f"sqlite+aiosqlite:///{paths[name]}"
        await upgrade(url)
        engines[name] = make_engine(url)
        indexes[name] = classes[name](engines[name])
    spent: dict[str, list[float]] = {name: [] for name in variants}
    found: dict[str, list[bool]] = {name: [] for name in variants}
    started_at: list[datetime] = []  # when each batch was indexed: its articles' first_seen_at
    rows: list[list[str]] = []
    for start in range(0, len(items), args.batch):
        batch = items[start : start + args.batch]
        started_at.append(datetime.now(UTC))
        done = start + len(batch)
        turn = start // args.batch % len(variants)  # in turns, batch by batch, each first as often as the others
        for name in variants[turn:] + variants[:turn]:
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
    with_before = f"; with {args.before}'s code: 'all, {args.before}'" if args.before else ""
    table(
        f"Near-duplicate lookup and insert on SQLite, feed '{args.feed}', batches of {args.batch}. Indexes: all"
        f" articles kept ('all'{with_before}), only the newest {args.window:,} kept.\n"
        "ms: CPU per article over the last 1,000 (this process with SQLite; forgetting included); MB: the database;"
        " found: the share of the last 100 copies named a copy of their family's first article",
        ["articles", *(f"ms {name}" for name in variants), *(f"MB {name}" for name in variants)]
        + [f"found {name}" for name in variants],
        rows,
    )
    for engine in engines.values():
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
