"""What `newsflow process` says of the inputs still waiting (cli/newsflow_cli/processing.py)."""

from __future__ import annotations

import pytest

from newsflow_cli import processing
from newsflow_cli.inputs import Input
from newsflow_cli.processing import Answers, describe_waiting
from newsflow_shared import ServiceSettings


async def test_a_stage_whose_lag_cannot_be_read_is_unknown_not_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stage whose input topic the lag reader cannot see has no reading: it read 0 before, as if nothing waited."""

    async def lag(settings: ServiceSettings) -> dict[str, int]:
        return {"ingest": 0, "cleanup": 2, "storage": 0}

    monkeypatch.setattr(processing, "stage_lag", lag)
    state = Answers([Input("a.json", b"{}"), Input("b.json", b"{}")])
    state.waiting_at[state.inputs[0].trace_id] = "classify"
    line = await describe_waiting(ServiceSettings(), state)
    assert line.startswith("waiting for 2 of 2: 1 at classify (a.json); 1 at ingest, its lag 0 (b.json)")
    assert line.endswith("; lag by stage: ingest 0, cleanup 2, classify unknown, storage 0")
