"""A compressed record batch is unpacked only up to a bound (shared/newsflow_shared/unpacking.py); one past it, or one
that cannot be unpacked, reaches the stage as one record that stands for it, and is dead-lettered."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cramjam
import pytest
from aiokafka import codec
from aiokafka.consumer.fetcher import PartitionRecords
from aiokafka.record import default_records
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import TopicPartition

from newsflow_shared import DeadLetter, Delivery, RejectedInput, ServiceSettings, redrive_record, unpacking
from newsflow_shared.readable_records import ReadableRecords, UnreadBatch
from newsflow_shared.stage import Output

from ..hostile.batches import GZIP, LZ4, SNAPPY, ZSTD, MiB, bomb
from .test_stage_isolation import RecordingStage

CODECS = {"gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4, "zstd": ZSTD}


@pytest.fixture(autouse=True)
def bound_of_4_mib() -> Iterator[None]:
    """Each test's own bound; the process's (a service's, set by another test) is put back after."""
    before = unpacking.limit()
    unpacking.unpack_within(4 * MiB)
    yield
    unpacking.unpack_within(before)


def batch(values: list[bytes], *, codec_id: int, base_offset: int = 0) -> bytes:
    """A v2 record batch as aiokafka's producer builds it."""
    builder = DefaultRecordBatchBuilder(2, codec_id, 0, -1, -1, -1, 1 << 30)
    for offset, value in enumerate(values):
        builder.append(offset, timestamp=1_700_000_000_000, key=b"k%d" % offset, value=value, headers=[])
    raw = bytearray(builder.build())
    struct.pack_into(">q", raw, 0, base_offset)  # outside the CRC: the broker sets it
    return bytes(raw)


def read(data: bytes) -> list[Any]:
    partition = PartitionRecords(TopicPartition("articles.raw", 0), ReadableRecords(data), [], 0, None, None, True, 0)
    return list(partition)


@pytest.mark.parametrize("codec_name", ["gzip", "lz4", "zstd"])
def test_a_bomb_between_good_batches_is_one_stand_in_and_the_rest_is_read(codec_name: str) -> None:
    codec_id = CODECS[codec_name]
    data = (
        batch([b"a", b"b"], codec_id=codec_id)
        + bomb(64 * MiB, codec_id=codec_id, base_offset=2)
        + batch([b"c"], codec_id=codec_id, base_offset=3)
    )
    records = read(data)
    assert [(r.offset, r.value) for r in records if not isinstance(r.value, UnreadBatch)] == [
        (0, b"a"),
        (1, b"b"),
        (3, b"c"),
    ]
    (stand_in,) = [r for r in records if isinstance(r.value, UnreadBatch)]
    assert stand_in.offset == 2
    assert stand_in.value == b""
    assert stand_in.key is None
    assert f"at offset 2 (1 record(s), {len(bomb(64 * MiB, codec_id=codec_id)):,} bytes {codec_name}-compressed)" in (
        stand_in.value.reason
    )
    assert "unpacks to more than 4 MiB" in stand_in.value.reason
    assert "they stay in the topic at offset 2 until its retention ends" in stand_in.value.reason


@pytest.mark.parametrize("position", [10, 12, 14])
def test_the_stand_in_takes_the_batch_s_last_offset_wherever_the_reading_starts_in_it(position: int) -> None:
    """A group may have committed inside the batch (a consumer that read it whole): the stand-in still comes, once,
    at the last offset, and the reading goes on after it."""
    data = bomb(64 * MiB, base_offset=10, records=5) + batch([b"after"], codec_id=ZSTD, base_offset=15)
    partition = PartitionRecords(
        TopicPartition("articles.raw", 0), ReadableRecords(data), [], position, None, None, True, 0
    )
    stand_in, after = list(partition)
    assert (stand_in.offset, after.offset, after.value) == (14, 15, b"after")
    assert stand_in.value.reason.startswith("the record batch at offsets 10-14 (5 record(s),")
    assert "they stay in the topic at offsets 10-14" in stand_in.value.reason
    assert partition.next_fetch_offset == 16


def test_a_bomb_s_records_are_all_there_for_aiokafka() -> None:
    """The five-record bomb is a batch Kafka's parsers read whole: it tests the bound, not a malformed batch."""
    records = _read_with_aiokafkas_own_decoders(bomb(8 * MiB, base_offset=10, records=5))
    assert [(r.offset, len(r.value)) for r in records] == [(10, 8 * MiB), (11, 0), (12, 0), (13, 0), (14, 0)]


def test_without_the_bound_aiokafka_unpacks_the_bomb_whole() -> None:
    """What this guards against: aiokafka's own decoders hand over the whole value."""
    (record,) = _read_with_aiokafkas_own_decoders(bomb(64 * MiB))
    assert len(record.value) == 64 * MiB


def _read_with_aiokafkas_own_decoders(data: bytes) -> list[Any]:
    bounded = unpacking.limit()
    names = ("gzip_decode", "lz4_decode", "zstd_decode", "snappy_decode")
    modules = list(unpacking._parsers())
    for module in modules:
        for name in names:
            setattr(module, name, getattr(codec, name))
    try:
        return list(PartitionRecords(TopicPartition("t", 0), MemoryRecords(data), [], 0, None, None, True, 0))
    finally:
        unpacking.unpack_within(bounded)


@pytest.mark.parametrize("codec_name", list(CODECS))
@pytest.mark.parametrize("size", [10, 100_000, 3 * MiB], ids=["tiny", "100KB", "3MiB"])
def test_a_batch_within_the_bound_reads_as_aiokafka_reads_it(codec_name: str, size: int) -> None:
    """Every codec, below and above the part of the buffer kept in memory between batches."""
    values = [os.urandom(size // 4) + b"x" * (size - size // 4), b"second"]
    data = batch(values, codec_id=CODECS[codec_name])
    ours = read(data)
    assert [(r.offset, r.key, r.value) for r in ours] == [(0, b"k0", values[0]), (1, b"k1", values[1])]
    assert [(r.offset, r.value) for r in ours] == [(r.offset, r.value) for r in _read_with_aiokafkas_own_decoders(data)]


def test_exactly_the_bound_is_read_and_a_byte_more_is_not() -> None:
    value = 4 * MiB - 13  # the record's own bytes around its value: three varints of 4 bytes, a byte of headers
    assert len(cramjam.zstd.decompress(bomb(value)[61:])) == 4 * MiB
    (record,) = read(bomb(value))
    assert not isinstance(record.value, UnreadBatch)
    assert len(record.value) == value
    (record,) = read(bomb(value + 1))
    assert isinstance(record.value, UnreadBatch)


def test_a_snappy_batch_is_refused_by_the_length_it_declares() -> None:
    """Snappy (the Java client's xerial framing, as aiokafka writes it too) says each block's length first."""
    data = batch([b"\x00" * (5 * MiB)], codec_id=SNAPPY)
    assert codec._detect_xerial_stream(data[61:])
    (stand_in,) = read(data)
    assert "unpacks to more than 4 MiB" in stand_in.value.reason


@pytest.mark.parametrize("length", [-8, 1 << 30], ids=["negative", "past the end"])
def test_a_snappy_block_whose_length_leaves_the_batch_is_refused(length: int) -> None:
    """The lengths are read before anything is unpacked: one that leaves the batch ends the reading there."""
    raw = bytearray(batch([b"a" * 1000], codec_id=SNAPPY))
    framing = bytes(raw[61 : 61 + 16])  # xerial's header
    raw[61:] = framing + struct.pack("!i", 4) + b"abcd" + struct.pack("!i", length) + b"more"
    struct.pack_into(">i", raw, 8, len(raw) - 12)
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[21:])))
    (stand_in,) = read(bytes(raw))
    assert f"is not valid snappy (a block of {length:,} bytes at byte 24)" in stand_in.value.reason


@pytest.mark.parametrize("codec_name", ["gzip", "snappy", "lz4", "zstd"])
def test_a_batch_that_is_not_valid_compressed_data_is_a_stand_in_too(codec_name: str) -> None:
    """The CRC covers the compressed bytes: a producer that wrote garbage passes it, and aiokafka raised out of the
    fetch at the same offset again and again."""
    raw = bytearray(batch([b"a" * 1000], codec_id=CODECS[codec_name]))
    raw[61:] = b"\x00\x00\x00\x10not compressed at all, but long enough to look like it"
    struct.pack_into(">i", raw, 8, len(raw) - 12)
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[21:])))
    (stand_in,) = read(bytes(raw))
    assert f"is not valid {codec_name}" in stand_in.value.reason


def test_the_bound_is_in_both_of_aiokafkas_parsers(tmp_path: Path) -> None:
    """Without its compiled parser (AIOKAFKA_NO_EXTENSIONS, or no wheel for the platform) the bound holds the same."""
    data = tmp_path / "bomb"
    data.write_bytes(bomb(64 * MiB))
    script = (
        "import sys; from pathlib import Path\n"
        "from aiokafka.record.default_records import DefaultRecordBatch, _DefaultRecordBatchPy\n"
        "assert DefaultRecordBatch is _DefaultRecordBatchPy\n"
        "from newsflow_shared import unpacking; unpacking.unpack_within(1 << 20)\n"
        "from aiokafka.consumer.fetcher import PartitionRecords; from aiokafka.structs import TopicPartition\n"
        "from newsflow_shared.readable_records import ReadableRecords\n"
        "records = ReadableRecords(Path(sys.argv[1]).read_bytes())\n"
        "(record,) = PartitionRecords(TopicPartition('t', 0), records, [], 0, None, None, True, 0)\n"
        "print(record.value.reason)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(data)],
        env={**os.environ, "AIOKAFKA_NO_EXTENSIONS": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "unpacks to more than 1 MiB" in done.stdout


def test_each_parser_calls_the_bounded_decoders() -> None:
    modules = list(unpacking._parsers())
    assert default_records in modules
    for module in modules:
        assert module.zstd_decode is unpacking._zstd


def test_the_bound_follows_the_largest_message() -> None:
    assert ServiceSettings().unpacked_batch_limit == 64 * MiB  # twice the default 32 MiB
    assert ServiceSettings(kafka_max_message_bytes=1 * MiB).unpacked_batch_limit == 64 * MiB
    assert ServiceSettings(kafka_max_message_bytes=100 * MiB).unpacked_batch_limit == 200 * MiB


async def test_the_stage_dead_letters_the_stand_in_and_hands_the_rest_to_its_handler() -> None:
    stage = RecordingStage()
    seen: list[list[bytes]] = []

    async def handle(deliveries: list[Delivery]) -> list[Output]:
        seen.append([d.value for d in deliveries])
        return []

    stand_in = read(bomb(64 * MiB, base_offset=7))[0]
    unread = Delivery.from_record(stand_in)
    assert unread.unread is stand_in.value
    good = Delivery(value=b"{}", topic="articles.raw", offset=8)
    outputs = await stage.settle([unread, good], handle)
    assert seen == [[b"{}"]]
    (letter,) = outputs
    assert isinstance(letter, DeadLetter)
    assert letter.error == "BatchNotUnpacked"
    assert letter.reason.startswith("the record batch at offset 7")
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("articles.raw", 0, 7)
    assert letter.original_truncated
    assert (letter.original, letter.original_size) == (b"", len(bomb(64 * MiB, base_offset=7)))
    with pytest.raises(RejectedInput, match="holds nothing of the original"):
        redrive_record(letter, inputs={"articles.raw"})


async def test_a_stand_in_on_the_dlq_is_not_dead_lettered_again() -> None:
    """A side reader of the DLQ would read a letter about it: it is said in the log, and passed over."""
    stage = RecordingStage()
    stand_in = Delivery.from_record(read(bomb(64 * MiB))[0])
    unread = Delivery(value=b"", topic=stage.settings.topic_dlq, unread=stand_in.unread)

    async def handle(deliveries: list[Delivery]) -> list[Output]:
        raise AssertionError("nothing readable to handle")

    assert await stage.settle([unread], handle) == []


async def test_a_batch_of_only_readable_records_goes_to_the_handler_as_it_is() -> None:
    stage = RecordingStage()
    given = [Delivery(value=b"1", topic="in", offset=1), Delivery(value=b"2", topic="in", offset=2)]
    seen: list[list[Delivery]] = []

    async def handle(deliveries: list[Delivery]) -> list[Output]:
        seen.append(deliveries)
        return []

    assert await stage.settle(given, handle) == []
    assert seen == [given]
