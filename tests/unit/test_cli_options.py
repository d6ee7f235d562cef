"""Options a command refuses at once, in one line (exit 2), and times it reads the same way everywhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsflow_cli import dlq
from newsflow_cli.common import EPOCH, since_utc
from newsflow_cli.main import app

from .. import webdata


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["run", "--storage", "0"], "--storage"),  # KeyError: 'storage' after the broker had started
        (["run", "--classify", "-1"], "--classify"),
        (["status", "--dlq-window", "nan"], "--dlq-window"),  # read as "Kafka does not answer" (exit 3)
        (["status", "--dlq-window", "1e12"], "--dlq-window"),  # a window before 1970: the same
        (["status", "--stuck-after", "inf"], "--stuck-after"),
        (["status", "--watch", "--every", "0"], "--every"),
        (["process", "--timeout", "nan", "x.txt"], "--timeout"),  # gave up at once, after starting everything
        (["process", "--timeout", "-1", "x.txt"], "--timeout"),
        (["process", "--idle-report", "0", "x.txt"], "--idle-report"),
    ],
)
def test_a_count_or_a_time_out_of_range_is_refused_before_anything_starts(args: list[str], option: str) -> None:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        # Each was ignored: the first re-sent the whole raw topic, the second every stored article.
        (["--from", "raw", "--id", "a-1"], "--id only with --from stored, not --from raw"),
        (["--since", "2099-01-01"], "--since only with --from raw, not --from stored"),
        (["--from", "raw", "--stage", "cleanup", "--all"], "--stage only with --from stored"),
        # Nothing named: everything, by a bare `newsflow replay`.
        ([], "name what to replay from stored: --id, or --all for everything"),
        (["--from", "raw"], "name what to replay from raw: --since, or --all for everything"),
        (["--id", "a-1", "--all"], "--all replays everything"),
    ],
)
def test_replay_refuses_options_it_would_ignore_and_asks_for_all_by_name(args: list[str], said: str) -> None:
    result = CliRunner().invoke(
        app, ["replay", *args], env={"COLUMNS": "200", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    )
    assert result.exit_code == 2, result.output
    assert said in result.output


def test_run_leaves_a_stage_with_no_replicas_to_replicas_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """`run --classify 0` (classify on a GPU machine, `bench/cold_start.py`'s new replica) was refused along with
    `--storage 0`: only storage, which serves the page `run` points to, needs one."""
    from newsflow_cli import main, stack

    started: list[dict[str, int]] = []

    class Recorded(stack.LocalStack):
        async def __aenter__(self) -> stack.LocalStack:
            started.append(dict(self.replicas))
            raise KeyboardInterrupt  # stop before any broker or process starts

    monkeypatch.setattr(main, "LocalStack", Recorded)
    CliRunner().invoke(app, ["run", "--classify", "0", "--ingest", "0"], env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    assert started == [{"ingest": 0, "cleanup": 1, "classify": 0, "storage": 1}]


def test_since_is_utc_without_an_offset_and_never_before_kafkas_record_times() -> None:
    """`dlq --since` read a time without an offset as UTC and `replay --since` as local time; a time before 1970 was
    a negative timestamp, and aiokafka's traceback."""
    assert since_utc(None) is None
    assert since_utc(datetime(2026, 3, 1, 12)) == datetime(2026, 3, 1, 12, tzinfo=UTC)
    later = datetime(2026, 3, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert since_utc(later) == later
    assert since_utc(datetime(1960, 1, 1)) == EPOCH
    assert since_utc(EPOCH).timestamp() == 0  # type: ignore[union-attr]


def test_dlq_lists_its_table_on_stdout_with_the_error_class_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table went to stderr (`dlq list > file` kept nothing) and, 80 columns wide without a terminal (kubectl
    exec), cut the error class that the runbook pastes into `--error`: "MalformedMess…"."""
    letter = webdata.dead_letter(7).model_copy(
        update={"error": "MalformedMessageOfSomeLength", "reason": "why " * 100, "stage": "ingest"}
    )
    monkeypatch.setattr(dlq, "with_kafka", lambda main: [dlq.Found(partition=3, offset=120, letter=letter)])
    result = CliRunner().invoke(app, ["dlq", "list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "MalformedMessageOfSomeLength" in result.stdout
    assert "3:120" in result.stdout
    assert "1 dead letters" in result.stderr


def test_push_with_nothing_to_push_says_so(tmp_path: Path) -> None:
    """An empty folder went on to Kafka and said "pushed 0 of 0", exit 0, where `process` exits 2."""
    result = CliRunner().invoke(app, ["push", str(tmp_path)], env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    assert result.exit_code == 2, result.output
    assert "nothing to push" in result.output


def test_push_of_an_empty_pipe_is_no_error() -> None:
    """`produce | newsflow push -` on a day with nothing: said, exit 0."""
    result = CliRunner().invoke(app, ["push", "-"], input="", env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    assert result.exit_code == 0, result.output
    assert "standard input held no article" in result.output


@pytest.mark.parametrize("command", [["list"], ["redrive", "--all"]])
def test_dlq_refuses_a_stage_no_letter_names(command: list[str]) -> None:
    # A misspelt stage matched nothing: `dlq redrive --stage clenaup` "re-drove 0 dead letters", exit 0.
    result = CliRunner().invoke(
        app, ["dlq", *command, "--stage", "clenaup"], env={"COLUMNS": "200", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    )
    assert result.exit_code == 2, result.output
    assert "--stage is one of push, ingest, cleanup, classify, storage, not 'clenaup'" in result.output
