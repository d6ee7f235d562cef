"""A consumed record as the stages see it: its headers, and the trace id it is given when its producer set none."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from newsflow_shared import TRACE_HEADER, Delivery
from newsflow_shared.delivery import trace_id_of


def record(offset: int, headers: list[tuple[str, bytes]] | None = None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="articles.raw",
        partition=2,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"{}",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=2,
        headers=headers or [],
    )


def test_a_record_without_a_trace_id_gets_one_from_where_it_sits_the_same_on_every_delivery() -> None:
    first, again, next_one = (Delivery.from_record(record(offset)) for offset in (41, 41, 42))
    assert first.trace_id == again.trace_id == trace_id_of("articles.raw", 2, 41)
    assert next_one.trace_id != first.trace_id
    assert len(first.trace_id or "") == 32


def test_a_producer_s_trace_id_is_kept_and_odd_header_bytes_are_read() -> None:
    delivery = Delivery.from_record(record(7, [(TRACE_HEADER, b"wire-123"), ("x-binary", b"\xff\x00")]))
    assert delivery.trace_id == "wire-123"
    assert delivery.headers["x-binary"] == "\ufffd\x00"
