"""Record batches with a header name that is not UTF-8 are read whole (shared/newsflow_shared/readable_records.py)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka.codec import lz4_encode
from aiokafka.consumer.fetcher import PartitionRecords
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import TopicPartition

from newsflow_shared.readable_records import ReadableRecords

HEADER_SIZE = 61  # a v2 batch's header, before its records
CRC_AT, ATTRIBUTES_AT = 17, 21
LZ4 = 0x03


PLACEHOLDER = "NAME-TO-BE-UNREADABLE"  # replaced in the built bytes by as many bytes that are not UTF-8


def record_batch(
    records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]],
    *,
    base_offset: int = 0,
    compressed: bool = False,
) -> bytes:
    """A v2 record batch of ``records`` (key, value, headers), each header named ``PLACEHOLDER`` renamed to bytes
    that are not UTF-8, as librdkafka may send them (no client of ours can)."""
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=0, producer_id=-1, producer_epoch=-1, base_sequence=-1,
        batch_size=1 << 24,
    )  # fmt: skip
    for offset, (key, value, headers) in enumerate(records):
        # Now, not a fixed time: a broker's retention deletes records stamped older than retention.ms, and a
        # pipeline test read its partition from an offset past them.
        builder.append(offset, timestamp=int(time.time() * 1000), key=key, value=value, headers=headers)
    raw = bytearray(builder.build())
    name = PLACEHOLDER.encode()
    while (at := raw.find(name)) >= 0:
        raw[at : at + len(name)] = b"\xff" * len(name)
    if compressed:
        raw = raw[:HEADER_SIZE] + lz4_encode(bytes(raw[HEADER_SIZE:]))
        attributes = struct.unpack_from(">h", raw, ATTRIBUTES_AT)[0] | LZ4
        struct.pack_into(">h", raw, ATTRIBUTES_AT, attributes)
        struct.pack_into(">i", raw, 8, len(raw) - 12)  # the batch's length: all after the offset and itself
    struct.pack_into(">q", raw, 0, base_offset)  # outside the CRC: the broker sets it
    struct.pack_into(">I", raw, CRC_AT, calc_crc32c(bytes(raw[ATTRIBUTES_AT:])))
    return bytes(raw)


def batch_with_a_bad_header_name(bad_at: int = 2, *, base_offset: int = 0, compressed: bool = False) -> bytes:
    """Five records, the one at ``bad_at`` with a header name that is not UTF-8."""
    records = [
        (b"k%d" % i, b"v%d" % i, [("trace", b"t"), (PLACEHOLDER if i == bad_at else "ok", b"v")]) for i in range(5)
    ]
    return record_batch(records, base_offset=base_offset, compressed=compressed)


def read(records: object) -> list:
    partition = PartitionRecords(TopicPartition("t", 0), records, [], 0, None, None, True, 0)
    return list(partition)


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "lz4"])
def test_the_fast_parser_refuses_the_batch_and_this_reads_every_record(compressed: bool) -> None:
    data = batch_with_a_bad_header_name(compressed=compressed) + batch_with_a_bad_header_name(bad_at=0, base_offset=5)
    # What aiokafka alone does, and the partition stops there: its compiled parser raises the decoding error, its
    # pure-Python one (AIOKAFKA_NO_EXTENSIONS) wraps it.
    with pytest.raises((UnicodeDecodeError, CorruptRecordException)) as refused:
        read(MemoryRecords(data))
    assert isinstance(refused.value, UnicodeDecodeError) or isinstance(refused.value.__cause__, UnicodeDecodeError)
    records = read(ReadableRecords(data))
    assert [record.key for record in records] == [b"k%d" % i for i in range(5)] * 2
    assert [record.value for record in records] == [b"v%d" % i for i in range(5)] * 2
    assert [record.offset for record in records] == list(range(10))
    assert list(records[2].headers) == [("trace", b"t"), ("\ufffd" * len(PLACEHOLDER), b"v")]
    assert list(records[3].headers) == [("trace", b"t"), ("ok", b"v")]
    assert list(records[5].headers) == [("trace", b"t"), ("\ufffd" * len(PLACEHOLDER), b"v")]


def test_a_good_batch_reads_as_aiokafka_reads_it() -> None:
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 20)
    for offset in range(3):
        builder.append(offset, timestamp=1, key=None, value=b"x" * offset, headers=[("name", None)])
    data = bytes(builder.build())
    ours, theirs = read(ReadableRecords(data)), read(MemoryRecords(data))
    assert [(r.offset, r.key, r.value, r.headers) for r in ours] == [
        (r.offset, r.key, r.value, r.headers) for r in theirs
    ]


def test_a_corrupt_batch_is_still_refused() -> None:
    """Only header names are read leniently: a batch whose bytes fail its CRC is Kafka's error, as before."""
    data = bytearray(batch_with_a_bad_header_name())
    data[-1] ^= 0xFF
    with pytest.raises(Exception, match="CRC"):
        read(ReadableRecords(bytes(data)))


def test_the_same_with_aiokafkas_pure_python_parser(tmp_path: Path) -> None:
    """Without its compiled parser (AIOKAFKA_NO_EXTENSIONS, or no wheel for the platform) aiokafka wraps the decoding
    error in CorruptRecordException: the batch is read again all the same."""
    data = tmp_path / "batch"
    data.write_bytes(batch_with_a_bad_header_name(compressed=True))
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[2])\n"
        "from test_readable_records import read\n"
        "from newsflow_shared.readable_records import ReadableRecords, _ReadOnBatch\n"
        "from aiokafka.record.default_records import DefaultRecordBatch, _DefaultRecordBatchPy\n"
        "assert DefaultRecordBatch is _DefaultRecordBatchPy\n"
        "print(len(read(ReadableRecords(Path(sys.argv[1]).read_bytes()))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(data), str(Path(__file__).parent)],
        env={**os.environ, "AIOKAFKA_NO_EXTENSIONS": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5"
