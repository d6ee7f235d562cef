"""A batch's shares classified at once, each in a thread of its own with its own torch threads.

Why not one model call with a thread per core: the threads of one call meet at a barrier after every kernel, and
the one that arrives first waits. A bf16 kernel is short, so the waits weigh: on a 2-core AMX CPU one call of two
threads cost 7-15 % more CPU per article than two processes of one thread each (bench/HISTORY.md, session 16).
Two calls of one thread each in one process never wait for each other, as two processes would not, and they share
one copy of the weights, where a second replica loads its own (~1.2 GB). ATen's and oneDNN's kernels (the matrix
products, most of the time) run without the GIL; the compiler's fused kernels hold it, and the measured rates
(bench/classify.py, the service's way beside two processes) include what that costs.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

T = TypeVar("T")

# A share smaller than this would be too small a batch for the matrix kernels to run at their speed: on a machine
# with many cores, calls get more threads each rather than fewer articles each.
FEWEST_ARTICLES_A_SHARE = 16

# torch's own count (a thread per core, or OMP_NUM_THREADS), read before anything here sets it: a second plan in the
# same process (a benchmark's, a test's) would otherwise start from the first one's share.
TORCH_DEFAULT_THREADS = torch.get_num_threads()


@dataclass(frozen=True)
class WorkerPlan:
    """How a replica's ``threads`` are shared out: ``workers`` model calls at once of ``threads_each`` torch threads."""

    workers: int
    threads_each: int
    threads: int

    @classmethod
    def choose(cls, *, threads: int, workers: int, batch: int, device: torch.device) -> WorkerPlan:
        """``threads`` 0 is one per core (torch's own count), ``workers`` 0 is automatic: on a CPU as many calls as
        divide the threads evenly (no core left idle), up to one per thread and while each still gets
        ``FEWEST_ARTICLES_A_SHARE`` of a full batch; on a GPU one call, which the device runs in its own order anyway.
        Never more calls than threads: on Kubernetes the threads are the CPU limit, and more would be throttled."""
        threads = threads or TORCH_DEFAULT_THREADS
        if not workers:
            most = 1 if device.type != "cpu" else max(1, min(threads, batch // FEWEST_ARTICLES_A_SHARE))
            workers = max(count for count in range(1, most + 1) if threads % count == 0)
        workers = min(workers, threads)
        return cls(workers=workers, threads_each=max(1, threads // workers), threads=threads)


def shares(count: int, workers: int, sizes: Sequence[int]) -> list[list[int]]:
    """Indexes of ``count`` items dealt to at most ``workers`` shares, longest first by ``sizes``: each share gets
    as much text as the others, and texts of like length, which pad little in the model's batches."""
    order = sorted(range(count), key=lambda i: -sizes[i])
    return [order[k::workers] for k in range(min(workers, count))]


class BatchWorkers(Generic[T]):
    """Calls ``classify`` on a batch's shares at once and gives back one result per item, in the batch's order.

    The calling thread takes the first share itself, so ``workers`` calls run with ``workers - 1`` threads here.
    It returns (or raises the first share's error) only once every share is done, so that the next batch never
    overlaps this one.
    """

    def __init__(self, classify: Callable[[list[str]], list[T]], workers: int) -> None:
        self.classify = classify
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers - 1, thread_name_prefix="newsflow-model") if workers > 1 else None

    def __call__(self, texts: list[str]) -> list[T]:
        parts = shares(len(texts), self.workers, [len(text) for text in texts])
        if self._pool is None or len(parts) < 2:
            return self.classify(texts)
        # Each thread in the caller's context: what it bound for its log lines (the service's name) holds there too.
        others: list[Future[list[T]]] = [
            self._pool.submit(contextvars.copy_context().run, self.classify, [texts[i] for i in part])
            for part in parts[1:]
        ]
        try:
            first = self.classify([texts[i] for i in parts[0]])
        finally:
            wait(others)
        results: list[T | None] = [None] * len(texts)
        for part, found in zip(parts, [first, *(future.result() for future in others)], strict=True):
            for index, result in zip(part, found, strict=True):
                results[index] = result
        return results  # type: ignore[return-value]

    def close(self) -> None:
        """Let the threads go; call it only once no batch is running (a share cancelled here would fail its batch)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
