"""Peak memory of each service, fed typical articles and the largest input its limits let through, beside the
memory limits its Kubernetes manifests give it.

    .venv/bin/python bench/memory.py [--articles 1000] [--largest 12] [--oversize 6] [--only idle,typical,...]

Each load runs in a fresh ``newsflow run`` (its own local broker, SQLite and the four services, default settings),
since a peak only grows: the peak resident memory (VmHWM) of each service's processes, summed (cleanup's worker
process counts as cleanup), once every record pushed has ended on the stored, skipped, unsupported or dead-letter
topic. The loads:

- ``idle``: nothing pushed, 10 s after the services started;
- ``typical``: our written articles (real wording, 2-6 KB each);
- ``largest``: articles of just under ``INGEST_MAX_BYTES`` (2 MiB) of real text, the largest ingest accepts;
- ``escaped``: the same bodies written as JSON's ``\\uXXXX`` escapes, six bytes a character (a 12 MiB record that
  ingest parses and accepts);
- ``oversize``: records of just under ``KAFKA_MAX_MESSAGE_BYTES`` (32 MiB), which ingest dead-letters unread;
- ``headlines``: headline-length articles in 26 languages and 12 scripts (``eval/language``), which load lingua's
  models in cleanup's worker (~900 MB), then the ``largest`` load's articles: the most cleanup holds at once.

A sum of peaks is an upper bound of what a container held at once: what a memory limit must leave room for.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import PROCESSES, table, written_articles
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from newsflow_cli.kafka_io import producer, topic_partitions
from newsflow_cli.local_kafka import free_port
from newsflow_shared import ServiceSettings

ROOT = Path(__file__).parents[1]
LOADS = ("idle", "typical", "largest", "escaped", "oversize", "headlines")
MIB = 1024 * 1024


def records_for(load: str, args: argparse.Namespace) -> list[bytes]:
    texts = written_articles()
    if load == "typical":
        return [
            json.dumps({"id": f"typical-{i}", "text": texts[i % len(texts)]}).encode() for i in range(args.articles)
        ]
    if load in ("largest", "escaped"):
        body = "\n\n".join(texts)
        while len(body.encode()) < 2 * MIB:
            body += "\n\n" + body
        body = body.encode()[: 2 * MIB - 4096].decode(errors="ignore")  # under INGEST_MAX_BYTES, in UTF-8
        if load == "largest":
            return [
                json.dumps({"id": f"largest-{i}", "text": f"Number {i}. {body}"}, ensure_ascii=False).encode()
                for i in range(args.largest)
            ]
        return [_escaped(f"escaped-{i}", f"Number {i}. {body}") for i in range(args.largest)]
    if load == "headlines":
        short = [
            row.split("\t", 1)[1]
            for name in ("headlines.tsv", "outside.tsv")
            for row in (ROOT / "eval/language" / name).read_text("utf-8").splitlines()
            if row.strip()
        ]
        texts = [
            json.dumps({"id": f"headline-{i}", "text": t}, ensure_ascii=False).encode() for i, t in enumerate(short)
        ]
        return texts + records_for("largest", args)
    if load == "oversize":
        filler = "x" * (32 * MIB - 128 * 1024)
        return [json.dumps({"id": f"oversize-{i}", "text": filler}).encode() for i in range(args.oversize)]
    return []


def _escaped(article_id: str, text: str) -> bytes:
    """Every character of the body as a six-byte ``\\uXXXX`` escape: valid JSON, six times the bytes."""
    return (
        '{"id": ' + json.dumps(article_id) + ', "text": "' + "".join(f"\\u{ord(c):04x}" for c in text) + '"}'
    ).encode()


def peak_rss_mib() -> dict[str, float]:
    """VmHWM of every service's processes (and the broker's), summed by service, in MiB."""
    parents: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            parents[int(entry.name)] = (parent, command)
    peaks: dict[str, float] = {}
    for pid in parents:
        ancestor = pid
        while ancestor in parents:
            parent, command = parents[ancestor]
            if name := next((n for n, marker in PROCESSES.items() if marker in command), None):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    break
                if found := re.search(r"VmHWM:\s+(\d+) kB", status):
                    peaks[name] = peaks.get(name, 0.0) + int(found.group(1)) / 1024
                break
            ancestor = parent
    return peaks


def kubernetes_limits() -> dict[str, str]:
    limits = {}
    for name in ("ingest", "cleanup", "classify", "storage"):
        manifest = (ROOT / "deploy" / "k8s" / f"{name}.yaml").read_text()
        if found := re.search(r"limits: \{[^}]*memory: (\w+)\}", manifest):
            limits[name] = found.group(1)
    return limits


async def ended(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> int:
    """Records on the topics where an article's way ends."""
    return sum((await consumer.end_offsets(partitions)).values())


async def one_load(load: str, args: argparse.Namespace) -> tuple[dict[str, float], float]:
    """The peaks after ``load``, and the seconds its records took to end."""
    home = Path(tempfile.mkdtemp(prefix="newsflow-memory-"))
    env = {**os.environ, "NEWSFLOW_HOME": str(home), "STORAGE_API_PORT": str(free_port()), "LOG_LEVEL": "WARNING"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("DATABASE_URL", None)
    run = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "newsflow_cli",
        "run",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert run.stdout is not None
    bootstrap = ""
    try:
        async for raw in run.stdout:
            line = raw.decode(errors="replace")
            if "Kafka is serving on" in line:
                bootstrap = line.split("Kafka is serving on", 1)[1].split()[0]
            if "Newsflow is running" in line:
                break
        else:
            raise RuntimeError(f"newsflow run ended before it ran ({load})")
        drain = asyncio.create_task(_drain(run.stdout, args.logs / f"{load}.log" if args.logs else None))
        records = records_for(load, args)
        started = time.perf_counter()
        settings = ServiceSettings(kafka_bootstrap_servers=bootstrap)
        async with producer(settings) as client:
            for i, value in enumerate(records):
                await client.send_and_wait(settings.topic_raw, value, key=f"{load}-{i}".encode())
        deadline = time.monotonic() + args.timeout
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            partitions = [
                partition
                for topic in (
                    settings.topic_stored,
                    settings.topic_skipped,
                    settings.topic_unsupported,
                    settings.topic_dlq,
                )
                for partition in await topic_partitions(consumer, topic)
            ]
            while (done := await ended(consumer, partitions)) < len(records):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{load}: {done} of {len(records)} records ended in {args.timeout:.0f} s")
                await asyncio.sleep(1)
        finally:
            await consumer.stop()
        took = time.perf_counter() - started
        await asyncio.sleep(10 if load == "idle" else 3)
        drain.cancel()
        return peak_rss_mib(), took
    finally:
        if run.returncode is None:
            run.terminate()
            try:
                await asyncio.wait_for(run.wait(), 60)
            except TimeoutError:
                run.kill()


async def _drain(stream: asyncio.StreamReader, log: Path | None) -> None:
    with open(log or os.devnull, "ab") as output:  # noqa: ASYNC230 (once, before the loop: a local file)
        async for line in stream:
            output.write(line)
            output.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=1000, help="typical articles")
    parser.add_argument("--largest", type=int, default=12, help="records of the largest and the escaped loads")
    parser.add_argument("--oversize", type=int, default=6, help="records of just under 32 MiB")
    parser.add_argument("--only", default=",".join(LOADS), help=f"comma-separated, of {', '.join(LOADS)}")
    parser.add_argument("--logs", type=Path, help="write each load's output (warnings and errors) here")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a load's records may take to end")
    args = parser.parse_args()
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    loads = [load for load in args.only.split(",") if load]
    results = {load: asyncio.run(one_load(load, args)) for load in loads}
    limits = kubernetes_limits()
    services = ["ingest", "cleanup", "classify", "storage", "broker"]
    rows = [
        [name, limits.get(name, "-"), *(f"{results[load][0].get(name, 0):.0f}" for load in loads)] for name in services
    ]
    rows.append(["seconds to end", "", *(f"{results[load][1]:.1f}" for load in loads)])
    table("Peak resident memory, MiB (VmHWM summed over a service's processes)", ["", "k8s limit", *loads], rows)


if __name__ == "__main__":
    main()
