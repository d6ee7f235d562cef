"""newsflow: push articles, follow results, run the pipeline locally, process files end to end."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TextIO, TypeVar

import typer
from aiokafka.errors import KafkaConnectionError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from newsflow_shared import (
    KafkaSecurityError,
    ServiceSettings,
    TopicsRefused,
    ensure_topics,
    settings_from_environment,
)
from newsflow_shared.logs import QuietRepeats

from .common import STATE, err, seconds, since_utc, stop_on_signals, with_kafka
from .dlq import dlq_app
from .inputs import Input, UnreadablePath, read_inputs
from .kafka_io import OutcomeWatcher, TopicMissing, producer, push
from .local_kafka import KafkaUnavailable, LocalKafka, fetch_jars, free_port
from .processing import process_inputs
from .stack import LocalStack, PipelineAlreadyThere, say, use_local_database, use_local_stack

T = TypeVar("T")
DAY = 86_400.0
YEAR = 366 * DAY  # a status window longer reaches before Kafka's record times

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
kafka_app = typer.Typer(help="A local Apache Kafka broker (no Docker): jars from Maven Central.")
db_app = typer.Typer(help="The database schema (Alembic migrations).")
cleanup_app = typer.Typer(help="Cleanup's learned state, shared by its replicas.")
app.add_typer(kafka_app, name="kafka")
app.add_typer(db_app, name="db")
app.add_typer(cleanup_app, name="cleanup")
app.add_typer(dlq_app, name="dlq")


def _inputs(paths: list[str]) -> list[Input]:
    try:
        return list(read_inputs(paths))
    except UnreadablePath as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(2) from None


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )


@app.command("push")
def push_command(
    paths: Annotated[list[str], typer.Argument(help="Files, folders, or - for JSONL on standard input.")],
) -> None:
    """Send articles to the ingest topic (.txt, .html, .json, .jsonl)."""
    inputs = _inputs(paths)
    if not inputs:  # as `process` says: an empty folder went on to Kafka and "pushed 0 of 0", exit 0
        if paths == ["-"]:  # a pipe that had nothing today: said, not an error
            err.print("nothing to push: standard input held no article")
            raise typer.Exit(0)
        err.print("nothing to push: no .txt, .html, .json or .jsonl input found")
        raise typer.Exit(2)

    async def main(settings: ServiceSettings) -> None:
        with _progress() as progress:
            task = progress.add_task("pushing", total=len(inputs))
            async with producer(settings) as client:
                summary = await push(client, settings, inputs, lambda _: progress.advance(task))
        err.print(
            f"pushed {summary.sent} of {len(inputs)} to {settings.topic_raw}"
            + (f"; {summary.too_large} too large for Kafka went to {settings.topic_dlq}" if summary.too_large else "")
        )
        for failure in summary.failed:
            err.print(f"[red]not sent:[/] {escape(str(failure))}")
        if summary.failed:
            raise typer.Exit(1)

    with_kafka(main)


@app.command()
def tail(
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Start at the oldest result.")] = False,
    dead_letters: Annotated[bool, typer.Option("--dead-letters", help="Also print dead letters and skips.")] = False,
) -> None:
    """Follow stored articles as JSON lines on standard output (Ctrl-C to stop)."""

    async def main(settings: ServiceSettings) -> None:
        watcher = OutcomeWatcher(settings)
        await watcher.start(from_beginning=from_beginning)
        try:
            async for kind, _trace, record in watcher.outcomes():
                if kind == "stored" or (dead_letters and kind in {"dead-letter", "skipped"}):
                    print(json.dumps(record, ensure_ascii=False), flush=True)
        finally:
            await watcher.stop()

    try:
        with_kafka(main)
    except KeyboardInterrupt:
        pass


@app.command()
def run(
    # 0 leaves a stage to replicas run elsewhere (classify on a GPU machine, say); storage serves the page and API
    # this command points to, so at least one.
    ingest: Annotated[int, typer.Option(min=0, help="Replicas of ingest (0: it runs elsewhere).")] = 1,
    cleanup: Annotated[int, typer.Option(min=0, help="Replicas of cleanup (0: it runs elsewhere).")] = 1,
    classify: Annotated[int, typer.Option(min=0, help="Replicas of classify (0: it runs elsewhere).")] = 1,
    storage: Annotated[int, typer.Option(min=1, help="Replicas of storage.")] = 1,
) -> None:
    """Run the four services as local processes (and a local Kafka when KAFKA_BOOTSTRAP_SERVERS is unset); a stage
    given 0 replicas runs elsewhere."""

    async def main() -> int:
        stop = asyncio.Event()
        stop_on_signals(stop)
        replicas = {"ingest": ingest, "cleanup": cleanup, "classify": classify, "storage": storage}
        async with LocalStack(workdir=STATE, replicas=replicas) as stack:
            say(
                f"Newsflow is running: push to {os.environ['KAFKA_BOOTSTRAP_SERVERS']}, "
                f"browse http://127.0.0.1:{stack.api_port}/ or query /articles there — Ctrl-C stops everything"
            )
            assert stack.supervisor is not None
            crashed = asyncio.create_task(stack.supervisor.wait_any())
            stopped = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({crashed, stopped}, return_when=asyncio.FIRST_COMPLETED)
            code = 0
            if crashed in done:
                name, exited = crashed.result()
                say(f"{name} exited with {exited}; stopping the rest")
                # A service that ended by itself, whatever it said, stopped the pipeline: never 0. One killed by a
                # signal is -N to Python; a shell says 128 + N.
                code = 128 - exited if exited < 0 else exited or 1
            else:
                crashed.cancel()
            say("stopping …")
            return code

    # Not 0 when a service ended it: a supervisor (systemd, a CI job) read a crash as a clean stop.
    raise typer.Exit(_run_stack(main))


def _run_stack(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """``main()``'s exit status; 3 with one line when Kafka cannot be started or reached (as ``push`` says it)."""
    try:
        return asyncio.run(main())
    except (KafkaUnavailable, KafkaConnectionError, KafkaSecurityError, TimeoutError, TopicMissing) as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        return 3
    except PipelineAlreadyThere as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        return 2


@app.command()
def process(
    paths: Annotated[list[str], typer.Argument(help="Files, folders, or - for JSONL on standard input.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per input on stdout, in input order.")
    ] = False,
    # Within range and finite: `--timeout nan` gave up at once, after starting Kafka and the services.
    timeout: Annotated[
        float, typer.Option(min=1, max=YEAR, callback=seconds, help="Seconds to wait for all results; then exit 1.")
    ] = 900.0,
    idle_report: Annotated[
        float,
        typer.Option(
            min=1,
            max=YEAR,
            callback=seconds,
            help="Say which inputs wait where after this many seconds without an answer.",
        ),
    ] = 15.0,
    services: Annotated[bool, typer.Option(help="Start the services (--no-services when they already run).")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the services' logs.")] = False,
) -> None:
    """Push the inputs through the whole pipeline and print each one's result; starts and stops what it needs."""
    inputs = _inputs(paths)
    if not inputs:
        err.print("nothing to process: no .txt, .html, .json or .jsonl input found")
        raise typer.Exit(2)

    async def main() -> int:
        stop = asyncio.Event()
        stop_on_signals(stop)
        # A port of its own for storage's API: `process` runs beside `newsflow run` or another `process`.
        async with LocalStack(services=services, quiet_services=not verbose, api_port=free_port()) as stack:
            settings = settings_from_environment(ServiceSettings)
            with _progress() as progress:
                return await process_inputs(
                    settings,
                    inputs,
                    as_json=as_json,
                    timeout=timeout,
                    idle_report=idle_report,
                    supervisor=stack.supervisor,
                    stop=stop,
                    progress=progress,
                    err=err,
                )

    raise typer.Exit(_run_stack(main))


@app.command()
def replay(
    source: Annotated[str, typer.Option("--from", help="'stored' (the database) or 'raw' (the raw topic).")] = "stored",
    stage: Annotated[
        str | None, typer.Option(help="With --from stored: rerun from 'classify' (the default) or from 'cleanup'.")
    ] = None,
    ids: Annotated[
        list[str] | None, typer.Option("--id", help="With --from stored: only these article ids (repeatable).")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="With --from raw: only what arrived since this time (UTC).")
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Everything stored (or on the raw topic): asked for by name, not by default.")
    ] = False,
) -> None:
    """Reprocess articles, e.g. with a new model version: storage keeps each one's history of enrichments."""
    from .replay import replay_raw, replay_stored

    if source not in {"stored", "raw"} or stage not in {None, "classify", "cleanup"}:
        err.print("[red]error:[/] --from is 'stored' or 'raw', --stage is 'classify' or 'cleanup'")
        raise typer.Exit(2)
    # An option that does not apply to the source was ignored: `--from raw --id X` re-sent the whole raw topic.
    given = {"--id": bool(ids), "--stage": stage is not None} if source == "raw" else {"--since": since is not None}
    if misplaced := [option for option, there in given.items() if there]:
        other = "stored" if source == "raw" else "raw"
        err.print(f"[red]error:[/] {' and '.join(misplaced)} only with --from {other}, not --from {source}")
        raise typer.Exit(2)
    # Every stored article is a revision each and work for every stage: asked for by name, as `dlq redrive --all`.
    what = "--id" if source == "stored" else "--since"
    _narrowed_or_all(
        bool(ids) if source == "stored" else since is not None,
        everything,
        neither=f"name what to replay from {source}: {what}, or --all for everything",
        both=f"--all replays everything: leave out {what}, or --all",
    )
    stage = stage or "classify"

    skipped: list[str] = []
    missing: list[str] = []

    async def main(settings: ServiceSettings) -> int:
        with _progress() as progress:
            task = progress.add_task(f"replaying {source}", total=None)
            advance = lambda n: progress.advance(task, n)  # noqa: E731
            if source == "raw":
                return await replay_raw(settings, since_utc(since), advance)
            try:
                # No DATABASE_URL and no `newsflow run` here made an empty newsflow.db in this folder, then a traceback.
                _require_existing(settings.database_url)
                return await _one_line_on_failure(
                    settings.database_url,
                    replay_stored(settings, stage, ids, advance, skipped, missing),  # type: ignore[arg-type]
                )
            except typer.Exit:
                progress.remove_task(task)  # an empty "replaying stored 0/?" was left under the error line
                raise

    count = with_kafka(main)
    settings = settings_from_environment(ServiceSettings)
    target = (
        settings.topic_raw
        if source == "raw"
        else (settings.topic_clean if stage == "classify" else settings.topic_ingested)
    )
    say(f"replayed {count} articles to {target}")
    if missing:
        shown = ", ".join(escape(i) for i in missing[:20]) + (
            f" and {len(missing) - 20} more" if len(missing) > 20 else ""
        )
        err.print(f"[yellow]{len(missing)} ids are not stored[/]: {shown}")
    if skipped:
        err.print(
            f"[yellow]{len(skipped)} stored articles were not replayed[/] (said above): today's contract refuses them"
        )
    if missing or skipped:
        raise typer.Exit(1)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout, for scripts.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh the screen until Ctrl-C.")] = False,
    every: Annotated[
        float, typer.Option(min=0.1, max=DAY, callback=seconds, help="Seconds between refreshes with --watch.")
    ] = 2.0,
    stuck_after: Annotated[
        float,
        typer.Option(
            min=1, max=YEAR, callback=seconds, help="Seconds with records waiting and nothing written: stuck."
        ),
    ] = 300,
    dlq_window: Annotated[
        float, typer.Option(min=1, max=YEAR, callback=seconds, help="Count dead letters written in this many seconds.")
    ] = 3600,
) -> None:
    """Every stage on one screen: lag, records/s, replicas, dead letters, oldest waiting record; exit 1 if stuck."""
    from .status import run_status

    origin = use_local_stack(STATE)
    every_or_once = every if watch else None
    raise typer.Exit(
        run_status(as_json=as_json, watch=every_or_once, stuck_after=stuck_after, dlq_window=dlq_window, origin=origin)
    )


@app.command()
def topics() -> None:
    """Create the topics that are missing (idempotent), with TOPIC_PARTITIONS partitions, records stamped on arrival."""

    async def main(settings: ServiceSettings) -> None:
        created = await ensure_topics(settings)
        say(f"created {', '.join(created)}" if created else "all topics exist")

    with_kafka(main)


@app.command()
def schemas(folder: Annotated[Path, typer.Argument(help="Where to write the JSON Schemas.")] = Path("schemas")) -> None:
    """Export the JSON Schema of every message contract, and the pipeline's AsyncAPI document."""
    from newsflow_shared.schemas import export_schemas

    from .asyncapi import pipeline_yaml

    for path in export_schemas(folder):
        say(f"wrote {path}")
    (folder / "asyncapi.yaml").write_text(pipeline_yaml())
    say(f"wrote {folder / 'asyncapi.yaml'}")


def _database_url(*, named: bool = False) -> str:
    """``DATABASE_URL``, else the database ``newsflow run`` keeps in its state folder, as ``dlq`` and ``replay`` find
    it (these commands read the default, a ``newsflow.db`` in the current folder, and said there was none). With
    ``named``, one of the two must be there: ``db upgrade`` made that default file, unasked, and said all was well.
    """
    use_local_database(STATE)
    if named and not os.environ.get("DATABASE_URL"):
        err.print(
            f"[red]error:[/] DATABASE_URL is not set and `newsflow run` keeps no database in {escape(str(STATE))}/:"
            " set DATABASE_URL to the database to migrate"
        )
        raise typer.Exit(2)
    return settings_from_environment(ServiceSettings).database_url


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[
        str, typer.Argument(help="The revision to stop at (e.g. 0005); the latest by default.")
    ] = "head",
) -> None:
    """Migrate DATABASE_URL to the latest schema (services also do this on start)."""
    from alembic.util.exc import CommandError

    from newsflow_shared.db.migrate import latest_revision, upgrade

    url = _database_url(named=True)
    try:
        reached = _on_database(url, lambda: upgrade(url, revision), must_exist=False)
    except CommandError as error:  # a revision this release does not have: Alembic's traceback was 300 lines
        err.print(f"[red]error:[/] {escape(str(error))} (this release's latest is {latest_revision()})")
        raise typer.Exit(2) from None
    # Said as it is: `db upgrade 0001` stopped there, and `db upgrade base` changed nothing, both "up to date".
    latest = latest_revision()
    if reached == latest:
        say(f"the database schema is up to date (revision {reached})")
    else:
        say(f"the database schema is at revision {reached}; this release's latest is {latest}")


def _on_database(url: str, main: Callable[[], Coroutine[Any, Any, T]], *, must_exist: bool = True) -> T:
    """``main()`` against ``url``; a database that cannot be used is one line and exit 3, not a traceback hundreds
    of lines long (``newsflow db upgrade`` is the Compose and Kubernetes init job: its log is what a person reads).

    With ``must_exist``, a SQLite file that is not there is named rather than made empty, then found to lack tables.
    """
    if must_exist:
        _require_existing(url)
    return asyncio.run(_one_line_on_failure(url, main()))


def _require_existing(url: str) -> None:
    """Exit 3 naming a SQLite file that is not there, rather than make it empty and then find it lacks tables."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").expanduser().is_file():
        shown = escape(parsed.render_as_string(hide_password=True))
        err.print(f"[red]error:[/] no SQLite database at {shown}: the services make it as they start")
        raise typer.Exit(3)


async def _one_line_on_failure(url: str, work: Coroutine[Any, Any, T]) -> T:
    """``work``'s result; a database that cannot be used is one line and exit 3."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from newsflow_shared.errors import first_line

    try:
        return await work
    except (SQLAlchemyError, OSError, ConnectionError) as error:
        shown = escape(make_url(url).render_as_string(hide_password=True))
        reason = escape(first_line(error, 300))
        err.print(f"[red]error:[/] the database at {shown} cannot be used: {type(error).__name__}: {reason}")
        raise typer.Exit(3) from None


@cleanup_app.command("forget-boilerplate")
def forget_boilerplate(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every source's learned lines.")] = False,
) -> None:
    """Reset the learned boilerplate lines (of one source, or all)."""
    from newsflow_cleanup.learned import forget
    from newsflow_shared.db import make_engine

    _forget_narrowed_or_all(source is not None, everything, "--source S")
    url = _database_url()

    async def main() -> int:
        engine = make_engine(url)
        try:
            return await forget(engine, source)
        finally:
            await engine.dispose()

    forgotten = _on_database(url, main)
    say(f"forgot {forgotten} learned line records")
    if source is not None and not forgotten:  # a mistyped source forgot nothing, and said so with exit 0
        err.print(f"[yellow]nothing was learned of the source {escape(repr(source))}[/]: is it spelt as it is sent?")
        raise typer.Exit(1)


def _narrowed_or_all(narrowed: bool, everything: bool, *, neither: str, both: str) -> None:
    """Exit 2, saying ``neither`` or ``both``, unless the command is narrowed or asked for everything by ``--all``:
    acting on everything (deleting it, replaying it) was what a bare command did, with nothing asked."""
    if narrowed == everything:
        err.print(f"[red]error:[/] {both if narrowed else neither}")
        raise typer.Exit(2)


def _forget_narrowed_or_all(narrowed: bool, everything: bool, narrowing: str) -> None:
    _narrowed_or_all(
        narrowed,
        everything,
        neither=f"give {narrowing}, or --all to forget everything",
        both=f"--all forgets everything: leave out {narrowing}, or --all",
    )


@cleanup_app.command("forget-duplicates")
def forget_duplicates(
    older_than_days: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=36_500,  # as CLEANUP_DUPLICATE_DAYS: a date before year 1 cannot be subtracted
            help="Only articles first seen longer ago than this (CLEANUP_DUPLICATE_DAYS does it as batches go).",
        ),
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Empty the whole index.")] = False,
) -> None:
    """Empty the near-duplicate index (or forget its older articles): later articles are compared only with what
    is left."""
    from sqlalchemy import delete

    _forget_narrowed_or_all(older_than_days is not None, everything, "--older-than-days D")

    try:
        from newsflow_cleanup.near_duplicates import DuplicateIndex
    except ImportError as missing:  # storage's image has no cleanup dependencies (numpy, datasketch)
        err.print(
            f"[red]error:[/] this installation lacks cleanup's dependencies ({escape(str(missing.name))}): run it where"
            " cleanup runs, e.g. `kubectl -n newsflow exec deploy/newsflow-cleanup -- newsflow cleanup forget-duplicates"
            f" {'--all' if everything else f'--older-than-days {older_than_days:g}'}`"
        )
        raise typer.Exit(3) from None
    from newsflow_shared.db import make_engine
    from newsflow_shared.db.tables import cleanup_fingerprints, cleanup_lsh

    url = _database_url()

    async def main() -> int | None:
        engine = make_engine(url)
        try:
            if older_than_days is not None:
                before = datetime.now(UTC) - timedelta(days=older_than_days)
                return await DuplicateIndex(engine).forget_before(before)
            async with engine.begin() as connection:
                await connection.execute(delete(cleanup_lsh))
                await connection.execute(delete(cleanup_fingerprints))
            return None
        finally:
            await engine.dispose()

    forgotten = _on_database(url, main)
    if forgotten is None:
        say("the near-duplicate index is empty")
    else:
        say(f"forgot {forgotten} articles first seen over {older_than_days:g} days ago")


@kafka_app.command("fetch")
def kafka_fetch() -> None:
    """Resolve the broker's jars from Maven Central into ~/.cache/newsflow (once)."""
    try:
        say(f"Kafka jars are in {fetch_jars()}")
    except KafkaUnavailable as error:
        say(f"warning: {error}")


@kafka_app.command("start")
def kafka_start(
    workdir: Annotated[Path, typer.Option(help="Data and logs.")] = STATE / "kafka",
    port: Annotated[int, typer.Option(help="Client port.")] = 9092,
) -> None:
    """Start a local broker in the background and print its address."""
    running = LocalKafka.attach(workdir)
    if running:
        print(running.bootstrap_servers)
        return
    try:
        kafka = LocalKafka(workdir, port=port).start()
    except KafkaUnavailable as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(3) from None
    say(f"Kafka is serving; export KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers}")
    print(kafka.bootstrap_servers)


@kafka_app.command("stop")
def kafka_stop(workdir: Annotated[Path, typer.Option(help="Data and logs.")] = STATE / "kafka") -> None:
    """Stop the broker ``kafka start`` left running."""
    running = LocalKafka.attach(workdir)
    if running is None:
        say("no local Kafka is running")
        return
    running.stop()
    say("Kafka stopped")


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is at each line: a progress bar (rich's Live) stands in for it while it draws,
    and prints a line above itself; written to the stderr of the start, a line broke into the bar."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def quiet_client_logs(stream: TextIO | None = None) -> None:
    """The Kafka client's warnings and errors of one kind once a minute, as the services have them.

    With no handler of its own the command printed every one: `tail` with the broker away wrote 45 lines a second
    ("Unable connect to node with id 1", "Failed fetch messages"), 2,439 in a minute, and its own line was lost in them.
    """
    root = logging.getLogger()
    if any(isinstance(f, QuietRepeats) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderr()
    handler.addFilter(QuietRepeats())
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(logging.WARNING)  # what Python printed with no handler, its "last resort"
    root.addHandler(handler)


def entry() -> None:
    quiet_client_logs()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except KafkaSecurityError as error:  # a setting to fix: one line, no traceback
        err.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)
        sys.exit(3)
    except TopicsRefused as error:  # the broker's reason for each topic, and the settings that bear on it
        err.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)
        sys.exit(1)
