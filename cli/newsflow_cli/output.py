"""How ``newsflow process`` shows a result to a person."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding


def show(console: Console, label: str, kind: str, record: dict[str, Any]) -> None:
    if kind == "stored":
        topics = ", ".join(f"{t['label']} ({t['code']}) {t['score']:.2f}" for t in record.get("topics", []))
        console.print(f"[bold green]stored[/]  {escape(label)}  →  id [bold]{escape(record['id'])}[/]")
        console.print(f"  title:    {escape(record.get('title') or '—')}")
        console.print(f"  language: {record['language']} (confidence {record['language_confidence']:.2f})")
        console.print(f"  topics:   {escape(topics) or '—'}")
        if record.get("duplicate_of"):
            console.print(
                f"  duplicate of {escape(record['duplicate_of'])} (similarity {record.get('duplicate_score')})"
            )
        for removal in record.get("removed", []):
            console.print(f"  removed:  {escape(repr(removal['what']))} — {escape(removal['why'])}")
        console.print("  text:")
        for paragraph in record["text"].split("\n\n"):
            console.print(Padding(escape(paragraph), (0, 0, 1, 4), expand=False))
    elif kind == "unsupported":
        console.print(
            f"[bold yellow]unsupported[/] {escape(label)}  →  id {escape(record['id'])}: language "
            f"{record['language']} is not in LANGUAGE_ALLOWLIST"
        )
    elif kind == "skipped":
        console.print(
            f"[bold yellow]skipped[/] {escape(label)}  →  id {escape(record['id'])}: {escape(record['reason'])}"
        )
    elif kind == "dead-letter":
        console.print(
            f"[bold red]dead-lettered[/] {escape(label)} at {record['stage']} ({record['error']}): {escape(record['reason'])}"
        )
    else:
        console.print(f"[bold red]no result[/] {escape(label)}: {escape(record.get('reason', ''))}")
    console.print()
