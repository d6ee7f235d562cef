"""Compressed record batches are unpacked only up to a bound, so that a "compression bomb" cannot take a stage down.

Kafka bounds a record batch as it is sent, compressed (``max.message.bytes``), and aiokafka unpacks a fetched batch
whole, into memory, before it hands over any of its records. 64 KB of zstd unpack to 2 GiB (a few MB of lz4 or gzip
to as much): one such batch pushed to the raw topic took ingest past its memory limit, and again after each restart,
at the same offset, for good. Kafka's own clients never make such a batch; any producer can.

:func:`unpack_within` puts bounded decoders where aiokafka's record batch parsers (compiled and pure-Python) call
theirs: lz4, zstd and gzip unpack into a buffer of the bound and stop where it ends; snappy says each block's length
before it is unpacked. A batch past the bound, or one that cannot be unpacked at all, raises
:class:`UnpackingRefused`: :mod:`.readable_records` hands the stage one record that stands for the batch, the stage
dead-letters it with the reason, and the partition goes on past it.

Only record batches of Kafka's current format (v2, every client since Kafka 0.11) are bounded: Kafka 4 refuses the
older formats at produce time.
"""

from __future__ import annotations

import mmap
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import cramjam
from aiokafka import codec
from aiokafka.record import default_records

_KEPT_RESIDENT = 1 << 20
"""Bytes of a thread's buffer kept in memory between batches: the pages a larger batch touched are given back."""

_buffers = threading.local()
_limit = 64 << 20


class UnpackingRefused(Exception):
    """A compressed record batch was not unpacked; ``problem`` says why, as the end of a sentence about the batch."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def unpack_within(limit: int) -> None:
    """Make every aiokafka consumer in this process unpack a record batch only up to ``limit`` bytes (later calls
    set the bound again)."""
    global _limit
    _limit = limit
    bounded = {"gzip_decode": _gzip, "lz4_decode": _lz4, "zstd_decode": _zstd, "snappy_decode": _snappy}
    for parser in _parsers():
        for name, decoder in bounded.items():
            setattr(parser, name, decoder)


def limit() -> int:
    """The bound now in force, in bytes unpacked."""
    return _limit


def _parsers() -> Iterator[Any]:
    """aiokafka's modules that unpack v2 batches: each imported the codec's functions by name."""
    yield default_records
    try:
        from aiokafka.record._crecords import default_records as compiled
    except ImportError:  # no compiled parser for this platform: the pure-Python one reads every batch
        return
    yield compiled


def _into_buffer(codec_name: str, unpack_into: Callable[[Any, Any], int], payload: Any) -> bytes:
    buffer = _buffer()
    try:
        size = unpack_into(payload, buffer)
    except cramjam.DecompressionError as error:
        _give_back(buffer, len(buffer))
        # cramjam stops writing where the buffer ends, and says so: the batch was not unpacked past the bound.
        if "whole buffer" in str(error):
            raise UnpackingRefused(_too_large()) from None
        raise UnpackingRefused(f"is not valid {codec_name} ({error}): its producer wrote it wrong") from None
    unpacked = buffer[:size]  # a copy, as aiokafka's own decoders return
    _give_back(buffer, size)
    return unpacked


def _give_back(buffer: mmap.mmap, written: int) -> None:
    """Release the pages past the first ``_KEPT_RESIDENT`` bytes that a batch wrote: the next batch finds zeros."""
    if written > _KEPT_RESIDENT:
        buffer.madvise(mmap.MADV_DONTNEED, _KEPT_RESIDENT, written - _KEPT_RESIDENT)


def _buffer() -> mmap.mmap:
    """This thread's buffer of the bound: anonymous memory, so only the pages a batch writes are ever resident."""
    buffer: mmap.mmap | None = getattr(_buffers, "buffer", None)
    if buffer is None or len(buffer) != _limit:
        buffer = _buffers.buffer = mmap.mmap(-1, _limit)
    return buffer


def _gzip(payload: Any) -> bytes:
    return _into_buffer("gzip", cramjam.gzip.decompress_into, payload)


def _lz4(payload: Any) -> bytes:
    return _into_buffer("lz4", cramjam.lz4.decompress_into, payload)


def _zstd(payload: Any) -> bytes:
    return _into_buffer("zstd", cramjam.zstd.decompress_into, payload)


def _snappy(payload: bytes) -> bytes:
    """Snappy blocks begin with their unpacked length: each is checked before aiokafka's own decoder unpacks them."""
    try:
        declared = sum(cramjam.snappy.decompress_raw_len(block) for block in _snappy_blocks(payload))
    except (cramjam.DecompressionError, struct.error) as error:
        raise UnpackingRefused(f"is not valid snappy ({error}): its producer wrote it wrong") from None
    if declared > _limit:
        raise UnpackingRefused(_too_large())
    try:
        return codec.snappy_decode(payload)
    except cramjam.DecompressionError as error:
        raise UnpackingRefused(f"is not valid snappy ({error}): its producer wrote it wrong") from None


def _snappy_blocks(payload: bytes) -> Iterator[bytes]:
    """The raw snappy blocks of ``payload``: the Java client's xerial framing (a 16-byte header, then blocks each
    after its length), or one raw block."""
    if not codec._detect_xerial_stream(payload):
        yield payload
        return
    at = 16
    while at < len(payload):
        (length,) = struct.unpack_from("!i", payload, at)
        at += 4
        if not 0 <= length <= len(payload) - at:
            # Checked here, as the lengths are summed before anything is unpacked: a negative one would step back.
            raise UnpackingRefused(
                f"is not valid snappy (a block of {length:,} bytes at byte {at - 4:,}): its producer wrote it wrong"
            )
        yield payload[at : at + length]
        at += length


def _too_large() -> str:
    return (
        f"unpacks to more than {_mib(_limit)} (the bound: twice KAFKA_MAX_MESSAGE_BYTES, at least 64 MiB): a"
        " compression bomb, or a producer that batches more than that at once (a larger KAFKA_MAX_MESSAGE_BYTES"
        " raises the bound)"
    )


def _mib(size: int) -> str:
    return f"{size / 1_048_576:,.0f} MiB" if size >= 1_048_576 else f"{size:,} bytes"
