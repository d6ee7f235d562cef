"""Cleanup's text repairs (``newsflow_cleanup.repair.repair``): CPU per article, this checkout against earlier revisions.

    .venv/bin/python bench/repair.py --before 7977f36 [--before REF ...] [--rounds 5]

The revisions' ``repair.py`` are loaded into this one process beside this checkout's and timed in turns on our
written articles, so a machine's drift between processes (10-30 % on some sessions' machines, more than the change
being measured) falls on every side alike. Each revision's output is checked equal to this checkout's first: a
faster repair that repairs differently is not what this measures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import module_at, table, written_articles

from newsflow_cleanup import repair as this_checkout

Repair = Callable[[str], list[str]]


def repair_at(ref: str) -> Repair:
    """``repair`` of the git revision ``ref``, imported under a name of its own."""
    return module_at(ref, "services/cleanup", "newsflow_cleanup/repair.py").repair  # type: ignore[no-any-return]


def cpu_ms_per_text(repair: Repair, texts: list[str]) -> float:
    started = time.process_time()
    for text in texts:
        repair(text)
    return (time.process_time() - started) * 1000 / len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", action="append", default=[], metavar="REF", help="A revision to time (repeatable).")
    parser.add_argument("--rounds", type=int, default=5, help="Turns of each side.")
    args = parser.parse_args()
    sides: dict[str, Repair] = {ref: repair_at(ref) for ref in args.before}
    sides["this checkout"] = this_checkout.repair
    inputs = {
        "English, 1.3 KB leads": [text[:1300] for text in written_articles()],
        "all languages, 1.3 KB leads": [text[:1300] for text in written_articles(language=None)],
        "English, whole articles": written_articles(),
    }
    rows = []
    for name, texts in inputs.items():
        expected = [this_checkout.repair(text) for text in texts]
        for side, repair in sides.items():
            if [repair(text) for text in texts] != expected:
                sys.exit(f"{side} repairs {name} differently from this checkout: not comparable")
        turns: dict[str, list[float]] = {side: [] for side in sides}
        for _ in range(args.rounds):
            for side, repair in sides.items():
                turns[side].append(cpu_ms_per_text(repair, texts))
        rows.append([f"{name} ({len(texts)})", *(f"{statistics.median(turns[side]):.3f}" for side in sides)])
    table(f"repair(), CPU ms per article, median of {args.rounds} turns", ["input (texts)", *sides], rows)


if __name__ == "__main__":
    main()
