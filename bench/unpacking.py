"""What bounding the unpacking of record batches costs, and what it saves (shared/newsflow_shared/unpacking.py).

    .venv/bin/python bench/unpacking.py [--repeat 30] [--bomb-gib 1]

1. CPU: a fetched record batch of our written articles (JSON, as a stage's producer batches them), unpacked by
   aiokafka's own decoder and by the bounded one (the service's bound, 64 MiB), for each codec and three sizes: the
   best of ``--repeat`` runs each, in this one process.
2. A compression bomb (one record of ``--bomb-gib`` GiB of zeros) read by aiokafka's fetcher, each codec, each way,
   in a fresh process: its peak resident memory (VmHWM) and how long the read took.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from _common import table, written_articles
from aiokafka import codec
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from newsflow_shared import ServiceSettings, unpacking
from tests.hostile.batches import GZIP, LZ4, SNAPPY, ZSTD, bomb

CODECS = {"lz4": LZ4, "zstd": ZSTD, "gzip": GZIP, "snappy": SNAPPY}
DECODERS = {"lz4": "lz4_decode", "zstd": "zstd_decode", "gzip": "gzip_decode", "snappy": "snappy_decode"}
SIZES = {"16 KB": 16 * 1024, "1 MiB": 1 << 20, "16 MiB": 16 << 20}


def compressed_articles(codec_id: int, size: int) -> bytes:
    """The compressed part of a batch of article records, about ``size`` bytes unpacked."""
    texts = written_articles()
    builder = DefaultRecordBatchBuilder(2, codec_id, 0, -1, -1, -1, 1 << 30)
    offset = written = 0
    while written < size:
        value = json.dumps({"id": f"a-{offset}", "text": texts[offset % len(texts)]}).encode()
        builder.append(offset, timestamp=None, key=f"a-{offset}".encode(), value=value, headers=[])
        offset += 1
        written += len(value)
    return bytes(builder.build())[61:]


def best_seconds(decode: object, payload: bytes, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        decode(payload)  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best


def cpu_rows(repeat: int) -> list[list[object]]:
    unpacking.unpack_within(ServiceSettings().unpacked_batch_limit)
    bounded = {"lz4": unpacking._lz4, "zstd": unpacking._zstd, "gzip": unpacking._gzip, "snappy": unpacking._snappy}
    rows: list[list[object]] = []
    for name, codec_id in CODECS.items():
        for label, size in SIZES.items():
            payload = compressed_articles(codec_id, size)
            own = getattr(codec, DECODERS[name])
            assert bounded[name](payload) == own(payload)
            theirs = best_seconds(own, payload, repeat)
            ours = best_seconds(bounded[name], payload, repeat)
            rows.append(
                [name, label, f"{len(payload):,}", f"{theirs * 1e6:,.0f}", f"{ours * 1e6:,.0f}", f"{ours / theirs:.2f}"]
            )
    return rows


BOMB_READER = """
import sys, time
from pathlib import Path
from aiokafka.consumer.fetcher import PartitionRecords
from aiokafka.structs import TopicPartition
from newsflow_shared import unpacking
from newsflow_shared.readable_records import ReadableRecords
data = Path(sys.argv[1]).read_bytes()
if sys.argv[2] == "bounded":
    unpacking.unpack_within(64 << 20)
started = time.perf_counter()
(record,) = PartitionRecords(TopicPartition("t", 0), ReadableRecords(data), [], 0, None, None, True, 0)
print(len(record.value), getattr(record.value, "reason", ""), time.perf_counter() - started)
print(open("/proc/self/status").read())
"""


def bomb_rows(gib: float, folder: Path) -> list[list[object]]:
    rows: list[list[object]] = []
    for name in ("zstd", "lz4", "gzip"):
        data = folder / f"bomb.{name}"
        data.write_bytes(bomb(int(gib * (1 << 30)), codec_id=CODECS[name]))
        for way in ("aiokafka's own", "bounded"):
            done = subprocess.run(
                [sys.executable, "-c", BOMB_READER, str(data), "bounded" if way == "bounded" else "own"],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "shared")},
            )
            if done.returncode != 0:
                rows.append([name, f"{data.stat().st_size:,}", way, "failed", done.stderr.strip().splitlines()[-1], ""])
                continue
            first = done.stdout.splitlines()[0].split()
            peak = int(re.search(r"VmHWM:\s+(\d+) kB", done.stdout).group(1)) / 1024  # type: ignore[union-attr]
            read = "refused (stand-in)" if first[1:-1] else f"{int(first[0]) / (1 << 20):,.0f} MiB value"
            rows.append([name, f"{data.stat().st_size:,}", way, read, f"{peak:,.0f}", f"{float(first[-1]):.2f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--bomb-gib", type=float, default=1.0)
    args = parser.parse_args()
    table(
        "Unpacking one batch of articles: aiokafka's decoder against the bounded one (best of runs, µs)",
        ["codec", "unpacked", "compressed bytes", "aiokafka µs", "bounded µs", "bounded / aiokafka"],
        cpu_rows(args.repeat),
    )
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    table(
        f"A bomb of {args.bomb_gib:g} GiB read by aiokafka's fetcher, in a fresh process each",
        ["codec", "compressed bytes", "decoder", "what was read", "peak MiB", "seconds"],
        bomb_rows(args.bomb_gib, folder),
    )


if __name__ == "__main__":
    main()
