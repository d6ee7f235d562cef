"""The per-record CPU budget charges the record's own work, not a model loaded once in another thread."""

from __future__ import annotations

import os
import threading
import time

from newsflow_shared.budget import BudgetedWorker, WorkerDied
from newsflow_shared.errors import OverBudget


def no_state() -> None:
    return None


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds  # this process's CPU: the spin below runs alone in it
    while time.process_time() < end:
        pass


def burn_here(_state: None, seconds: float) -> str:
    _burn(seconds)
    return "done"


def burn_aside(_state: None, seconds: float) -> str:
    """What a lazily loaded model does: the CPU is spent in a thread of its own while the record waits."""
    loader = threading.Thread(target=_burn, args=(seconds,))
    loader.start()
    loader.join()
    return "done"


def test_work_over_budget_is_stopped_with_a_reason() -> None:
    worker = BudgetedWorker(no_state, burn_here, cpu_seconds=0.5, name="cleanup")
    try:
        [outcome] = worker.map([3.0])
        assert isinstance(outcome, OverBudget)
        assert "CLEANUP_RECORD_CPU_SECONDS" in str(outcome)
        assert worker.map([0.0]) == ["done"]  # a fresh child serves the next record
    finally:
        worker.close()


def burn_or_die(_state: None, seconds: float) -> str:
    if seconds < 0:
        os._exit(3)  # what a crash in native code looks like from outside
    _burn(seconds)
    return f"burnt {seconds}"


def test_one_record_stopped_mid_batch_fails_alone_and_the_rest_are_done_in_order() -> None:
    """The whole batch goes to the child at once; each record still gets the budget to itself."""
    worker = BudgetedWorker(no_state, burn_or_die, cpu_seconds=0.5, name="cleanup")
    try:
        outcomes = worker.map([0.3, 0.3, 3.0, 0.3, -1.0, 0.0])
        assert outcomes[:2] == ["burnt 0.3", "burnt 0.3"]  # 0.6 s together: only each record's own share counts
        assert isinstance(outcomes[2], OverBudget)
        assert outcomes[3] == "burnt 0.3"
        assert isinstance(outcomes[4], WorkerDied)
        assert "exit code 3" in str(outcomes[4]) or "EOFError" in str(outcomes[4])
        assert outcomes[5] == "burnt 0.0"
    finally:
        worker.close()


def test_a_load_done_aside_is_not_charged_to_the_record() -> None:
    worker = BudgetedWorker(no_state, burn_aside, cpu_seconds=0.5, name="cleanup")
    try:
        assert worker.map([1.5]) == ["done"]
    finally:
        worker.close()


def test_short_headline_first_is_not_over_budget_while_lingua_loads() -> None:
    """A slower CPU spent ~10 s loading lingua's models on the first headline, charged to it: dead-lettered."""
    from newsflow_cleanup.settings import CleanupSettings
    from newsflow_cleanup.worker import cleanup_worker
    from newsflow_shared import CleanArticle, IngestedArticle

    settings = CleanupSettings(cleanup_record_cpu_seconds=2.0)  # the default candidates: ~10 s to load
    worker = cleanup_worker(settings)
    headline = IngestedArticle(id="a-1", text="The home side won the derby 2-1 on Sunday.", content_hash="0" * 64)
    try:
        [outcome] = worker.map([headline.model_dump_json().encode()])
        assert isinstance(outcome, CleanArticle), outcome
        assert outcome.language == "en"
    finally:
        worker.close()


def test_each_record_is_reported_done_as_it_comes_back_not_when_the_batch_ends() -> None:
    """A batch of records that each use most of their budget takes many minutes: cleanup's liveness hears of every
    record done, so such a batch is not taken for a stuck one and restarted for ever."""
    worker = BudgetedWorker(no_state, burn_or_die, cpu_seconds=0.5, name="cleanup")
    try:
        worker.map([0.0])  # the child's start is not part of what is timed
        reported: list[float] = []
        started = time.monotonic()
        outcomes = worker.map([0.0, 0.0, 3.0], on_progress=lambda: reported.append(time.monotonic()))
        ended = time.monotonic()
        assert isinstance(outcomes[2], OverBudget)
        assert len(reported) >= 3
        assert (
            reported[0] - started < (ended - started) / 2
        )  # the quick records were heard of before the slow one ended
    finally:
        worker.close()
