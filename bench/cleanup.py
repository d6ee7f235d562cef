"""Cleanup's CPU per article, per process: articles of the pipeline benchmark's size, 5 KB articles, 50 KB pages.

    .venv/bin/python bench/cleanup.py [--articles 400] [--before REF [--rounds 3]]

Each input is cleaned in this process alone (repairs, extraction, language), then through the service's worker
process under its CPU budget (this process's CPU and the worker's), then with the shared near-duplicate index and
learned boilerplate on SQLite as well, as the service runs them (no Kafka). ``--before REF`` times the git revision
REF's cleanup in turns with this checkout's, each in its own process, and prints both side by side.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import export_revision, process_cpu, table, text_of, written_articles

from newsflow_cleanup.app import Cleanup
from newsflow_cleanup.language import LanguageDetector
from newsflow_cleanup.learned import LearnedBoilerplate
from newsflow_cleanup.logic import clean
from newsflow_cleanup.near_duplicates import DuplicateIndex
from newsflow_cleanup.settings import CleanupSettings
from newsflow_shared import Delivery, IngestedArticle, Stage
from newsflow_shared.db import make_engine, upgrade

WRITTEN_TEXTS = written_articles(language=None)
CHROME = "".join(f'<li><a href="/section/{i}">Section {i}</a></li>' for i in range(60))  # menus make real pages heavy


def text_article(rng: random.Random, index: int) -> IngestedArticle:
    """About 5 KB: three of our written articles, no two articles sharing one (real wording: made of WORDS' hundred
    words, each article shared word pairs with 40 % of the others, and the near-duplicate search compared them all),
    then made-up text once those run out."""
    written = WRITTEN_TEXTS[index * 3 : index * 3 + 3]
    story = "\n\n".join(written) if len(written) == 3 else text_of(rng, 5000)
    body = story.replace(" the ", " the\u00a0 ", 3) + "\n\nAdvertisement\n\nShare this article"
    return IngestedArticle(
        id=f"t{index}", title=f"Story {index}", text=body, source=f"Wire {index % 5}", content_hash=str(index)
    )


def lead_article(index: int) -> IngestedArticle:
    """One of our written articles cut to 1,300 characters: what the pipeline benchmark sends (256 tokens' worth)."""
    text = WRITTEN_TEXTS[index % len(WRITTEN_TEXTS)][:1300]
    return IngestedArticle(
        id=f"l{index}", title=f"Story {index}", text=text, source=f"Wire {index % 5}", content_hash=str(index)
    )


def html_page(rng: random.Random, index: int, size: int = 50_000) -> IngestedArticle:
    """A page of about ``size`` bytes: menus, a cookie banner, the article, a long teaser sidebar, a footer."""
    paragraphs = "".join(f"<p>{text_of(rng, 700)}</p>" for _ in range(14))
    head = f"<html><head><title>Story {index} | Daily</title></head><body><nav><ul>{CHROME}</ul></nav>"
    head += (
        f"<div class='cookie'>We use cookies</div><main><article><h1>Story {index}</h1>{paragraphs}</article><aside>"
    )
    tail = f"</aside></main><footer>{CHROME}<p>© 2026 Daily</p></footer></body></html>"
    teasers = []
    while len(head) + len(tail) + sum(map(len, teasers)) < size:
        teasers.append(f"<div class='teaser'><h3>{text_of(rng, 60)}</h3><p>{text_of(rng, 200)}</p></div>")
    return IngestedArticle(id=f"h{index}", html=head + "".join(teasers) + tail, source="Daily", content_hash=str(index))


def logic_only(items: list[IngestedArticle], detector: LanguageDetector, settings: CleanupSettings) -> float:
    """CPU ms per article of the repairs, extraction and language, in this process."""
    started = time.process_time()
    for item in items:
        clean(item, detector, settings)
    return (time.process_time() - started) * 1000 / len(items)


async def through_service(items: list[IngestedArticle], service: Cleanup, database: bool) -> float:
    """CPU ms per article of the service's handler, this process and its worker's, in the service's batches."""
    service.engine = None
    if database:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='newsflow-bench-')}/cleanup.db"
        await upgrade(url)
        service.engine = make_engine(url)
        service.duplicates = DuplicateIndex(service.engine)
        service.boilerplate = LearnedBoilerplate(service.engine)
    deliveries = [Delivery(value=item.model_dump_json().encode()) for item in items]
    batch = service.settings.batch_max_records
    pid = service.worker._process.pid if service.worker._process else None
    assert pid is not None, "the worker was started"
    started = time.process_time() + process_cpu(pid)
    for start in range(0, len(deliveries), batch):  # batches, as the service consumes them
        await service.handle(deliveries[start : start + batch])
    spent = time.process_time() + process_cpu(pid) - started
    if service.engine is not None:
        await service.engine.dispose()
    return spent * 1000 / len(items)


MEASURES = ["in this process", "through the worker", "+ near-duplicates + learned (SQLite)"]


def measure(count: int) -> dict[str, dict[str, float]]:
    """CPU ms per article for each input and measure."""
    rng = random.Random(1)
    inputs = {
        "1.3 KB articles (the pipeline benchmark's)": [lead_article(i) for i in range(count)],
        "5 KB text articles": [text_article(rng, i) for i in range(count)],
        "50 KB HTML pages": [html_page(rng, i) for i in range(count // 4)],
    }
    settings = CleanupSettings()
    service = Cleanup(settings, Stage(None, settings, name="cleanup"))  # type: ignore[arg-type]  # no broker: nothing is published
    detector = LanguageDetector.for_settings(settings)
    logic_only(inputs["5 KB text articles"][:20], detector, settings)  # warm up
    service.worker.start()
    asyncio.run(through_service(inputs["5 KB text articles"][:20], service, database=False))
    results = {}
    for name, items in inputs.items():
        results[name] = {
            MEASURES[0]: logic_only(items, detector, settings),
            MEASURES[1]: asyncio.run(through_service(items, service, database=False)),
            MEASURES[2]: asyncio.run(through_service(items, service, database=True)),
        }
    service.worker.close()
    return results


def compare(args: argparse.Namespace) -> None:
    """REF's cleanup and this checkout's in turns, each in a fresh process; the median of the turns side by side."""
    sides = {"before": {"PYTHONPATH": export_revision(args.before, ["services/cleanup", "shared"])}, "after": {}}
    folder = Path(tempfile.mkdtemp(prefix="newsflow-bench-cleanup-turns-"))
    turns: dict[str, list[dict[str, dict[str, float]]]] = {"before": [], "after": []}
    for round_ in range(args.rounds):
        for side, env in sides.items():
            out = folder / f"{side}-{round_}.json"
            command = [sys.executable, __file__, "--articles", str(args.articles), "--json", str(out)]
            subprocess.run(command, env={**os.environ, **env}, check=True)
            turns[side].append(json.loads(out.read_text()))
    rows = []
    for name in turns["after"][0]:
        for what in MEASURES:
            before, after = (
                statistics.median(turn[name][what] for turn in turns[side]) for side in ("before", "after")
            )
            rows.append([name, what, f"{before:.2f}", f"{after:.2f}", f"{after / before:.2f}"])
    table(
        f"Cleanup, CPU ms per article: {args.before} and this checkout, median of {args.rounds} turns each",
        ["input", "measured", "before", "after", "after / before"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=400)
    parser.add_argument("--before", metavar="REF", help="Also time the git revision REF, in turns with this checkout.")
    parser.add_argument("--rounds", type=int, default=3, help="With --before: turns of each.")
    parser.add_argument("--json", help=argparse.SUPPRESS)  # a turn of --before: the figures, for its driver
    args = parser.parse_args()
    if args.before:
        compare(args)
        return
    results = measure(args.articles)
    if args.json:
        Path(args.json).write_text(json.dumps(results))
        return
    table(
        "Cleanup, CPU ms per article",
        ["input", *MEASURES],
        [[name, *(f"{row[what]:.2f}" for what in MEASURES)] for name, row in results.items()],
    )


if __name__ == "__main__":
    main()
