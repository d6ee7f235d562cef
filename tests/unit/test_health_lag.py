"""How a probe counts lag without waiting behind the consumer's held fetch."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from newsflow_shared.health import _consumer_lag

A, B = TopicPartition("in", 0), TopicPartition("in", 1)


class HeldFetchConsumer:
    """A consumer whose broker requests on the fetch's connection wait behind a held fetch: counted, not waited."""

    def __init__(self) -> None:
        self.asked_for_beginnings = 0
        self.asked_for_ends = 0

    def assignment(self) -> set[TopicPartition]:
        return {A, B}

    def highwater(self, tp: TopicPartition) -> int | None:
        return {A: 10, B: 7}[tp]

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.asked_for_ends += 1
        return {tp: 0 for tp in partitions}

    async def committed(self, tp: TopicPartition) -> int | None:
        return {A: 4, B: None}[tp]  # B: the group has committed nothing there yet

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.asked_for_beginnings += 1
        return {tp: 2 for tp in partitions}


def test_lag_counts_from_the_first_offset_where_nothing_is_committed_and_asks_for_it_once() -> None:
    consumer = HeldFetchConsumer()
    for _ in range(3):
        assert asyncio.run(_consumer_lag(consumer)) == {("in", 0): 6, ("in", 1): 5}
    assert consumer.asked_for_beginnings == 1
    assert consumer.asked_for_ends == 0  # the fetch responses' high watermarks serve
