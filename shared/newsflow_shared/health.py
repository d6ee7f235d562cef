"""What a stage's probes answer: is its consumer alive and moving, and can it do its work?

Liveness fails only when restarting helps: the consume loop ended, or the stage has records waiting and has
not started or finished a batch (or, in cleanup, a record of one) for ``HEALTH_STALL_SECONDS`` (a handler blocked
for good). A dependency that is
down (the database, a send to Kafka) fails batches, and a failing batch is still a consumer that moves: it backs
off and tries again, and restarting would only add a loop of restarts to the outage. That shows in readiness
instead: ready means Kafka answers, the consumer joined its group, and the last batch did not fail.

Lag is read on demand (a probe or a scrape), at most once a second: the end offset of each partition this
replica was assigned (its high watermark, as the consumer's last fetch saw it) minus its group's committed offset,
the records a restart would have to handle again. A probe waits at most ``PROBE_WAITS_FOR_LAG`` for that read and
then answers with the last lag it knows, so Kafka's pace never times a probe out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from faststream.kafka import KafkaBroker

from .delivery import Delivery
from .metrics import StageMetrics
from .settings import ServiceSettings

log = logging.getLogger(__name__)
# Set once liveness has failed past HEALTH_EXIT_AFTER_S and the process stops itself: it then exits 1, not 0.
gave_up = threading.Event()
_MOST_SECONDS_BETWEEN_PROBES = 60.0

__all__ = ["StageWatch", "Verdict", "watch_of"]

_watches: weakref.WeakKeyDictionary[KafkaBroker, StageWatch] = weakref.WeakKeyDictionary()

# How long a probe waits for Kafka's answer about the lag before it answers with the last one it knows: well inside
# the 3 s an image's HEALTHCHECK gives the whole probe, Python's start included.
PROBE_WAITS_FOR_LAG = 0.5


def watch_of(broker: KafkaBroker) -> StageWatch | None:
    """The watch of the stage consuming with ``broker``: how service.py finds it without the services passing it."""
    return _watches.get(broker)


@dataclass
class Verdict:
    """A probe's answer: healthy when there are no problems, each one a sentence."""

    problems: list[str] = field(default_factory=list)
    lag: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "failing", "problems": self.problems, "lag": self.lag}


class StageWatch:
    """Follows one stage's batches and consumer; answers liveness and readiness; keeps the lag gauge."""

    def __init__(self, broker: KafkaBroker, settings: ServiceSettings, metrics: StageMetrics) -> None:
        self.broker = broker
        self.settings = settings
        self.metrics = metrics
        self.subscribers: list[Any] = []
        # Side readers (ingest's and storage's of the DLQ), by the name their metrics carry as `stage`: their lag
        # and progress are exported, and a loop that ended fails liveness, but they are not the stage's own lag.
        self.side: dict[str, Any] = {}
        self._side_lag: dict[str, dict[tuple[str, int], int]] = {}
        self.last_activity = time.time()
        self.failing: str | None = None
        # Why the consumers have not started, while the service serves without them (storage, Kafka away).
        self.not_consuming: str | None = None
        self.lag: dict[tuple[str, int], int] = {}
        self.lag_known = False
        self._refreshed_at = 0.0
        self._failing_since: float | None = None
        self._last_asked = -math.inf
        self._consuming = False
        self._reading: asyncio.Task[None] | None = None
        if broker is not None:  # tests and benchmarks run stages without a broker
            _watches[broker] = self

    def attach(self, subscriber: Any) -> None:
        """Watch ``subscriber`` (FastStream's Kafka subscriber: its aiokafka consumer and consume-loop task)."""
        self.subscribers.append(subscriber)

    def attach_side(self, name: str, subscriber: Any) -> None:
        """Watch a side reader: its lag and last progress under ``name`` (``<stage>-<reader>``), its loop alive."""
        self.side[name] = subscriber
        self.side_progressed(name)

    def side_progressed(self, name: str) -> None:
        self.metrics.last_progress.labels(name).set(time.time())

    # Hooks called by Stage around each batch.

    def batch_started(self) -> float:
        self.metrics.activate()
        self.last_activity = time.time()
        return time.perf_counter()

    def record_done(self) -> None:
        """A record of a batch in hand is done (called from any thread): a long batch that moves is not stuck, to
        liveness or to the stuck alert (cleanup's batch of slow pages may take many minutes to commit). Not while the
        batch is being tried again after a failure: its records done then are the same ones again, and a cleanup
        retrying for ever against a database that is down must still read as stuck."""
        self.last_activity = time.time()
        if self.failing is None:
            self.metrics.progressed()

    def batch_failed(self, error: BaseException, retry_in: float = 0.0) -> None:
        # Waiting out a back-off is the stage at work, not stuck: the stall clock starts when the retry is due. An
        # outage of the database or Kafka fails readiness, never liveness (a restart would not bring them back).
        self.last_activity = time.time() + retry_in
        self.failing = f"{type(error).__name__}: {error}"[:300]

    def batch_succeeded(self, deliveries: list[Delivery], outputs: Iterable[object], started: float) -> None:
        self.last_activity = time.time()
        self.failing = None
        replayed = {d.key.decode("utf-8", "replace") for d in deliveries if d.is_replay and d.key}
        self.metrics.count(outputs, self.settings.topics, replayed=replayed)
        self.metrics.batch(len(deliveries), time.perf_counter() - started)
        self.metrics.progressed()

    # What probes and scrapes read.

    async def refresh_lag(self, *, max_age: float = 1.0, wait: float = PROBE_WAITS_FOR_LAG) -> bool:
        """Read the lag anew when it is older than ``max_age``; False while Kafka has not answered.

        A probe waits ``wait`` seconds for the read and then answers with the lag it last knew: the read goes on for
        the next probe. Until a fresh consumer's first fetch comes back, a partition's end offset is asked on that
        fetch's connection and waits behind it (``KAFKA_FETCH_MAX_WAIT_MS``), longer than a probe's timeout.
        """
        consumers = self._consumers()
        self.metrics.consumers_started.labels(self.metrics.stage).set(1 if consumers else 0)
        if not consumers:
            # Nothing to read yet (a model loading, Kafka away at storage's start): unknown, and not progress. Read
            # as "caught up", a storage that never started consuming kept its progress clock fresh, and no alert saw
            # it.
            return False
        if not self._consuming:
            # The stall clock starts when the consumer does, not while the lifespan loaded a model.
            self._consuming = True
            self.last_activity = max(self.last_activity, time.time())
        reading = self._reading
        if (reading is None or reading.done()) and time.monotonic() - self._refreshed_at >= max_age:
            reading = self._reading = asyncio.create_task(self._read_lag(consumers))
        if reading is not None and not reading.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reading), wait)
        return self.lag_known

    async def _read_lag(self, consumers: list[Any]) -> None:
        try:
            lag: dict[tuple[str, int], int] = {}
            for consumer in consumers:
                lag.update(await asyncio.wait_for(_consumer_lag(consumer), timeout=5.0))
        except Exception:
            self.lag_known = False
            return
        finally:
            self._refreshed_at = time.monotonic()
        # Before the stage's own is published: a scrape that shows the stage's lag shows its side readers' too.
        await self._read_side_lag()
        self._publish_lag(self.metrics.stage, lag, self.lag)
        self.lag, self.lag_known = lag, True
        if not any(lag.values()):
            # Caught up is progress too: an idle stage is not a stuck one.
            self.last_activity = time.time()
            self.metrics.progressed()

    async def _read_side_lag(self) -> None:
        """The side readers' lag as gauges of their own name; one that is caught up has made progress."""
        for name, subscriber in self.side.items():
            if (consumer := getattr(subscriber, "consumer", None)) is None:
                continue
            try:
                lag = await asyncio.wait_for(_consumer_lag(consumer), timeout=5.0)
            except Exception:
                continue  # unknown this time: the gauges keep their last reading
            self._publish_lag(name, lag, self._side_lag.get(name, {}))
            self._side_lag[name] = lag
            if not any(lag.values()):
                self.side_progressed(name)

    def _publish_lag(self, name: str, lag: dict[tuple[str, int], int], before: dict[tuple[str, int], int]) -> None:
        """The gauges of ``name`` to ``lag``; a partition no longer assigned to this replica loses its series."""
        for topic, partition in set(before) - set(lag):
            with contextlib.suppress(KeyError):
                self.metrics.lag.remove(name, topic, str(partition))
        for (topic, partition), behind in lag.items():
            self.metrics.lag.labels(name, topic, str(partition)).set(behind)

    async def liveness(self) -> Verdict:
        verdict = Verdict()
        for subscriber in [*self.subscribers, *self.side.values()]:
            if any(task.done() for task in getattr(subscriber, "tasks", ())):
                verdict.problems.append(
                    f"the consume loop of {getattr(subscriber, 'title_', None) or 'a subscriber'} has ended"
                )
        if await self.refresh_lag():
            verdict.lag = self._lag_json()
            idle_for = time.time() - self.last_activity
            behind = sum(self.lag.values())
            if behind and idle_for > self.settings.health_stall_seconds:
                verdict.problems.append(
                    f"{behind} records wait and no batch started or finished for {idle_for:.0f}s "
                    f"(HEALTH_STALL_SECONDS={self.settings.health_stall_seconds:g})"
                )
        self._stop_when_failing_too_long(verdict)
        return verdict

    def _stop_when_failing_too_long(self, verdict: Verdict) -> None:
        """Stop the process (SIGTERM to itself: a clean stop, then exit 1) once liveness has failed for
        ``HEALTH_EXIT_AFTER_S``: Kubernetes restarts a replica whose probe fails, but Docker Compose only marks it
        unhealthy and its restart policy waits for the process to exit, so a blocked replica sat there for ever."""
        now = time.monotonic()
        asked_before, self._last_asked = self._last_asked, now
        # Failing all along is what the probes saw, one every 10 s: two failures a long silence apart (a person's
        # curl of storage's /health, no probe running) say nothing of the time between.
        if not verdict.problems or now - asked_before > _MOST_SECONDS_BETWEEN_PROBES:
            self._failing_since = None
        if not verdict.problems:
            return
        self._failing_since = self._failing_since if self._failing_since is not None else now
        after = self.settings.health_exit_after_s
        if after and now - self._failing_since >= after and not gave_up.is_set():
            gave_up.set()
            log.error(
                "liveness has failed for %.0fs (%s): stopping, for the container's restart policy to start it again"
                " (HEALTH_EXIT_AFTER_S=%g)",
                now - self._failing_since,
                "; ".join(verdict.problems),
                after,
            )
            os.kill(os.getpid(), signal.SIGTERM)

    async def readiness(self) -> Verdict:
        verdict = Verdict()
        if self.not_consuming is not None:
            verdict.problems.append(f"the consumers have not started: {self.not_consuming}")
        elif not await self.broker.ping(5.0):
            verdict.problems.append("Kafka does not answer")
        for consumer in self._consumers(include_unstarted=True):
            if consumer is None or not _joined(consumer):
                verdict.problems.append(f"not a member of consumer group {self.settings.group_id(self.metrics.stage)}")
        if not self.subscribers:
            verdict.problems.append("no consumer registered")
        if self.failing:
            verdict.problems.append(f"the last batch failed: {self.failing}")
        if await self.refresh_lag():
            verdict.lag = self._lag_json()
        return verdict

    def _consumers(self, *, include_unstarted: bool = False) -> list[Any]:
        consumers = [getattr(s, "consumer", None) for s in self.subscribers]
        return consumers if include_unstarted else [c for c in consumers if c is not None]

    def _lag_json(self) -> dict[str, int]:
        return {f"{topic}[{partition}]": behind for (topic, partition), behind in sorted(self.lag.items())}


# A partition's first offset moves only when retention deletes a segment: asked for once a minute at most.
_STARTS_FOR_SECONDS = 60.0
_starts: weakref.WeakKeyDictionary[Any, dict[TopicPartition, tuple[int, float]]] = weakref.WeakKeyDictionary()


async def _beginnings(consumer: Any, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """First offsets of ``partitions``, remembered per consumer: asked for on the fetch's connection, each
    question can wait behind a held fetch, so a fresh service's probes would wait on every call."""
    known = _starts.setdefault(consumer, {})
    now = time.monotonic()
    if stale := [tp for tp in partitions if tp not in known or now - known[tp][1] > _STARTS_FOR_SECONDS]:
        for tp, offset in (await consumer.beginning_offsets(stale)).items():
            known[tp] = (offset, now)
    return {tp: known[tp][0] for tp in partitions}


async def _consumer_lag(consumer: Any) -> dict[tuple[str, int], int]:
    """Records behind the end per assigned partition: end offset minus the group's committed offset.

    The end is the high watermark the consumer's last fetch response carried: asking the broker for it would
    queue behind the consumer's held fetch on the same connection, up to ``KAFKA_FETCH_MAX_WAIT_MS``, and a probe
    would wait that long. Only a partition not fetched yet is asked for; where the group has committed nothing,
    the start is the partition's first offset, remembered (:func:`_beginnings`).
    """
    assigned = sorted(consumer.assignment())
    if not assigned:
        return {}
    ends = {tp: end for tp in assigned if (end := consumer.highwater(tp)) is not None}
    if unknown := [tp for tp in assigned if tp not in ends]:
        ends |= await consumer.end_offsets(unknown)
    committed = await asyncio.gather(*(consumer.committed(tp) for tp in assigned))
    uncommitted = [tp for tp, offset in zip(assigned, committed, strict=True) if offset is None]
    starts = await _beginnings(consumer, uncommitted) if uncommitted else {}
    lag: dict[tuple[str, int], int] = {}
    for tp, offset in zip(assigned, committed, strict=True):
        position = offset if offset is not None else starts.get(tp, 0)
        lag[(tp.topic, tp.partition)] = max(0, ends[TopicPartition(tp.topic, tp.partition)] - position)
    return lag


def _joined(consumer: Any) -> bool:
    # aiokafka has no public "joined" flag; its group coordinator's generation turns positive once the group
    # accepted this member (and goes back to -1 when it leaves or is fenced).
    coordinator = getattr(consumer, "_coordinator", None)
    return bool(coordinator is not None and getattr(coordinator, "generation", -1) > 0)
