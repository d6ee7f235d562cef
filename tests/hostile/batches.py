"""Record batches no Kafka client of ours writes, made byte by byte: what a hostile producer can send."""

from __future__ import annotations

import struct
import time

import cramjam
from aiokafka.record.util import calc_crc32c, encode_varint

GZIP, SNAPPY, LZ4, ZSTD = 1, 2, 3, 4
STREAMING = {GZIP: cramjam.gzip.Compressor, LZ4: cramjam.lz4.Compressor, ZSTD: cramjam.zstd.Compressor}
MiB = 1 << 20


def bomb(unpacked: int, *, codec_id: int = ZSTD, base_offset: int = 0, records: int = 1) -> bytes:
    """A valid v2 batch whose first record's value is ``unpacked`` zero bytes (and ``records`` - 1 empty ones after
    it), compressed as it is written: a gigabyte takes a few MB of memory to make, and a few KB of zstd to send (the
    broker takes it: its checks skip over a value while unpacking)."""
    value_length = bytearray()
    encode_varint(unpacked, value_length.append)
    body = bytes([0, 0, 0, 1]) + bytes(value_length)  # attributes, timestamp delta, offset delta, key length -1
    length = bytearray()
    encode_varint(len(body) + unpacked + 1, length.append)  # and the headers' count after the value
    compressor = STREAMING[codec_id]()
    compressor.compress(bytes(length) + body)
    zeros = bytes(min(unpacked, 64 * MiB))
    left = unpacked
    while left:
        compressor.compress(zeros[: min(left, len(zeros))])
        left -= min(left, len(zeros))
    compressor.compress(b"\x00")
    for delta in range(1, records):  # length, attributes, timestamp delta, offset delta, no key, empty value, headers
        offset_delta = bytearray()
        encode_varint(delta, offset_delta.append)
        rest = bytes([0, 0]) + bytes(offset_delta) + bytes([1, 0, 0])
        compressor.compress(bytes([len(rest) * 2]) + rest)  # its length, as a one-byte zigzag varint
    packed = bytes(compressor.finish())
    now = int(time.time() * 1000)  # a broker's retention deletes records stamped older than retention.ms
    after_crc = struct.pack(
        ">hiqqqhii", codec_id, records - 1, now, now, -1, -1, -1, records
    )  # attributes, last offset delta, first and max timestamps, producer id and epoch, base sequence, records
    crc = calc_crc32c(after_crc + packed)
    header = struct.pack(">qiibI", base_offset, 4 + 1 + 4 + len(after_crc) + len(packed), 0, 2, crc)
    return header + after_crc + packed
