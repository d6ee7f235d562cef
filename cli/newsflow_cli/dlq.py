"""``newsflow dlq``: list, show and re-drive dead letters once their cause is fixed.

A re-driven dead letter goes back, byte for byte, to the topic of the stage that refused it,
marked with the ``newsflow-redrive`` header (see :func:`newsflow_shared.redrive_record`).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from newsflow_shared import DeadLetter, RejectedInput, ServiceSettings, kafka_clients, redrive_record
from newsflow_shared.errors import first_line
from newsflow_shared.lag import stage_inputs
from newsflow_shared.readable_records import UnreadBatch
from newsflow_shared.redrive import redriven_from
from newsflow_shared.sending import OutgoingRecord, queue_all

from .common import err, since_utc, with_kafka
from .kafka_io import producer, require_topics, topic_partitions

if TYPE_CHECKING:
    from newsflow_storage.dead_letters import DeadLetterStore

dlq_app = typer.Typer(help="Dead letters: list, show, and re-drive them to the stage that refused them.")


@dataclass(frozen=True)
class Filter:
    """Which dead letters a command is about; every given field must match."""

    stage: str | None = None
    error: str | None = None
    article_id: str | None = None
    since: datetime | None = None

    def matches(self, letter: DeadLetter) -> bool:
        return (
            (self.stage is None or letter.stage == self.stage)
            and (self.error is None or letter.error == self.error)
            and (self.article_id is None or letter.article_id == self.article_id)
        )


Place = tuple[str, int, int]
"""Where a refused record was: source topic, partition, offset (a dead letter's identity)."""


@dataclass(frozen=True)
class Found:
    partition: int
    offset: int
    letter: DeadLetter

    @property
    def where(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def size(self) -> int:
        """The bytes of the original record this holds: what a re-drive's batch is bounded by."""
        return len(self.letter.original)

    def without_original(self) -> Found:
        """This letter with no original bytes (``original_size`` still says how many it had): for a listing."""
        return Found(self.partition, self.offset, self.letter.model_copy(update={"original": b""}))


async def dead_letters(settings: ServiceSettings, where: Filter) -> AsyncIterator[Found]:
    """The dead letters on the topic now (from ``where.since``, else from the start) that match ``where``.

    A DLQ that is not there is said (:class:`TopicMissing`): a misspelt ``TOPIC_DLQ`` read as an empty one, and
    `dlq redrive --all` "re-drove 0 dead letters"."""
    consumer = await _dlq_reader(settings, fetch_max_bytes=settings.kafka_max_message_bytes * 2)
    try:
        partitions = await topic_partitions(consumer, settings.topic_dlq)
        if not partitions:
            return
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        if where.since is not None:
            since_ms = int(where.since.timestamp() * 1000)
            found = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
            starts = {tp: (found[tp].offset if found.get(tp) else ends[tp]) for tp in partitions}
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        remaining = {tp for tp in partitions if starts[tp] < ends[tp]}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        remaining.discard(tp)
                        break
                    letter = _letter_in(record)
                    if letter is not None and where.matches(letter):
                        yield Found(tp.partition, record.offset, letter)
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()


async def _dlq_reader(settings: ServiceSettings, *, fetch_max_bytes: int) -> AIOKafkaConsumer:
    """A started consumer for the DLQ, assigned nothing yet; :class:`TopicMissing` where the DLQ is not there."""
    await require_topics(settings, settings.topic_dlq)
    consumer = kafka_clients.consumer(
        settings,
        enable_auto_commit=False,
        max_partition_fetch_bytes=settings.kafka_max_message_bytes,
        fetch_max_bytes=fetch_max_bytes,
        client_id="newsflow-cli-dlq",
    )
    await kafka_clients.connect(consumer, settings)
    return consumer


def _letter_in(record: Any) -> DeadLetter | None:
    """The dead letter a DLQ record holds; None, said on stderr, for one that holds none."""
    if isinstance(record.value, UnreadBatch):
        err.print(f"[yellow]skipped[/] {record.partition}:{record.offset}: {escape(record.value.reason)}")
        return None
    try:
        return DeadLetter.model_validate_json(record.value or b"")
    except ValidationError:
        err.print(f"[yellow]skipped[/] {record.partition}:{record.offset}: not a Newsflow dead letter")
        return None


async def letter_at(settings: ServiceSettings, partition: int, offset: int, *, within: float = 30.0) -> Found | None:
    """The dead letter at ``partition``:``offset``, read alone; None where there is none.

    Found by reading the topic from its start, one letter took 2.9 s and 935 MB of a pod's memory on a DLQ of 30,000
    letters of 27 KB, and each record before it that held no letter was said on the way.
    """
    consumer = await _dlq_reader(settings, fetch_max_bytes=settings.kafka_max_message_bytes)  # one record at most
    try:
        tp = TopicPartition(settings.topic_dlq, partition)
        if tp not in await topic_partitions(consumer, settings.topic_dlq):
            return None
        consumer.assign([tp])
        first, end = (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]
        if not first <= offset < end:
            return None
        consumer.seek(tp, offset)
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            for record in (await consumer.getmany(tp, timeout_ms=1000, max_records=1)).get(tp, []):
                if record.offset == offset:
                    letter = _letter_in(record)
                    return None if letter is None else Found(partition, offset, letter)
                if record.offset > offset:  # no record there (a transaction's marker): none to show
                    return None
        return None
    finally:
        await consumer.stop()


LETTER_STAGES = ("push", "ingest", "cleanup", "classify", "storage")
"""What a dead letter's ``stage`` says: a service, or ``newsflow push`` (an input too large for Kafka)."""
StageOption = Annotated[
    str | None, typer.Option(help=f"Only dead letters from this stage ({', '.join(LETTER_STAGES)}).")
]
ErrorOption = Annotated[str | None, typer.Option("--error", help="Only this error class, e.g. InvalidArticle.")]
IdOption = Annotated[str | None, typer.Option("--id", help="Only this article id.")]
SinceOption = Annotated[datetime | None, typer.Option(help="Only what was dead-lettered since this time (UTC).")]


def _filter(stage: str | None, error: str | None, article_id: str | None, since: datetime | None) -> Filter:
    if stage is not None and stage not in LETTER_STAGES:
        # A misspelt stage matched nothing: `dlq redrive --stage clenaup` "re-drove 0 dead letters", exit 0.
        err.print(f"[red]error:[/] --stage is one of {', '.join(LETTER_STAGES)}, not {escape(stage)!r}")
        raise typer.Exit(2)
    return Filter(stage=stage, error=error, article_id=article_id, since=since_utc(since))


@dlq_app.command("list")
def list_command(
    stage: StageOption = None,
    error: ErrorOption = None,
    article_id: IdOption = None,
    since: SinceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per dead letter.")] = False,
) -> None:
    """The dead letters, oldest first, with their reasons."""
    where = _filter(stage, error, article_id, since)

    async def main(settings: ServiceSettings) -> list[Found]:
        if as_json:  # each printed as it is read: nothing held, however many there are
            async for found in dead_letters(settings, where):
                record = found.letter.model_dump(mode="json", exclude={"original"})
                print(json.dumps({"where": found.where, **record}, ensure_ascii=False), flush=True)
            return []
        # The table is laid out from them all: held without each letter's original, which it does not show (up to
        # ~22 MiB a letter, forty of them held to the end took storage's pod, where the runbook runs this, out of memory).
        return [found.without_original() async for found in dead_letters(settings, where)]

    found = with_kafka(main)
    if as_json:
        return
    # On stdout, to pipe or keep; "where" and "error" never cut: the runbook pastes them into `dlq show` and
    # `--error` (under `kubectl exec` without a terminal rich lays out 80 columns, and cut "MalformedMessage").
    rows = [
        (
            item.where,
            item.letter.failed_at.strftime("%Y-%m-%d %H:%M:%S"),
            escape(item.letter.stage),  # a letter's every field is whatever was written to the DLQ
            escape(item.letter.error),
            escape(item.letter.article_id or "—"),
            escape(item.letter.reason[:160]),
        )
        for item in found
    ]
    table = Table(show_lines=False)
    for index, name in enumerate(("where", "failed at", "stage", "error")):
        widest = max([len(name), *(len(row[index]) for row in rows)])
        table.add_column(name, no_wrap=True, min_width=min(widest, 64))
    table.add_column("article")
    table.add_column("reason")
    for row in rows:
        table.add_row(*row)
    out = Console()
    if not out.is_terminal:  # piped, or kubectl exec without -t: room for a reason on one line, not 80 columns
        out = Console(width=max(out.width, 240))
    out.print(table)
    err.print(f"{len(found)} dead letters")


@dlq_app.command("show")
def show_command(where: Annotated[str, typer.Argument(help="PARTITION:OFFSET as `dlq list` prints it.")]) -> None:
    """One dead letter in full, with its original message (as text when it is UTF-8)."""
    try:
        partition, offset = (int(part) for part in where.split(":"))
    except ValueError:
        err.print("[red]error:[/] give the dead letter as PARTITION:OFFSET, e.g. 3:120")
        raise typer.Exit(2) from None

    found = with_kafka(lambda settings: letter_at(settings, partition, offset))
    if found is None:
        err.print(f"[red]error:[/] no dead letter at {where}")
        raise typer.Exit(1)
    record = found.letter.model_dump(mode="json", exclude={"original"})
    try:
        record["original_text"] = found.letter.original.decode("utf-8")
    except UnicodeDecodeError:
        record["original_base64"] = found.letter.model_dump(mode="json")["original"]
    print(json.dumps({"where": found.where, **record}, ensure_ascii=False, indent=2))


REDRIVE_BATCH_LETTERS = 500
"""Most dead letters a re-drive sends (and claims on the page's copy) at once."""
REDRIVE_BATCH_BYTES = 8 * 1024 * 1024
"""A batch is sent once the originals it holds reach this many bytes: 500 letters of up to ~22 MiB each held to the
batch's end was gigabytes, in the pod the runbook runs this in."""


@dlq_app.command("redrive")
def redrive_command(
    stage: StageOption = None,
    error: ErrorOption = None,
    article_id: IdOption = None,
    since: SinceOption = None,
    everything: Annotated[bool, typer.Option("--all", help="Re-drive every dead letter (no filter needed).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be re-driven; send nothing.")] = False,
) -> None:
    """Send matching dead letters back to the stage that refused them, once their cause is fixed."""
    where = _filter(stage, error, article_id, since)
    if where == Filter() and not everything:
        err.print("[red]error:[/] say which dead letters (--stage, --error, --id, --since), or --all")
        raise typer.Exit(2)

    async def main(settings: ServiceSettings) -> Redriven:
        done = Redriven()
        inputs = set(stage_inputs(settings).values())
        # A first reading for the letters whose records were re-driven and refused again: whatever the filter, as
        # the newer letter may be of another error or stage. A letter is always later than the one it follows.
        async for found in dead_letters(settings, Filter(since=where.since)):  # a DLQ not there is said first
            if (older := redriven_from(found.letter)) is not None:
                done.superseded_places.add(older)
        # After with_kafka found the local stack (it sets DATABASE_URL to `newsflow run`'s database).
        pages = await PageCopy.open(await asyncio.to_thread(page_copy_url))
        try:
            async with producer(settings) as client:
                batch: list[Found] = []
                held = 0
                async for found in dead_letters(settings, where):
                    batch.append(found)
                    held += found.size
                    if len(batch) == REDRIVE_BATCH_LETTERS or held >= REDRIVE_BATCH_BYTES:
                        await _redrive(batch, client, pages, done, dry_run=dry_run, inputs=inputs)
                        batch, held = [], 0
                await _redrive(batch, client, pages, done, dry_run=dry_run, inputs=inputs)
        finally:
            if pages is not None:
                await pages.close()
        return done

    done = with_kafka(main)
    for line in done.refused:
        err.print(f"[yellow]not re-driven[/] {escape(line)}")
    if done.settled:
        err.print(f"[yellow]not re-driven[/] {done.settled} dead letters the web page re-drove or set aside")
    if done.repeats:
        err.print(f"{done.repeats} dead letters were the same refused record again: sent once")
    if done.superseded:
        err.print(
            f"[yellow]not re-driven[/] {done.superseded} dead letters re-driven before: their records were refused"
            " again, and those newer letters are the ones re-driven"
        )
    err.print(f"{'would re-drive' if dry_run else 're-drove'} {done.sent} dead letters")


@dataclass
class Redriven:
    sent: int = 0
    settled: int = 0  # re-driven or set aside on storage's page
    repeats: int = 0  # the same refused record on the DLQ again: sent once
    superseded: int = 0  # re-driven before and refused again: the newer letter is sent instead
    superseded_places: set[Place] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    places: set[Place] = field(default_factory=set)


class PageCopy:
    """Storage's copy of the dead letters (the web page's), where ``DATABASE_URL`` names it: the letters this command
    re-drives are marked there, and those the page re-drove or set aside are not sent again. Without it the two
    re-drives knew nothing of each other: the page offered letters the command had sent, and the command re-sent
    letters the page had."""

    def __init__(self, store: DeadLetterStore) -> None:
        self.store = store

    @classmethod
    async def open(cls, url: str | None) -> PageCopy | None:
        from sqlalchemy.exc import SQLAlchemyError

        from newsflow_shared.db import make_engine
        from newsflow_storage.dead_letters import DeadLetterStore

        if url is None:
            return None
        store = DeadLetterStore(make_engine(url))
        try:
            await store.rows_at([("", 0, 0)])
            return cls(store)
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            await store.engine.dispose()
            _cannot_read(f"{type(error).__name__}: {first_line(error, 200)}")

    async def close(self) -> None:
        await self.store.engine.dispose()


async def _redrive(
    batch: list[Found],
    client: Any,
    pages: PageCopy | None,
    done: Redriven,
    *,
    dry_run: bool,
    inputs: Collection[str],
) -> None:
    """Send one batch back to the stages' ``inputs``: claimed on the page's copy first (as the page claims its own);
    what Kafka did not take is given back there, to wait again."""
    records: dict[Place, tuple[DeadLetter, OutgoingRecord]] = {}  # each letter as storage's copy keeps it
    for found in batch:
        kept = _as_kept(found)
        place = _place(kept)
        if place in done.places:  # the same refused record twice on the DLQ (its stage restarted before committing)
            done.repeats += 1
            continue
        if place in done.superseded_places:
            done.superseded += 1
            continue
        done.places.add(place)
        try:
            records[place] = (kept, redrive_record(found.letter, inputs=inputs))
        except RejectedInput as problem:
            done.refused.append(f"{found.where}: {problem.reason}")
    if pages is not None and records and not dry_run:
        # A letter storage's reader has not kept yet (it is behind, or storage is down) is kept here first: marked
        # like the others, rather than arrive later as waiting and be offered again.
        await pages.store.keep([kept for kept, _ in records.values()])
    rows = await pages.store.rows_at(list(records)) if pages is not None and records else {}
    waiting = {place: record for place, (_, record) in records.items() if not rows.get(place, (0, False))[1]}
    done.settled += len(records) - len(waiting)
    if dry_run or not waiting:
        done.sent += len(waiting)
        return
    ids = [rows[place][0] for place in waiting if place in rows]
    at = datetime.now(UTC)
    claimed = set(await pages.store.claim(ids, at)) if pages is not None and ids else set()
    # A row the page claimed between the read and the claim is the page's to send.
    sending = {place: record for place, record in waiting.items() if place not in rows or rows[place][0] in claimed}
    done.settled += len(waiting) - len(sending)
    queued: list[tuple[Place, asyncio.Future[Any]]] = []
    try:
        for place, record in sending.items():  # one at a time: a send that raises keeps what went before it
            [acknowledgement] = await queue_all(client, [record])
            queued.append((place, acknowledgement))
        await asyncio.gather(*(acknowledgement for _, acknowledgement in queued), return_exceptions=True)
    finally:
        # Queued and not refused counts as sent, acknowledged or not yet (cancelled meanwhile: the producer's stop
        # flushes it); the rest waits again on the page. Released wholesale, the ones Kafka took were offered again.
        taken = {place for place, acknowledgement in queued if not _refused(acknowledgement)}
        if pages is not None and claimed:
            sent_ids = {rows[place][0] for place in taken if place in rows}
            await asyncio.shield(pages.store.finish(sorted(claimed), sent_ids, at))
        done.sent += len(taken)
    if refusal := next((a.exception() for _, a in queued if _refused(a)), None):
        raise refusal


def _refused(acknowledgement: asyncio.Future[Any]) -> bool:
    return acknowledgement.done() and (acknowledgement.cancelled() or acknowledgement.exception() is not None)


def page_copy_url() -> str | None:
    """``DATABASE_URL`` where it names storage's copy; never the default, a stray newsflow.db in this folder."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    url = os.environ.get("DATABASE_URL")
    if not url:
        return None
    try:
        parsed = make_url(url)
    except ArgumentError:
        _cannot_read("DATABASE_URL is not a database URL")
    if parsed.get_backend_name() == "sqlite" and not os.path.isfile(parsed.database or ""):
        _cannot_read("no such SQLite file")  # opening it would make an empty one
    return url


def _cannot_read(problem: str) -> NoReturn:
    """Stop: the copy was named and cannot be read. Going on sent again the letters the page re-drove or set aside,
    with a warning that spoke only of how the page would look, and exit 0."""
    err.print(
        f"[red]error:[/] storage's copy of the dead letters at DATABASE_URL cannot be read ({escape(problem)}):"
        " without it, letters the web page re-drove or set aside would be sent again. Fix DATABASE_URL, or unset it"
        " to re-drive without the page's copy"
    )
    raise typer.Exit(3)


def _as_kept(found: Found) -> DeadLetter:
    """The letter at the place storage's copy keeps it by (:func:`newsflow_storage.dead_letters.placed`): a letter of
    ``push`` (no place on its topic) or of a place past the table's columns was looked for where no row is, or raised
    OverflowError."""
    from newsflow_storage.dead_letters import placed

    return placed(found.letter, found.partition, found.offset)


def _place(letter: DeadLetter) -> Place:
    return (letter.source_topic, letter.source_partition, letter.source_offset)
