"""Records whose header names are not UTF-8 are read, not left to stop a partition and lose others' records.

Kafka's protocol says a header name is a UTF-8 string, but only the Java client makes sure: librdkafka and kcat send
any bytes. aiokafka's record parser decodes the name strictly, while iterating a fetched batch, so one such record
raised ``UnicodeDecodeError`` out of ``getmany``, before any handler of ours could see it:

- FastStream's fetch loop ends on anything but a ``KafkaError``; its supervisor starts it again at the same offset,
  and the partition never moves on.
- aiokafka had already moved its position past the records it took from other partitions in that call, and from the
  same partition before the bad record: they were never handed to a handler, and the next commit skipped them.

So where the fast parser refuses a batch, this one reads that batch again with aiokafka's own pure-Python parser,
whose header names decode with U+FFFD in place of bytes that are not UTF-8. Every record comes through; the first
odd name of a batch is logged with its offset (aiokafka does not tell the records their partition). The fast parser
reads every other batch, as before.

A batch that :mod:`.unpacking` refused to unpack (a compression bomb, or not valid compressed data) comes through as
one record at its last offset whose value is an empty :class:`UnreadBatch` saying why: the stage dead-letters it, and
commits past the batch.

:func:`read_every_header_name` installs it in aiokafka's fetcher, for every consumer in the process: the services'
brokers (:func:`.make_broker`) and the command's consumers (:func:`.kafka_clients.consumer`) call it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, SupportsIndex

from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import _DefaultRecordBatchPy
from aiokafka.record.memory_records import _MemoryRecordsPy

from .unpacking import UnpackingRefused

log = logging.getLogger(__name__)

_MAGIC_OFFSET = 16  # base offset (8), batch length (4), leader epoch (4): then the magic byte


class ReadableRecords(_MemoryRecordsPy):  # type: ignore[misc]  # aiokafka marks it final; the framing is all we add
    """A partition's fetched bytes, as aiokafka's ``MemoryRecords``: its own slicing into batches (the fast batch
    class reads each), each batch's bytes kept for the tolerant parser."""

    def next_batch(self, *args: Any, **kwargs: Any) -> Any:
        raw = self._next_slice
        batch = super().next_batch(*args, **kwargs)
        if raw is None or batch is None or raw[_MAGIC_OFFSET] < 2:
            return batch  # the legacy formats have no headers
        return _ReadOnBatch(batch, raw)


class _ReadOnBatch:
    """One record batch read by the fast parser, and again by the tolerant one from where it refused a header name."""

    def __init__(self, batch: Any, raw: memoryview) -> None:
        self._batch = batch
        self._raw = raw
        self._records: Iterator[Any] | None = None

    def __getattr__(self, name: str) -> Any:  # base_offset, validate_crc, is_control_batch, next_offset, ...
        return getattr(self._batch, name)

    def __iter__(self) -> Iterator[Any]:
        # The generator itself, not this object: a method call less for each record the fetcher reads.
        return self._records if self._records is not None else self._each_record()

    def __next__(self) -> Any:  # aiokafka takes a control batch's one record with next()
        if self._records is None:
            self._records = self._each_record()
        return next(self._records)

    def _each_record(self) -> Iterator[Any]:
        read = 0
        try:
            for record in self._batch:
                read += 1
                yield record
        except UnpackingRefused as refused:  # raised before the first record: the batch is unpacked whole first
            yield _StandIn(self._batch, len(self._raw), refused.problem)
        except (UnicodeDecodeError, CorruptRecordException) as refused:
            # aiokafka's compiled parser raises the decoding error; its pure-Python one (AIOKAFKA_NO_EXTENSIONS, or
            # no wheel for the platform) wraps it in CorruptRecordException. A batch corrupt otherwise is Kafka's.
            error = refused if isinstance(refused, UnicodeDecodeError) else refused.__cause__
            if not isinstance(error, UnicodeDecodeError):
                raise
            # The fast parser cannot go on in this batch: read it again, and skip the records already given.
            tolerant = _TolerantBatch(self._raw)
            for index, record in enumerate(tolerant):
                if index < read:
                    continue
                if index == read:
                    log.warning(
                        "a record header's name is not UTF-8 (%s), at offset %d of batch %d: read with U+FFFD",
                        error.reason,
                        record.offset,
                        tolerant.base_offset,
                    )
                yield record


class UnreadBatch(bytes):
    """The value of the one record that stands for a record batch that was not unpacked (:mod:`.unpacking`): empty,
    with ``reason`` saying which records it held and why they were not read, and the batch's ``packed_size`` in
    bytes. No producer can send one."""

    reason: str
    packed_size: int

    def __new__(cls, reason: str, packed_size: int) -> UnreadBatch:
        unread = super().__new__(cls)
        unread.reason, unread.packed_size = reason, packed_size
        return unread


class _StandIn:
    """A record in place of a batch that was not unpacked, at the batch's last offset: its records are passed over
    and committed like any the stage answered, once it dead-lettered this one."""

    key = None
    checksum = None
    headers: tuple[()] = ()

    def __init__(self, batch: Any, size: int, problem: str) -> None:
        first, last = batch.base_offset, batch.next_offset - 1
        codec = _CODECS.get(batch.compression_type, f"codec {batch.compression_type}")
        offsets = f"offset {first}" if first == last else f"offsets {first}-{last}"
        self.offset = last
        self.timestamp = batch.max_timestamp
        self.timestamp_type = batch.timestamp_type
        self.value = UnreadBatch(
            f"the record batch at {offsets} ({last - first + 1:,} record(s), {size:,} bytes {codec}-compressed)"
            f" {problem}. Its records were not read; they stay in the topic at {offsets} until its retention ends",
            size,
        )


_CODECS = {1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


class _TolerantBatch(_DefaultRecordBatchPy):  # type: ignore[misc]
    """aiokafka's pure-Python batch parser, its header names decoded with U+FFFD for bytes that are not UTF-8."""

    def _maybe_uncompress(self) -> None:
        super()._maybe_uncompress()  # a compressed batch's records replace the buffer
        if not isinstance(self._buffer, _LenientBuffer):
            self._buffer = _LenientBuffer(self._buffer)


class _LenientBuffer(bytearray):
    """The parser slices a header name out of its buffer and calls ``.decode("utf-8")`` on the slice: here the slice
    decodes leniently. Keys, values and header values are copied to ``bytes`` as they are."""

    def __getitem__(self, index: SupportsIndex | slice) -> Any:  # type: ignore[override]
        taken = super().__getitem__(index)
        return _LenientBytes(taken) if isinstance(index, slice) else taken


class _LenientBytes(bytes):
    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes.decode(self, encoding, "replace")


def read_every_header_name() -> None:
    """Make aiokafka's fetcher read fetched bytes through :class:`ReadableRecords` (once; later calls change
    nothing)."""
    fetcher.MemoryRecords = ReadableRecords  # type: ignore[misc,assignment]
