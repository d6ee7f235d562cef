"""A batch's shares classified at once (CLASSIFY_WORKERS): how the threads are shared out, that the shares run
together and come back in the batch's order, that an error waits for the other shares, and that the shipped model
gives the same topics either way."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
import torch

from newsflow_classify import loader
from newsflow_classify.loader import load_classifier, worker_plan
from newsflow_classify.settings import ClassifySettings
from newsflow_classify.workers import TORCH_DEFAULT_THREADS, BatchWorkers, WorkerPlan, shares

CPU, GPU = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(
    ("threads", "workers", "batch", "device", "expected"),
    [
        (2, 0, 64, CPU, (2, 1)),  # our 2-core machines: two calls of one thread
        (16, 0, 64, CPU, (4, 4)),  # many cores: each call keeps 16 articles of a full batch, with more threads
        (2, 0, 16, CPU, (1, 2)),  # small batches: one call of every thread
        (1, 0, 64, CPU, (1, 1)),
        (2, 1, 64, CPU, (1, 2)),  # CLASSIFY_WORKERS=1: the whole batch in one call of a thread per core
        (3, 2, 64, CPU, (2, 1)),
        (6, 0, 64, CPU, (3, 2)),  # calls that divide the threads evenly: four of one would leave two cores idle
        (7, 0, 64, CPU, (1, 7)),
        (2, 4, 64, CPU, (2, 1)),  # never more calls than threads: on Kubernetes they are the CPU limit
        (8, 0, 64, GPU, (1, 8)),  # the device orders its own work
    ],
)
def test_the_plan_shares_the_threads_out(
    threads: int, workers: int, batch: int, device: torch.device, expected: tuple[int, int]
) -> None:
    plan = WorkerPlan.choose(threads=threads, workers=workers, batch=batch, device=device)
    assert (plan.workers, plan.threads_each) == expected
    assert plan.workers * plan.threads_each <= threads


def test_the_plan_starts_from_torchs_own_count_whatever_was_set_since() -> None:
    torch.set_num_threads(1)  # as loading a classifier leaves it (the conftest gives it back)
    plan = worker_plan(ClassifySettings(classify_workers=1, classify_device="cpu"))
    assert plan.threads_each == plan.threads == TORCH_DEFAULT_THREADS


def test_loading_uses_every_thread_and_leaves_each_call_its_share(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ClassifySettings(classify_compile="off", classify_precision="fp32", classify_threads=2)
    plan = worker_plan(settings)
    assert (plan.workers, plan.threads_each) == (2, 1)
    seen: list[int] = []
    real = loader._load

    def load_and_count(settings: ClassifySettings, call_threads: int) -> object:
        seen.append(torch.get_num_threads())
        assert call_threads == 1  # what the compiling thread builds its kernels for
        return real(settings, call_threads)

    monkeypatch.setattr(loader, "_load", load_and_count)
    load_classifier(settings, plan)
    assert seen == [2]
    assert torch.get_num_threads() == 1
    threads_in_a_new_thread: list[int] = []
    worker = threading.Thread(target=lambda: threads_in_a_new_thread.append(torch.get_num_threads()))
    worker.start()
    worker.join()
    assert threads_in_a_new_thread == [1]  # the model calls' threads, and the compiling one, start with their share


def test_shares_deal_every_item_once_longest_first() -> None:
    sizes = [5, 1, 9, 3, 7, 2, 8]
    parts = shares(len(sizes), 3, sizes)
    assert sorted(i for part in parts for i in part) == list(range(len(sizes)))
    assert parts == [[2, 0, 1], [6, 3], [4, 5]]  # dealt in turn from the longest: 9 8 7 5 3 2 1
    assert shares(2, 4, [1, 1]) == [[0], [1]]  # fewer items than workers: no empty share
    assert shares(0, 2, []) == []


def test_shares_run_at_once_and_come_back_in_the_batchs_order() -> None:
    together = threading.Barrier(2, timeout=5)  # breaks unless both shares are inside classify at the same time
    threads: set[str] = set()

    def classify(texts: list[str]) -> list[str]:
        threads.add(threading.current_thread().name)
        together.wait()
        return [text.upper() for text in texts]

    workers = BatchWorkers(classify, 2)
    texts = ["a", "bbbb", "cc", "ddd", "eeeee"]
    assert workers(texts) == [text.upper() for text in texts]
    assert len(threads) == 2
    workers.close()


def test_a_failing_share_raises_only_once_the_others_are_done() -> None:
    finished: list[str] = []

    def classify(texts: list[str]) -> list[str]:
        if any(text.startswith("bad") for text in texts):
            raise ValueError("the model failed on this share")
        time.sleep(0.3)
        finished.extend(texts)
        return texts

    workers = BatchWorkers(classify, 2)
    # The longest text is the calling thread's share: it fails at once, while the pool's share takes 0.3 s.
    with pytest.raises(ValueError, match="failed on this share"):
        workers(["bad, and the longest text", "ok"])
    assert finished == ["ok"]  # waited for: the next batch never overlaps this one
    # The pool's share fails; the calling thread's share is classified all the same.
    with pytest.raises(ValueError, match="failed on this share"):
        workers(["fine, and the longest text", "bad"])
    assert finished == ["ok", "fine, and the longest text"]
    workers.close()


def test_one_worker_calls_straight_through() -> None:
    calls: list[list[str]] = []
    workers = BatchWorkers(lambda texts: calls.append(texts) or texts, 1)
    assert workers(["x", "y"]) == ["x", "y"]
    assert calls == [["x", "y"]]


def test_the_shipped_model_gives_the_same_topics_in_shares_as_in_one_call() -> None:
    settings = ClassifySettings(classify_compile="off", classify_workers=2, classify_precision="fp32")
    classifier = load_classifier(settings)
    texts = [
        f"Story {i}: " + " ".join(["the council voted on the budget for schools and roads"] * (1 + i % 7))
        for i in range(12)
    ] + ["Striker's late double sends United top of the league.", ""]
    alone = classifier.classify(texts)
    workers = BatchWorkers(classifier.classify, 2)
    for _ in range(3):  # the tokenizer and the model called from two threads at once, again and again
        together = workers(texts)
        assert [[t.code for t in topics] for topics in together] == [[t.code for t in topics] for topics in alone]
        for mine, theirs in zip(together, alone, strict=True):
            assert [t.score for t in mine] == pytest.approx([t.score for t in theirs], abs=1e-3)
    workers.close()


def test_the_plan_asks_for_the_device_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Timing bf16 against fp32 belongs under the replica's threads, which the plan is what sets."""
    from newsflow_classify import model

    def no_timing() -> float:
        raise AssertionError("the plan timed the precisions")

    monkeypatch.setattr(model, "bf16_speedup", no_timing)
    model.bf16_pays_off.cache_clear()
    try:
        assert worker_plan(ClassifySettings(classify_device="cpu")).workers >= 1
    finally:
        model.bf16_pays_off.cache_clear()


def test_the_service_lets_its_model_threads_go_when_it_closes() -> None:
    """The pool of the model calls' threads was never shut down: each start of the app in a process left one."""
    from newsflow_classify.app import Classify

    service = Classify(ClassifySettings(), stage=None)  # type: ignore[arg-type] - the stage is not used here
    service.use(SimpleNamespace(classify=lambda texts: texts), workers=2)  # type: ignore[arg-type]
    assert service.workers is not None
    assert service.workers(["a", "bb"]) == ["a", "bb"]
    pool = service.workers._pool
    assert pool is not None
    threads = list(pool._threads)
    assert threads
    assert all(thread.is_alive() for thread in threads)
    service.close()
    for thread in threads:
        thread.join(timeout=5)
    assert not any(thread.is_alive() for thread in threads)
