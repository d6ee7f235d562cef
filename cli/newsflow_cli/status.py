"""``newsflow status``: where every stage stands, read from Kafka alone (no service needs to answer).

Per stage: its consumer group's lag (end offsets minus committed offsets of its input topic), records per second
over the last minute (what it wrote to its output topics and the DLQ in that minute), replicas alive (the group's
members), its dead letters by error class (over ``--dlq-window``), and the age of the oldest record it has not
answered (the record at each partition's committed offset).

The DLQ's side readers follow, each a consumer group of its own: ingest's (``ingest-forget``: behind, ingest skips
a re-pushed article that a later stage refused) and storage's (``storage-dlq``: behind, the web page's dead letters
go stale). They write nothing to Kafka, so they have no rate; one whose group has no members is left out (off here, as
ingest's is without ``INGEST_DEDUPE``, or its stage is down, which the stage's line shows). One is stuck when a letter
has waited longer than ``stuck_after`` and its group commits nothing for ``SIDE_PROGRESS_SECONDS``.

A stage is *stuck* when records wait, the oldest has waited longer than ``stuck_after`` seconds, and the stage
wrote nothing in that time: a busy stage behind a backlog still writes, a blocked or dead one does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import DescribeGroupsRequest, DescribeGroupsRequest_v2
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from newsflow_shared import ServiceSettings, kafka_clients, settings_from_environment
from newsflow_shared.lag import committed_offsets, coordinator_ready, read_from

from .kafka_io import TopicMissing, require_topics, topic_partitions
from .local_kafka import KafkaUnavailable
from .stack import reach_kafka

__all__ = ["StageStatus", "gather_status", "render"]


@dataclass
class StageStatus:
    """One stage's line on the screen (and one object in ``--json``)."""

    stage: str
    group: str
    topic: str
    lag: int = 0
    records_per_second: float | None = 0.0  # None for a side reader, which writes nothing
    replicas: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    oldest_unanswered_seconds: float | None = None
    last_output_seconds_ago: float | None = None
    stuck: bool = False

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def stage_topics(settings: ServiceSettings) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each stage's input topic and the topics it writes (the DLQ aside)."""
    t = settings.topics
    return {
        "ingest": (t.raw, (t.ingested, t.skipped)),
        "cleanup": (t.ingested, (t.clean, t.unsupported)),
        "classify": (t.clean, (t.enriched,)),
        "storage": (t.enriched, (t.stored,)),
    }


SIDE_READERS = ("ingest-forget", "storage-dlq")
"""The DLQ's side readers (``Stage.read_dead_letters``), by the name their group and metrics carry."""
SIDE_PROGRESS_SECONDS = 10.0
"""How long a side reader with an old letter waiting is watched for a commit before it reads as stuck: it commits
each batch, and a batch of letters takes it a second or so (storage's, up to 1,000 letters with their originals)."""


async def gather_status(
    settings: ServiceSettings, *, stuck_after: float = 300.0, dlq_window: float = 3600.0
) -> list[StageStatus]:
    """Read every stage's numbers from Kafka now; :class:`TopicMissing` where a topic the stages use is not there (a
    misspelt ``TOPIC_RAW``, or a broker with no pipeline: every stage read as "ok", with nothing waiting)."""
    await require_topics(
        settings,
        *{topic for source, outputs in stage_topics(settings).values() for topic in (source, *outputs)},
        settings.topic_dlq,
    )
    admin = kafka_clients.admin(settings, client_id="newsflow-status")
    # Two consumers: one asks for offsets and is never assigned anything, so it keeps the metadata of every topic; the
    # reader is assigned one partition after another to read a record's time. With one for both, each assignment
    # narrowed the metadata to that topic, and each ask about another topic waited for a refresh (5 s a screen).
    consumer, reader = (
        kafka_clients.consumer(
            settings,
            client_id="newsflow-status",
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a record removed by retention: the oldest one left
            max_partition_fetch_bytes=settings.kafka_max_message_bytes,
            fetch_max_bytes=settings.kafka_max_message_bytes * 2,
        )
        for _ in range(2)
    )
    try:
        # Inside: a broker that does not answer fails the first, and the clients made are closed all the same (left
        # open, each printed "Unclosed AIOKafkaConsumer" under the command's one line).
        await kafka_clients.connect(admin, settings)
        await kafka_clients.connect(consumer, settings)
        await kafka_clients.connect(reader, settings)
        now = time.time()
        since = now - max(dlq_window, stuck_after, 60.0)
        letters = await _dead_letters(consumer, reader, settings.topic_dlq, since=since)
        groups = {stage: settings.group_id(stage) for stage in (*stage_topics(settings), *SIDE_READERS)}
        members = await group_members(admin, list(groups.values()))
        result = []
        for stage, (source, outputs) in stage_topics(settings).items():
            status = StageStatus(stage=stage, group=groups[stage], topic=source, replicas=members.get(groups[stage], 0))
            own_letters = [(at, error) for name, at, error in letters if name == stage]
            status.dead_letters = dict(Counter(error for at, error in own_letters if at >= now - dlq_window))
            oldest = await _fill_lag(admin, consumer, reader, status, now)
            written_last_minute, last_output = await _written_since(consumer, reader, outputs, now)
            written_last_minute += sum(1 for at, _ in own_letters if at >= now - 60)
            if own_letters:
                last_output = max(last_output or 0.0, max(at for at, _ in own_letters))
            status.records_per_second = round(written_last_minute / 60.0, 2)
            quiet_for = None if last_output is None else max(0.0, now - last_output)
            status.last_output_seconds_ago = None if quiet_for is None else round(quiet_for, 1)
            # The exact ages, not the rounded ones shown: 3.04 s rounds to 3.0, which is not over a limit of 3. A
            # waiting record with no time (its producer gave none) has waited at least since the stage last wrote.
            waited = oldest if oldest is not None else quiet_for
            status.stuck = (
                status.lag > 0 and (waited or 0.0) > stuck_after and (quiet_for is None or quiet_for > stuck_after)
            )
            result.append(status)
        for side in SIDE_READERS:
            status = StageStatus(
                stage=side,
                group=groups[side],
                topic=settings.topic_dlq,
                records_per_second=None,
                replicas=members.get(groups[side], 0),
            )
            if not status.replicas:
                # Its stage runs it, so none means off here (ingest without INGEST_DEDUPE; a group left from when it
                # was on keeps its offsets for a week), or its stage is down, which the stage's own line shows.
                continue
            oldest = await _fill_lag(admin, consumer, reader, status, now)
            # It only reads, thousands of letters a second: one waiting longer than stuck_after means it does not,
            # unless it is working through a backlog of old letters (a new replica, a reset group), which shows as
            # its committed offsets moving on.
            status.stuck = (
                status.lag > 0
                and (oldest or 0.0) > stuck_after
                and not await _moves_on(admin, consumer, status, SIDE_PROGRESS_SECONDS)
            )
            result.append(status)
        return result
    finally:
        await reader.stop()
        await consumer.stop()
        await admin.close()


class _DescribeGroupsV2(DescribeGroupsRequest):
    """aiokafka 0.14 reads a v3 DescribeGroups answer with the v2 layout and fails ("Buffer underrun"), and
    Kafka 4 answers v3 when asked: ask for v2, which has the members and nothing we lack."""

    def build(self, request_struct_class: Any) -> Any:
        return DescribeGroupsRequest_v2(self._groups)


async def group_members(admin: AIOKafkaAdminClient, groups: list[str]) -> dict[str, int]:
    """Members of each consumer group: the replicas alive (each sends heartbeats, or the group drops it)."""
    return {group_id: await coordinator_ready(partial(_members_of, admin, group_id)) for group_id in groups}


async def _members_of(admin: AIOKafkaAdminClient, group_id: str) -> int:
    node = await admin.find_coordinator(group_id)
    response = await admin._send_request(_DescribeGroupsV2([group_id]), node)
    for group in response.to_object()["groups"]:
        # An error comes with no members: read as 0, a coordinator still loading (a broker just restarted) showed
        # every stage with no replica, and `run` started a second pipeline beside the first.
        if group["error_code"]:
            raise kafka_errors.for_code(group["error_code"])(f"describing the consumer group {group_id}")
        return len(group["members"])
    return 0


async def _fill_lag(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, reader: AIOKafkaConsumer, status: StageStatus, now: float
) -> float | None:
    """Fill in the stage's lag and its oldest unanswered record's age (shown rounded); return that age exactly."""
    partitions = await topic_partitions(consumer, status.topic)
    if not partitions:
        return None
    committed = await coordinator_ready(partial(committed_offsets, admin, status.group, partitions))
    ends = await consumer.end_offsets(partitions)
    starts = await consumer.beginning_offsets(partitions)
    oldest: float | None = None
    for tp in partitions:
        position = read_from(starts[tp], committed.get(tp))
        behind = max(0, ends[tp] - position)
        status.lag += behind
        if behind:
            at = await _timestamp_at(reader, tp, position)
            if at is not None:
                oldest = max(oldest or 0.0, now - at)
    oldest = None if oldest is None else max(0.0, oldest)
    status.oldest_unanswered_seconds = None if oldest is None else round(oldest, 1)
    return oldest


async def _moves_on(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, status: StageStatus, seconds: float
) -> bool:
    """Whether the group of ``status`` commits past where it stood within ``seconds`` (asked every half second)."""
    partitions = await topic_partitions(consumer, status.topic)
    read = partial(committed_offsets, admin, status.group, partitions)
    before = await coordinator_ready(read)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        after = await coordinator_ready(read)
        if any(after[tp].offset > before[tp].offset for tp in partitions):
            return True
    return False


async def _timestamp_at(reader: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> float | None:
    """The timestamp (seconds) of the record at ``offset``: the oldest one the stage has not answered."""
    reader.assign([tp])
    reader.seek(tp, offset)
    batch = await reader.getmany(tp, timeout_ms=5000, max_records=1)
    records = batch.get(tp) or []
    # A producer sets its records' times: -1 or 0 (none given) is not an age of 56 years.
    return records[0].timestamp / 1000.0 if records and records[0].timestamp > 0 else None


async def _written_since(
    consumer: AIOKafkaConsumer, reader: AIOKafkaConsumer, topics: tuple[str, ...], now: float
) -> tuple[int, float | None]:
    """Records written to ``topics`` in the last minute, and when the newest of all was written."""
    count, newest = 0, None
    for topic in topics:
        partitions = await topic_partitions(consumer, topic)
        if not partitions:
            continue
        ends = await consumer.end_offsets(partitions)
        since = await consumer.offsets_for_times(dict.fromkeys(partitions, int((now - 60) * 1000)))
        for tp in partitions:
            if since.get(tp) is not None:
                count += ends[tp] - since[tp].offset
            if ends[tp] > 0:
                at = await _timestamp_at(reader, tp, ends[tp] - 1)
                if at is not None:
                    newest = max(newest or 0.0, at)
    return count, newest


async def _dead_letters(
    consumer: AIOKafkaConsumer, reader: AIOKafkaConsumer, topic: str, since: float
) -> list[tuple[str, float, str]]:
    """``(stage, timestamp, error class)`` of each dead letter written since ``since``."""
    partitions = await topic_partitions(consumer, topic)
    if not partitions:
        return []
    starts = await consumer.offsets_for_times(dict.fromkeys(partitions, int(since * 1000)))
    ends = await consumer.end_offsets(partitions)
    wanted = {tp: ends[tp] for tp in partitions if starts.get(tp) is not None and starts[tp].offset < ends[tp]}
    if not wanted:
        return []
    reader.assign(list(wanted))
    for tp in wanted:
        reader.seek(tp, starts[tp].offset)
    letters: list[tuple[str, float, str]] = []
    while wanted:
        batch = await reader.getmany(*wanted, timeout_ms=2000, max_records=10_000)
        if not batch:
            break
        for tp, records in batch.items():
            for record in records:
                # Anyone who can write to the DLQ can write anything there: JSON that is not an object, or nested
                # past the parser's depth, counts as unreadable, not as Kafka failing to answer.
                try:
                    letter = json.loads(record.value or b"")  # an empty record (or a batch not unpacked) too
                except (ValueError, RecursionError):
                    letter = None
                if isinstance(letter, dict):
                    letters.append((str(letter.get("stage")), record.timestamp / 1000.0, str(letter.get("error"))))
                else:
                    letters.append(("?", record.timestamp / 1000.0, "unreadable"))
            if records and records[-1].offset + 1 >= wanted[tp]:
                del wanted[tp]
    return letters


def render(stages: list[StageStatus]) -> Table:
    """The screen: one row per stage, red when stuck, yellow when behind."""
    table = Table(title="Newsflow", title_justify="left")
    for column in ("stage", "lag", "records/s (1 min)", "replicas", "oldest waiting", "dead letters", "state"):
        table.add_column(column, justify="right" if column not in {"stage", "dead letters", "state"} else "left")
    for s in stages:
        state, style = ("STUCK", "bold red") if s.stuck else (("behind", "yellow") if s.lag else ("ok", "green"))
        if s.replicas == 0 and s.lag:
            state += ", no replicas"
        # An error class is whatever a DLQ record said it was: escaped, as the cells are rich markup.
        letters = ", ".join(f"{escape(error)} {n}" for error, n in sorted(s.dead_letters.items())) or "-"
        oldest = "-" if s.oldest_unanswered_seconds is None else f"{s.oldest_unanswered_seconds:.0f}s"
        table.add_row(
            s.stage,
            str(s.lag),
            "-" if s.records_per_second is None else f"{s.records_per_second:.1f}",
            str(s.replicas),
            oldest,
            letters,
            f"[{style}]{state}[/{style}]",
        )
    return table


async def watch_status(settings: ServiceSettings, every: float, **options: Any) -> list[StageStatus]:
    """Refresh the screen every ``every`` seconds until interrupted; the last reading is returned.

    Without a terminal (piped, or ``kubectl exec`` without ``-t``) each reading is printed below the last, with its
    time: rich's live screen draws only on a terminal, and the watch showed nothing at all there."""
    from rich.console import Console
    from rich.live import Live

    stages = await gather_status(settings, **options)
    console = Console()
    live = Live(render(stages), console=console, auto_refresh=False) if console.is_terminal else None

    def show(screen: Table | Text) -> None:
        if live is not None:
            live.update(screen, refresh=True)
        elif isinstance(screen, Text):  # says its own time
            console.print(screen)
        else:
            console.print(f"{time.strftime('%H:%M:%S')}:", screen)

    if live is None:
        show(render(stages))
    with live if live is not None else contextlib.nullcontext():
        try:
            while True:
                await asyncio.sleep(every)
                try:
                    stages = await gather_status(settings, **options)
                except (kafka_errors.KafkaError, OSError, TimeoutError, TopicMissing) as error:
                    # A watch screen outlives a broker's restart: it ended with exit 3 at the first failed read.
                    show(unreadable(settings, error))
                    continue
                show(render(stages))
        except asyncio.CancelledError:
            pass
    return stages


def described(error: BaseException) -> str:
    """``error`` as ``Class: message``, once: aiokafka's own messages start with their class already."""
    said, name = str(error), type(error).__name__
    return said if said.startswith(name) else f"{name}: {said}" if said else name


def unreadable(settings: ServiceSettings, error: BaseException) -> Text:
    """What a watch screen shows while Kafka cannot be read, until it can."""
    when = time.strftime("%H:%M:%S")
    return Text(
        f"{when}: cannot read the pipeline's state from Kafka at {settings.kafka_bootstrap_servers}"
        f" ({described(error)}); trying again",
        style="red",
    )


def run_status(
    *, as_json: bool, watch: float | None, stuck_after: float, dlq_window: float, origin: str = "the environment"
) -> int:
    """What ``newsflow status`` does; the exit status is 1 when a stage is stuck, 3 when Kafka cannot be read (down,
    unreachable, or refusing the login), as for the other commands: 2 is a usage error."""
    from rich.console import Console

    settings = settings_from_environment(ServiceSettings)
    options = {"stuck_after": stuck_after, "dlq_window": dlq_window}
    try:
        # As the other commands: one line within 10 s. A port that took the connection and spoke no Kafka (TLS
        # expected, say) kept status silent for the clients' 40 s request timeout, and then said only "timed out".
        asyncio.run(reach_kafka(settings, origin))
        if watch is not None and not as_json:
            try:
                stages = asyncio.run(watch_status(settings, watch, **options))
            except KeyboardInterrupt:
                return 0
        else:
            stages = asyncio.run(gather_status(settings, **options))
    except Exception as error:  # Kafka down or unreachable: say so, in the form asked for
        # Ours say it all; another's message with its class, not Python's repr: KafkaSecurityError("Kafka at …").
        cause = str(error) if isinstance(error, KafkaUnavailable | TopicMissing) else described(error)
        message = f"cannot read the pipeline's state from Kafka at {settings.kafka_bootstrap_servers}: {cause}"
        if as_json:
            print(json.dumps({"ok": False, "error": message, "stages": []}))
        else:
            Console(stderr=True).print(f"[red]{escape(message)}[/red]")
        return 3
    stuck = [s.stage for s in stages if s.stuck]
    if as_json:
        print(json.dumps({"ok": not stuck, "stuck": stuck, "stages": [s.as_json() for s in stages]}))
    elif watch is None:
        Console().print(render(stages))
    return 1 if stuck else 0
