"""What the benchmarks share: a broker, isolated topics, synthetic articles, a health wait, CPU accounting and a
table printer."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

from newsflow_cli.local_kafka import LocalKafka

# A small vocabulary with news-like word frequencies (Zipf), so full-text search has realistic selectivity.
WORDS = (
    "government minister election police court market prices bank shares company workers strike union storm flood "
    "fire earthquake rescue hospital doctors vaccine virus school teachers students university climate emissions "
    "energy oil gas football match goal season coach player league championship film music festival museum artist "
    "church pope religious scientists research space rocket satellite technology software data security army troops "
    "rebels ceasefire talks peace border protest refugees poverty housing families children weather forecast rain "
    "snow heat record city council budget tax reform law judge trial prison crime murder arrest investigation report"
).split()
LANGUAGES = ["en"] * 6 + ["de", "fr", "es", "it"]
SOURCES = [f"Wire {i}" for i in range(20)]
TOP_LEVEL = [f"medtop:{n:02d}000000" for n in range(1, 18)]


def sentence(rng: random.Random, length: int = 18, words: list[str] = WORDS) -> str:
    chosen = [
        words[min(int(rng.paretovariate(1.1)) - 1, len(words) - 1)] if rng.random() < 0.6 else rng.choice(words)
        for _ in range(length)
    ]
    return " ".join(chosen).capitalize() + "."


def text_of(rng: random.Random, chars: int, words: list[str] = WORDS) -> str:
    paragraphs, size = [], 0
    while size < chars:
        paragraph = " ".join(sentence(rng, words=words) for _ in range(4))
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(paragraphs)[:chars]


# Our own news articles, written for the topic model's corpus (train/corpus/written/README.md): real wording.
WRITTEN = Path(__file__).parents[1] / "train" / "corpus" / "written"


def written_articles(language: str | None = "en") -> list[str]:
    """The texts of our written articles in ``language`` (None: all of them)."""
    records = [json.loads(line) for path in sorted(WRITTEN.glob("*.jsonl")) for line in path.open() if line.strip()]
    return [r["text"] for r in records if language is None or r.get("language", "en") == language]


def articles_of(count: int, tokens: int, tokenizer: Any) -> list[str]:
    """Articles a little longer than ``tokens``: the model reads exactly ``tokens`` of each, as it reads
    the lead of a real article (a text cut to exactly that many and decoded can re-encode a few short).

    Our written English articles long enough come first (750 of 256 tokens), then made-up ones. Real
    wording matters to cleanup: made of WORDS' hundred words, every article shared word pairs with 40 % of
    those before it, and the near-duplicate search paid for comparing them all (real wording: under 1 %).
    Timing only: these are training texts, and say nothing of quality.
    """
    cut = []
    for text in written_articles():
        ids = tokenizer(text, truncation=True, max_length=tokens + 24)["input_ids"]
        if len(ids) >= tokens + 24:
            cut.append(tokenizer.decode(ids[1:-1]))
    rng = random.Random(5)
    rng.shuffle(cut)  # desks mixed, as a feed is
    while len(cut) < count:
        ids = tokenizer(text_of(rng, tokens * 10), truncation=True, max_length=tokens + 24)["input_ids"]
        cut.append(tokenizer.decode(ids[1:-1]))
    return cut[:count]


def unique_topics() -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    env = {
        f"TOPIC_{n.upper()}": f"bench-{run}.articles.{n}"
        for n in ("raw", "ingested", "clean", "enriched", "stored", "skipped", "unsupported", "dlq")
    }
    env["KAFKA_GROUP_PREFIX"] = f"bench-{run}"
    return env


@contextmanager
def kafka() -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS when set, else a local broker for this run."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    folder = Path(tempfile.mkdtemp(prefix="newsflow-bench-kafka-"))
    broker = LocalKafka(folder).start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)  # its logs and data: each run's broker is new


def table(title: str, header: list[str], rows: list[list[object]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


async def wait_for_ok(url: str, timeout: float, interval: float) -> bool:
    """Poll ``url`` until it answers 200 (True) or ``timeout`` seconds pass (False); refused connections are waited out."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url, timeout=2)).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            await asyncio.sleep(interval)
    return False


async def wait_healthy(port: int | str, timeout: float = 180) -> None:
    """A service answers /health once its lifespan is done: for classify, once the model is loaded (and compiled)."""
    if not await wait_for_ok(f"http://127.0.0.1:{port}/health", timeout, interval=0.5):
        raise TimeoutError(f"no answer on :{port}/health after {timeout:.0f} s")


# What each process's command line contains: the services run as ``python -m newsflow_<name>``.
PROCESSES = {
    "ingest": "newsflow_ingest",
    "cleanup": "newsflow_cleanup",
    "classify": "newsflow_classify",
    "storage": "newsflow_storage",
    "broker": "kafka.Kafka",
}


def export_revision(ref: str, folders: list[str]) -> str:
    """``folders`` of the git revision ``ref``, exported to a temporary folder: the PYTHONPATH that imports them.

    How a benchmark times old code beside new in one run, each in its own process, against the same load.
    """
    root = Path(__file__).parents[1]
    folder = Path(tempfile.mkdtemp(prefix="newsflow-bench-before-"))
    archive = subprocess.run(["git", "-C", str(root), "archive", ref, *folders], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return os.pathsep.join(str(folder / name) for name in folders)


def module_at(ref: str, folder: str, path: str) -> ModuleType:
    """The module at ``path`` under ``folder`` of the git revision ``ref``, imported under a name of its own: how a
    benchmark runs old code beside new in one process, fed the same work in turns."""
    source = Path(export_revision(ref, [folder])) / path
    name = f"{source.stem}_at_{ref}".replace("-", "_").replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, source)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def process_cpu(pid: int) -> float:
    """A process's CPU seconds so far, all its threads (user + system), its children not included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds so far of each of a process's threads, by thread id (its main thread's id is the pid)."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended between listing and reading
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick
    return seconds


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU time (user + system) used so far by each service process and the broker, by pid (Linux /proc).

    A service's descendants count as the service (cleanup's worker process, torch.compile's compile workers), and
    so do children it already reaped. Two snapshots around a run say where a machine's cores went, which a rate
    alone cannot.
    """
    tick = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended between listing and reading
            continue
        # utime, stime, and cutime, cstime: the children it waited for
        table[int(entry.name)] = (int(fields[1]), command, sum(int(f) for f in fields[11:15]) / tick)
    found: dict[int, tuple[str, float]] = {}
    for pid, (_, _, seconds) in table.items():
        ancestor = pid
        while ancestor in table:
            parent, command, _ = table[ancestor]
            if name := next((n for n, marker in PROCESSES.items() if marker in command), None):
                found[pid] = (name, seconds)
                break
            ancestor = parent
    return found


def cpu_per_item(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], items: int
) -> dict[str, float]:
    """Milliseconds of CPU per item for each process name, between two :func:`cpu_seconds` snapshots."""
    spent: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        if pid in before:
            spent[name] = spent.get(name, 0.0) + seconds - before[pid][1]
    return {name: seconds * 1000 / items for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1])}
