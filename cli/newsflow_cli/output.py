"""How ``newsflow process`` shows a result to a person."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.text import Text

# A stored article's text can be megabytes (one unbroken word, a pasted log); a terminal shows the start and says
# how much is left, and ``--json`` prints the whole record for a program.
SHOWN_TEXT_CHARS = 3_000
# Titles, reasons and removals come from the input too; they are cut the same way, shorter.
SHOWN_FIELD_CHARS = 300


def shorten(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, ending in how many more there were."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value) - limit:,} more characters not shown; --json prints them all)"


def _say(console: Console, markup: str) -> None:
    # No highlighter: rich's regex highlighter is quadratic on a long run of word characters (a 40 KB word took
    # 25 s, a 1 MB one hung the command), and the text is the article's, not ours to colour.
    console.print(markup, highlight=False)


def _field(value: Any) -> str:
    return escape(shorten(str(value), SHOWN_FIELD_CHARS))


def show(console: Console, label: str, kind: str, record: dict[str, Any]) -> None:
    if kind == "stored":
        topics = ", ".join(f"{t['label']} ({t['code']}) {t['score']:.2f}" for t in record.get("topics", []))
        _say(console, f"[bold green]stored[/]  {_field(label)}  →  id [bold]{_field(record['id'])}[/]")
        _say(console, f"  title:    {_field(record.get('title') or '—')}")
        _say(console, f"  language: {record['language']} (confidence {record['language_confidence']:.2f})")
        _say(console, f"  topics:   {_field(topics) or '—'}")
        if record.get("duplicate_of"):
            _say(
                console, f"  duplicate of {_field(record['duplicate_of'])} (similarity {record.get('duplicate_score')})"
            )
        for removal in record.get("removed", []):
            _say(console, f"  removed:  {_field(repr(removal['what']))} — {_field(removal['why'])}")
        _say(console, "  text:")
        for paragraph in shorten(record["text"], SHOWN_TEXT_CHARS).split("\n\n"):
            console.print(Padding(Text(paragraph), (0, 0, 1, 4), expand=False))
    elif kind == "unsupported":
        _say(
            console,
            f"[bold yellow]unsupported[/] {_field(label)}  →  id {_field(record['id'])}: language "
            f"{_field(record['language'])} is not in LANGUAGE_ALLOWLIST",
        )
    elif kind == "skipped":
        _say(
            console,
            f"[bold yellow]skipped[/] {_field(label)}  →  id {_field(record['id'])}: {_field(record['reason'])}",
        )
    elif kind == "dead-letter":
        _say(
            console,
            f"[bold red]dead-lettered[/] {_field(label)} at {_field(record['stage'])} ({_field(record['error'])}): "
            f"{_field(record['reason'])}",
        )
    else:
        _say(console, f"[bold red]no result[/] {_field(label)}: {_field(record.get('reason', ''))}")
    console.print()
