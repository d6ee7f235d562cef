"""The article page's diff of what cleanup changed: seconds to draw it for long texts, this code beside REF's.

    .venv/bin/python bench/article_diff.py [--before REF] [--timeout 60] [--case TEXT]

The page diffs the text that arrived against the clean text, paragraph by paragraph and word by word. Ingest takes
up to 2 MiB of text, and everyday cleanup changes every paragraph a little (curly quotes straightened), so the
diff's cost must grow with the text, not with its square. Each case runs once per code, in turns; a case that takes
longer than ``--timeout`` seconds is stopped and shown as such (it runs in a process of its own).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).parent))
from _common import module_at, table

from newsflow_shared import Removal
from newsflow_storage.web import changes as current


def straightened(count: int) -> tuple[str, str, list[Removal]]:
    """``count`` paragraphs, each with curly quotes cleanup straightens."""
    arrived = [f"He said \u201cwe will\u201d meet on Tuesday, number {i}." for i in range(count)]
    return "\n\n".join(arrived), "\n\n".join(p.replace("\u201c", '"').replace("\u201d", '"') for p in arrived), []


def with_removals(count: int) -> tuple[str, str, list[Removal]]:
    """``count`` paragraphs kept (repaired) and a line of boilerplate removed after each."""
    arrived, clean, _ = straightened(count)
    noise = [f"Read more: story {i} on our site" for i in range(count)]
    mixed = [p for pair in zip(arrived.split("\n\n"), noise, strict=True) for p in pair]
    return "\n\n".join(mixed), clean, [Removal(what=f"{n}.", why="rule") for n in noise]


def repetitive(count: int, words: int) -> tuple[str, str, list[Removal]]:
    """``count`` paragraphs of ``words`` words from three, repeated: a word diff's worst case."""
    body = " ".join(["a", "b", "c"][i % 3] for i in range(words))
    return (
        "\n\n".join(f"{body} \u201cq{i}\u201d" for i in range(count)),
        "\n\n".join(f'{body} "q{i}"' for i in range(count)),
        [],
    )


def spaced(count: int) -> tuple[str, str, list[Removal]]:
    """``count`` paragraphs of ~3,600 characters whose runs of 20 spaces cleanup collapses (its real repairs): no
    clean paragraph comes near its arrived one in difflib's quick ratio, so each is looked for past its window."""
    from newsflow_cleanup.repair import repair

    words = "council budget library winter hours residents mayor plan officials".split()
    arrived = [(" " * 20).join(f"{words[(i + k) % len(words)]}{k}" for k in range(170)) for i in range(count)]
    return "\n\n".join(arrived), "\n\n".join(repair("\n\n".join(arrived))), []


def alternating(count: int) -> tuple[str, str, list[Removal]]:
    """``count`` short lines, two of them in turn, kept as they came between a first and a last line cleanup
    removed: difflib's alignment of whole paragraphs grows with the square of their number when they repeat."""
    kept = ["Share this story", "Follow us"] * (count // 2)
    arrived = ["Advertisement", *kept, "Read more"]
    removed = [Removal(what="Advertisement", why="rule: advertisement"), Removal(what="Read more", why="rule: teaser")]
    return "\n".join(arrived), "\n".join(kept), removed


def credits_repaired(count: int) -> tuple[str, str, list[Removal]]:
    """``count`` credit lines written with an entity, which cleanup repairs before it removes them: no removal
    matches its paragraph exactly, so none was ever taken off the list each paragraph scanned."""
    arrived = ["The story."] + [f"&copy; Reuters {i}" for i in range(count)]
    removed = [Removal(what=f"\u00a9 Reuters {i}", why="rule: copyright notice") for i in range(count)]
    return "\n\n".join(arrived), "The story.", removed


def credits_unmatched(count: int) -> tuple[str, str, list[Removal]]:
    """As :func:`credits_repaired`, with mojibake cleanup mends ("\u00e2\u20ac\u2122" to "\u2019") in place of the entity:
    no line matches exactly, so each paragraph is looked for among the removals' first and last few."""
    arrived = ["The story."] + [f"Reuters\u00e2\u20ac\u2122 photo desk {i}" for i in range(count)]
    removed = [Removal(what=f"Reuters\u2019 photo desk {i}", why="rule: photo credit") for i in range(count)]
    return "\n\n".join(arrived), "The story.", removed


CASES = {
    "1,000 paragraphs repaired (40 KB)": lambda: straightened(1000),
    "2,000 paragraphs repaired (81 KB)": lambda: straightened(2000),
    "1,000 repaired, 1,000 removed (76 KB)": lambda: with_removals(1000),
    "40 paragraphs of 900 repeated words (72 KB)": lambda: repetitive(40, 900),
    "100 paragraphs of 4,000 repeated words (800 KB)": lambda: repetitive(100, 4000),
    "400 paragraphs whose runs of spaces cleanup collapsed (2.0 MB)": lambda: spaced(400),
    "40,000 short lines, two in turn (0.6 MB)": lambda: alternating(40_000),
    "24,000 repaired credit lines removed (0.5 MB)": lambda: credits_repaired(24_000),
    "24,000 credit lines removed, none matching exactly (0.7 MB)": lambda: credits_unmatched(24_000),
}


def _timed(module: ModuleType, case: str, answer: multiprocessing.Queue) -> None:
    arrived, clean, removed = CASES[case]()
    started = time.perf_counter()
    module.folded(module.changes(arrived, clean, removed))
    answer.put(time.perf_counter() - started)


def seconds(module: ModuleType, case: str, timeout: float) -> str:
    answer: multiprocessing.Queue = multiprocessing.Queue()
    worker = multiprocessing.get_context("fork").Process(target=_timed, args=(module, case, answer))
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        worker.kill()
        worker.join()
        return f"> {timeout:g}"
    return f"{answer.get():.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", metavar="REF", help="also time the diff of this git revision")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a case is stopped (default 60)")
    parser.add_argument("--case", default="", help="only the cases whose name holds this text")
    args = parser.parse_args()
    codes = {"this code": current}
    if args.before:
        codes[args.before] = module_at(args.before, "services", "storage/newsflow_storage/web/changes.py")
    rows = [
        [case, *(seconds(module, case, args.timeout) for module in codes.values())]
        for case in CASES
        if args.case in case
    ]
    table("Seconds to draw the article page's diff", ["case", *codes], rows)


if __name__ == "__main__":
    main()
