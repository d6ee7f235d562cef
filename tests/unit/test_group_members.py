"""Counting a stage's replicas from Kafka's answer about its consumer group."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import GroupAuthorizationFailedError
from aiokafka.protocol.admin import DescribeGroupsResponse_v2

from newsflow_cli.status import group_members

_LOADING, _NOT_ALLOWED = 14, 30  # Kafka's error codes: COORDINATOR_LOAD_IN_PROGRESS, GROUP_AUTHORIZATION_FAILED


class _Coordinator:
    """Kafka's answers to DescribeGroups, one per ask, as the broker encodes them."""

    def __init__(self, *answers: tuple[int, int]) -> None:
        self.answers = list(answers)
        self.asked = 0

    async def find_coordinator(self, group_id: str) -> int:
        return 1

    async def _send_request(self, request: Any, node: int) -> DescribeGroupsResponse_v2:
        self.asked += 1
        error, members = self.answers.pop(0)
        member = ("member", "client", "/127.0.0.1", b"", b"")
        return DescribeGroupsResponse_v2(0, [(error, "g", "Stable", "consumer", "range", [member] * members)])


async def test_a_coordinator_still_loading_is_asked_again_not_read_as_no_replicas() -> None:
    # A broker that has just restarted answers "loading" with no members: read as 0, `run` saw no pipeline there.
    kafka = _Coordinator((_LOADING, 0), (_LOADING, 0), (0, 2))
    assert await group_members(kafka, ["g"]) == {"g": 2}  # type: ignore[arg-type]
    assert kafka.asked == 3


async def test_an_error_that_asking_again_does_not_mend_is_raised() -> None:
    with pytest.raises(GroupAuthorizationFailedError):
        await group_members(_Coordinator((_NOT_ALLOWED, 0)), ["g"])  # type: ignore[arg-type]
