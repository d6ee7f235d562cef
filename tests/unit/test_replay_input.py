"""What `newsflow replay --stage classify|cleanup` sends for a stored article: today's contract, whatever the row holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsflow_cleanup.language import LanguageDetector
from newsflow_cleanup.logic import clean
from newsflow_cleanup.settings import CleanupSettings
from newsflow_cli.replay import as_input_to
from newsflow_shared import CleanArticle, IngestedArticle, StoredArticle
from newsflow_shared.contracts import AS_STORED, MAX_REMOVALS, SUMMED_UP

SAMPLES = Path(__file__).parents[2] / "samples"
STORED = {
    "id": "old-1",
    "text": "Storms closed the ports.",
    "language": "en",
    "language_confidence": 0.9,
    "content_hash": "h",
    "lineage": [
        {"stage": "ingest", "version": "1"},
        {"stage": "cleanup", "version": "1"},
        {"stage": "classify", "version": "1"},
    ],
}


def test_a_row_stored_with_more_removals_than_listed_today_is_replayed_within_the_bounds() -> None:
    """Stored before an article listed at most 200 removals: replaying it to classify raised on the first such row,
    after the batches before it had gone."""
    row = StoredArticle.model_validate(STORED | {"removed": [{"what": "Ad", "why": "rule"}] * 300}, context=AS_STORED)
    message = as_input_to("classify", row)
    assert isinstance(message, CleanArticle)
    assert len(message.removed) == MAX_REMOVALS
    assert message.removed[-1].why == SUMMED_UP
    assert [step.stage for step in message.lineage] == ["ingest", "cleanup"]
    CleanArticle.model_validate_json(message.model_dump_json())  # classify reads it
    assert isinstance(as_input_to("cleanup", row), IngestedArticle)


def test_replaying_to_cleanup_sends_the_body_as_it_arrived_and_the_byline() -> None:
    """Cleanup was sent the clean text as if it had arrived: it recorded that as ``arrived_text`` with nothing
    removed, and storage overwrote the only copies of what arrived and what was taken out. An article that came as a
    page lost its byline the same way: the page is not sent again."""
    page = (SAMPLES / "storm-warning.html").read_text()
    arrived = IngestedArticle(id="storm-1", url="https://news.example/storm", html=page, content_hash="h")
    detector = LanguageDetector.for_settings(CleanupSettings())
    first = clean(arrived, detector, CleanupSettings())
    assert first.author == "Maria Jensen"
    assert first.arrived_text != first.text
    row = StoredArticle(**first.model_dump(), topics=[])

    message = as_input_to("cleanup", row)
    assert isinstance(message, IngestedArticle)
    assert (message.text, message.author, message.html) == (first.arrived_text, "Maria Jensen", None)
    again = clean(IngestedArticle.model_validate_json(message.model_dump_json()), detector, CleanupSettings())
    assert (again.text, again.arrived_text, again.author) == (first.text, first.arrived_text, first.author)
    assert again.removed == first.removed


def test_a_row_stored_before_arrived_text_replays_its_text_to_cleanup() -> None:
    row = StoredArticle.model_validate(STORED, context=AS_STORED)
    assert row.arrived_text is None
    assert as_input_to("cleanup", row).text == "Storms closed the ports."  # type: ignore[union-attr]


def test_replaying_ids_that_are_not_stored_says_so_and_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mistyped id "replayed 0 articles" and exited 0: a script never knew."""
    import asyncio
    import contextlib
    from collections.abc import AsyncIterator

    from typer.testing import CliRunner

    from newsflow_cli import main, replay
    from newsflow_shared import ServiceSettings, settings_from_environment
    from newsflow_shared.db import make_engine, upgrade
    from newsflow_storage.repository import ArticleRepository

    from .test_dlq_redrive import Producer
    from .test_storage import article

    database = f"sqlite+aiosqlite:///{tmp_path}/news.db"

    async def store() -> None:
        await upgrade(database)
        engine = make_engine(database)
        await ArticleRepository(engine).store([article("stored-1")])
        await engine.dispose()

    asyncio.run(store())
    client = Producer()

    @contextlib.asynccontextmanager
    async def producer(settings: ServiceSettings) -> AsyncIterator[Producer]:
        yield client

    monkeypatch.setenv("DATABASE_URL", database)
    monkeypatch.setattr(replay, "producer", producer)
    monkeypatch.setattr(main, "with_kafka", lambda work: asyncio.run(work(settings_from_environment(ServiceSettings))))
    ids = ["--id", "stored-1", "--id", "no-such-1", "--id", "no-such-2", "--id", "no-such-1"]
    result = CliRunner().invoke(main.app, ["replay", *ids], env={"COLUMNS": "400"})
    assert result.exit_code == 1, result.output
    assert "2 ids are not stored: no-such-1, no-such-2" in result.stderr
    assert [topic for topic, _ in client.sent] == ["articles.clean"]  # the stored one still went
    result = CliRunner().invoke(main.app, ["replay", "--id", "stored-1"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
