"""``newsflow process``: push inputs, wait for each one's answer, and never wait in silence.

While inputs are unanswered it says which and where they wait (the stage and its lag) whenever
nothing has moved for a while; it gives up after ``--timeout`` with a non-zero exit; and when a
service it started dies it says so at once, with the service's last lines, and stops.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from newsflow_shared import ServiceSettings
from newsflow_shared.lag import stage_inputs, stage_lag

from .inputs import Input
from .kafka_io import OutcomeWatcher, producer, push
from .output import show
from .supervisor import Supervisor

EXIT_MISSING = 1
EXIT_SERVICE_DIED = 4


@dataclass
class Answers:
    """What is known of each input: its answer, or the last stage it reached."""

    inputs: list[Input]
    results: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    waiting_at: dict[str, str] = field(default_factory=dict)

    @property
    def unanswered(self) -> list[Input]:
        return [item for item in self.inputs if item.trace_id not in self.results]

    def stage_of(self, item: Input) -> str:
        return self.waiting_at.get(item.trace_id, "ingest")


async def describe_waiting(settings: ServiceSettings, state: Answers) -> str:
    """One paragraph: how many inputs wait, at which stage, that stage's lag, and the first few labels."""
    try:
        lag: dict[str, int] | None = await asyncio.wait_for(stage_lag(settings), 10)
    except Exception:
        lag = None
    by_stage: dict[str, list[Input]] = {}
    for item in state.unanswered:
        by_stage.setdefault(state.stage_of(item), []).append(item)
    parts = []
    for stage, items in by_stage.items():
        lag_text = f", its lag {lag[stage]}" if lag is not None and stage in lag else ""
        # Labels are file names and ids: escaped, as the line is printed as rich markup.
        labels = ", ".join(escape(item.label) for item in items[:3]) + (" …" if len(items) > 3 else "")
        parts.append(f"{len(items)} at {stage}{lag_text} ({labels})")
    lag_line = (
        "; lag by stage: " + ", ".join(f"{s} {lag.get(s, 'unknown')}" for s in stage_inputs(settings))
        if lag is not None
        else ""
    )
    return f"waiting for {len(state.unanswered)} of {len(state.inputs)}: " + "; ".join(parts) + lag_line


async def process_inputs(
    settings: ServiceSettings,
    inputs: list[Input],
    *,
    as_json: bool,
    timeout: float,
    idle_report: float,
    supervisor: Supervisor | None,
    stop: asyncio.Event,
    progress: Progress,
    err: Console,
) -> int:
    """Push ``inputs``, collect their answers, print them; the exit status of ``newsflow process``."""
    state = Answers(inputs)
    by_trace = {item.trace_id: item for item in inputs}
    out = Console()
    task = progress.add_task("processing", total=len(inputs))
    watcher = OutcomeWatcher(settings, progress=True)
    await watcher.start()
    try:
        async with producer(settings) as client:
            summary = await push(client, settings, inputs)
        for failure in summary.failed:
            err.print(f"[red]not sent:[/] {escape(str(failure))}")
        expected = len(inputs) - len(summary.failed)

        async def gather() -> None:
            loop = asyncio.get_running_loop()
            last_answer = last_report = loop.time()
            async for kind, trace, record in watcher.outcomes():
                now = loop.time()
                if trace in by_trace and trace not in state.results:
                    if kind.startswith("waiting:"):
                        state.waiting_at[trace] = kind.removeprefix("waiting:")
                    elif kind != "idle":
                        state.results[trace] = (kind, record)
                        last_answer = now
                        progress.advance(task)
                        if not as_json:
                            progress.console.print()
                            show(out, by_trace[trace].label, kind, record)
                if len(state.results) >= expected:
                    return
                if now - max(last_answer, last_report) >= idle_report:
                    last_report = now
                    progress.console.print(
                        f"nothing answered for {now - last_answer:.0f}s; " + await describe_waiting(settings, state)
                    )

        waits: dict[asyncio.Task[Any], str] = {
            asyncio.create_task(gather()): "done",
            asyncio.create_task(stop.wait()): "stopped",
        }
        if supervisor is not None:
            waits[asyncio.create_task(supervisor.wait_any())] = "died"
        done, pending = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for pending_task in pending:
            pending_task.cancel()
        outcome = waits[done.pop()] if done else "timeout"
    finally:
        await watcher.stop()

    code = 0
    if outcome == "died":
        assert supervisor is not None
        name, exit_code = next(iter(supervisor.exited().items()))
        err.print(f"[red]error:[/] the {name} service exited with code {exit_code}; its last lines:")
        for line in supervisor.last_lines(name)[-15:]:
            err.print(f"  {name} | {line.rstrip()}", markup=False, highlight=False)
        code = EXIT_SERVICE_DIED
    elif outcome == "stopped":
        err.print("stopped by a signal before every input was answered")
        code = EXIT_MISSING
    elif outcome == "timeout":
        err.print(f"[red]gave up after {timeout:.0f}s:[/] " + await describe_waiting(settings, state))
        code = EXIT_MISSING
    _print_results(state, as_json, err)
    return code or (EXIT_MISSING if state.unanswered else 0)


def _print_results(state: Answers, as_json: bool, err: Console) -> None:
    if as_json:
        for item in state.inputs:
            kind, record = state.results.get(item.trace_id, ("missing", {"status": "missing"}))
            if kind in {"stored", "skipped", "unsupported"}:
                record = {"status": kind, **record}
            elif kind == "missing":
                record = {**record, "waiting_at": state.stage_of(item)}
            print(json.dumps({**record, "input": item.label}, ensure_ascii=False), flush=True)
    counts = Counter(kind for kind, _ in state.results.values())
    missing = len(state.unanswered)
    err.print(
        f"{len(state.inputs)} inputs: "
        + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        + (f", {missing} without a result" if missing else "")
    )
