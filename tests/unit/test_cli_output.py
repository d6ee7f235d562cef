"""What ``newsflow process`` prints for an answer: hostile text must neither hang it nor flood the terminal."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from newsflow_cli.output import SHOWN_FIELD_CHARS, SHOWN_TEXT_CHARS, show


def _stored(text: str, title: str = "A title") -> dict[str, object]:
    return {
        "id": "sha256:abc",
        "title": title,
        "language": "en",
        "language_confidence": 0.98,
        "topics": [{"label": "economy", "code": "04000000", "score": 0.91}],
        "removed": [],
        "text": text,
    }


def _render(kind: str, record: dict[str, object]) -> tuple[str, Console]:
    # Wide enough that nothing wraps, so the tests can look for whole strings.
    console = Console(file=io.StringIO(), width=20_000, record=True, force_terminal=True)
    show(console, "input.json", kind, record)
    return console.export_text(clear=False), console


@pytest.mark.timeout(30)
def test_a_one_megabyte_word_is_shown_cut_and_at_once() -> None:
    # rich's highlighter is quadratic on a run of word characters: this record hung the command for minutes.
    text, _ = _render("stored", _stored("x" * 1_000_000))

    assert "x" * SHOWN_TEXT_CHARS + "… (997,000 more characters not shown; --json prints them all)" in text
    assert "x" * (SHOWN_TEXT_CHARS + 1) not in text


def test_an_article_text_is_printed_as_written_not_coloured_or_read_as_markup() -> None:
    article = "Shares rose 4.5% to 120 on 2026-12-03 [bold]after[/bold] a call to https://example.com."
    text, console = _render("stored", _stored(article, title="[red]Title[/red] 99"))

    assert article in text
    assert "[red]Title[/red] 99" in text
    # The highlighter would give "4.5", "120" and the URL styles of their own.
    body = [segment for segment in console._record_buffer if "Shares" in segment.text or "120" in segment.text]
    assert body
    assert all(not segment.style for segment in body)


def test_a_short_text_is_shown_whole_in_its_paragraphs() -> None:
    text, _ = _render("stored", _stored("First paragraph.\n\nSecond paragraph."))

    assert "First paragraph." in text
    assert "Second paragraph." in text
    assert "not shown" not in text


def test_long_titles_and_reasons_are_cut() -> None:
    text, _ = _render("stored", _stored("body", title="T" * 10_000))
    assert "T" * SHOWN_FIELD_CHARS in text
    assert "T" * (SHOWN_FIELD_CHARS + 1) not in text

    reason = "field 'text': " + "y" * 50_000
    text, _ = _render("dead-letter", {"stage": "ingest", "error": "invalid", "reason": reason})
    assert "dead-lettered" in text
    assert "not shown" in text
    assert len(text) < 2_000
