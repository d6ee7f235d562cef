"""Cleanup speed, per process: 5 KB text articles and 50 KB HTML pages, with and without the database steps.

    .venv/bin/python bench/cleanup.py [--articles 400]

The repairs and extraction are measured alone (one core, no Kafka), then with the shared
near-duplicate index and learned boilerplate on SQLite, as the service runs them.
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
from _common import table, text_of, written_articles

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
    started = time.perf_counter()
    for item in items:
        clean(item, detector, settings)
    return len(items) / (time.perf_counter() - started)


async def in_worker(items: list[IngestedArticle], service: Cleanup) -> float:
    """The service's handler without the database: each article through the worker process and its CPU budget."""
    service.engine = None
    deliveries = [Delivery(value=item.model_dump_json().encode()) for item in items]
    batch = service.settings.batch_max_records
    started = time.perf_counter()
    for start in range(0, len(deliveries), batch):
        await service.handle(deliveries[start : start + batch])
    return len(items) / (time.perf_counter() - started)


async def with_database(items: list[IngestedArticle], service: Cleanup) -> float:
    url = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='newsflow-bench-')}/cleanup.db"
    await upgrade(url)
    engine = service.engine = make_engine(url)
    service.duplicates = DuplicateIndex(engine)
    service.boilerplate = LearnedBoilerplate(engine)
    deliveries = [Delivery(value=item.model_dump_json().encode()) for item in items]
    batch = service.settings.batch_max_records
    started = time.perf_counter()
    for start in range(0, len(deliveries), batch):  # batches, as the service consumes them
        await service.handle(deliveries[start : start + batch])
    rate = len(items) / (time.perf_counter() - started)
    await engine.dispose()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=400)
    args = parser.parse_args()
    rng = random.Random(1)
    texts = [text_article(rng, i) for i in range(args.articles)]
    pages = [html_page(rng, i) for i in range(args.articles // 4)]
    settings = CleanupSettings()
    service = Cleanup(settings, Stage(None, settings, name="cleanup"))  # type: ignore[arg-type]  # no broker: nothing is published
    detector = LanguageDetector.for_settings(settings)
    logic_only(texts[:20], detector, settings)  # warm up
    service.worker.start()
    rows = []
    for name, items in (("5 KB text articles", texts), ("50 KB HTML pages", pages)):
        size = sum(len((i.text or i.html or "").encode()) for i in items) / len(items) / 1024
        rows.append(
            [
                f"{name} (avg {size:.0f} KB)",
                f"{logic_only(items, detector, settings):.0f}",
                f"{asyncio.run(in_worker(items, service)):.0f}",
                f"{asyncio.run(with_database(items, service)):.0f}",
            ]
        )
    table(
        "Cleanup, one process (articles/s)",
        ["input", "repairs + extraction", "in the worker process (CPU budget)", "+ near-duplicates + learned (SQLite)"],
        rows,
    )
    service.worker.close()


if __name__ == "__main__":
    main()
