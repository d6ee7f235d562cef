"""Newsflow's own Prometheus metrics: what a stage did with its records, how fast, and how far behind it is.

FastStream's ``KafkaPrometheusMiddleware`` already counts the messages received per topic and times their handling
(stages publish past it, straight to aiokafka: :mod:`.sending`, so they count what they publish here); these add
what only Newsflow knows: the outcome of each record (passed, dead-lettered by error class, skipped, unsupported,
duplicate), batch sizes and times, inference and database time, the consumer's lag and the age of what storage
stores. Every label value is bounded (stage names, topic names, partition numbers, exception class names).

Each stage has its own :class:`StageMetrics` in its own registry, so several stages in one process (tests) never
share a counter.
"""

from __future__ import annotations

import collections
import contextvars
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .contracts import CleanArticle, DeadLetter, StoredArticle

__all__ = ["OUTCOMES", "StageMetrics", "current", "outcome_of"]

R = TypeVar("R")

OUTCOMES = ("passed", "dead_lettered", "skipped", "unsupported", "duplicate")

# Seconds: a batch or a transaction on one core takes milliseconds to a minute.
_TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
# One article through the encoder: a few milliseconds on a GPU, tens to hundreds on a CPU.
_INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)
# From ingest to the database: under a second when idle, minutes to hours behind a backlog.
_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)

_current: contextvars.ContextVar[StageMetrics | None] = contextvars.ContextVar("newsflow_stage_metrics", default=None)


class StageMetrics:
    """The metrics of one stage, registered in ``registry`` (a fresh one by default)."""

    def __init__(self, stage: str, registry: CollectorRegistry | None = None) -> None:
        self.stage = stage
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.lag = Gauge(
            "newsflow_consumer_lag_records",
            "Records behind the end of each partition this replica consumes (end offset minus committed offset).",
            ["stage", "topic", "partition"],
            registry=r,
        )
        self.records = Counter(
            "newsflow_records",
            "Records a stage finished, by outcome; error_class is the dead letter's exception class.",
            ["stage", "outcome", "error_class"],
            registry=r,
        )
        self.published = Counter(
            "newsflow_published_records",
            "Records a stage published (outputs and dead letters) by topic, counted once Kafka acknowledged them.",
            ["stage", "topic"],
            registry=r,
        )
        self.batch_size = Histogram(
            "newsflow_batch_size_records", "Records per handled batch.", ["stage"], buckets=_SIZE_BUCKETS, registry=r
        )
        self.batch_duration = Histogram(
            "newsflow_batch_duration_seconds",
            "Time from receiving a batch to Kafka acknowledging all its outputs.",
            ["stage"],
            buckets=_TIME_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "newsflow_inference_seconds_per_article",
            "Model time of one batch divided by its articles, observed once per article.",
            buckets=_INFERENCE_BUCKETS,
            registry=r,
        )
        self.ingest_to_stored = Histogram(
            "newsflow_ingest_to_stored_seconds",
            "From ingest's received_at to storage's commit, per stored article (replays left out).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.db_write = Histogram(
            "newsflow_db_write_seconds",
            "Duration of each database transaction that wrote, from BEGIN to COMMIT done.",
            ["stage"],
            buckets=_TIME_BUCKETS,
            registry=r,
        )
        self.last_progress = Gauge(
            "newsflow_consumer_last_progress_timestamp_seconds",
            "When the stage last committed a batch or was found caught up (Unix time).",
            ["stage"],
            registry=r,
        )
        self.consumers_started = Gauge(
            "newsflow_consumers_started",
            "1 once the stage's consumers run. Storage serves its API before, while Kafka is away or refuses it.",
            ["stage"],
            registry=r,
        )
        self.consumers_started.labels(stage).set(0)
        # Outcome series exist from the start, so rate() sees a 0 before the first record.
        for outcome in OUTCOMES:
            if outcome != "dead_lettered":
                self.records.labels(stage, outcome, "")
        self.batch_size.labels(stage)
        self.batch_duration.labels(stage)
        self.db_write.labels(stage)
        self.last_progress.labels(stage).set(time.time())
        _track_database_writes()

    def activate(self) -> None:
        """Make this stage the one database writes are counted for, in this task and what it starts."""
        _current.set(self)

    def count_published(self, topics: Iterable[str]) -> None:
        for topic, records in collections.Counter(topics).items():
            self.published.labels(self.stage, topic).inc(records)

    def count(self, outputs: Iterable[object], topics: _TopicsLike, *, replayed: set[str] | None = None) -> None:
        """Count each output's outcome; stored articles' ingest-to-stored latency too."""
        now = datetime.now(UTC)
        for output in outputs:
            outcome, error_class = outcome_of(output, topics)
            self.records.labels(self.stage, outcome, error_class).inc()
            message = getattr(output, "message", None)
            if isinstance(message, StoredArticle) and message.id not in (replayed or set()):
                self.ingest_to_stored.observe(max(0.0, (now - _aware(message.received_at)).total_seconds()))

    def batch(self, size: int, seconds: float) -> None:
        self.batch_size.labels(self.stage).observe(size)
        self.batch_duration.labels(self.stage).observe(seconds)

    def inference_time(self, articles: int, seconds: float) -> None:
        """One observation per article, so the histogram's count is the articles classified."""
        for _ in range(articles):
            self.inference.observe(seconds / articles)

    def progressed(self) -> None:
        self.last_progress.labels(self.stage).set(time.time())


class _TopicsLike:  # the two fields outcome_of reads from Settings.topics (typing aid only)
    skipped: str
    unsupported: str


def outcome_of(output: object, topics: _TopicsLike) -> tuple[str, str]:
    """``(outcome, error_class)`` of one output of a stage's handler."""
    if isinstance(output, DeadLetter):
        return "dead_lettered", output.error
    topic = getattr(output, "topic", "")
    if topic == topics.skipped:
        return "skipped", ""
    if topic == topics.unsupported:
        return "unsupported", ""
    message = getattr(output, "message", None)
    # Cleanup finds near-duplicates; later stages pass them on like any other article.
    if type(message) is CleanArticle and message.duplicate_of:
        return "duplicate", ""
    return "passed", ""


def current() -> StageMetrics | None:
    """The stage whose batch this code runs in, if any."""
    return _current.get()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_WRITES = ("insert", "update", "delete", "replace", "merge")
_installed = False


def _track_database_writes() -> None:
    """Time every transaction that wrote, on every engine, for the stage whose batch opened it.

    SQLAlchemy's events see all engines without the services passing theirs in: the transaction starts at
    ``begin``, a write marks it, and it ends when the committed connection goes back to the pool.
    """
    global _installed
    if _installed:
        return
    _installed = True

    @event.listens_for(Engine, "begin")
    def _begin(connection) -> None:  # type: ignore[no-untyped-def]
        connection.info["newsflow_tx"] = (time.perf_counter(), current(), False)

    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(connection, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        started = connection.info.get("newsflow_tx")
        if started and not started[2] and statement.lstrip()[:7].lower().startswith(_WRITES):
            connection.info["newsflow_tx"] = (started[0], started[1], True)

    @event.listens_for(Engine, "commit")
    def _commit(connection) -> None:  # type: ignore[no-untyped-def]
        started = connection.info.pop("newsflow_tx", None)
        if started and started[2] and started[1] is not None:
            connection.info["newsflow_committing"] = started

    @event.listens_for(Engine, "rollback")
    def _rollback(connection) -> None:  # type: ignore[no-untyped-def]
        # A transaction cancelled mid-statement (a shutdown, a deadline) leaves its connection invalidated, and
        # reading .info then raised PendingRollbackError from inside the rollback, in place of the CancelledError.
        # Nothing to clear there: the next begin on that pool entry writes its own start.
        if connection.invalidated:
            return
        connection.info.pop("newsflow_tx", None)
        connection.info.pop("newsflow_committing", None)

    @event.listens_for(Engine, "engine_connect")
    def _connect(connection) -> None:  # type: ignore[no-untyped-def]
        # A connection's info outlives it in the pool: a begin that never committed must not leak into the next.
        connection.info.pop("newsflow_committing", None)

    from sqlalchemy.pool import Pool

    @event.listens_for(Pool, "checkin")
    def _checkin(dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        if record is None:
            return
        committed = record.info.pop("newsflow_committing", None)
        if committed:
            started, metrics, _ = committed
            metrics.db_write.labels(metrics.stage).observe(time.perf_counter() - started)
