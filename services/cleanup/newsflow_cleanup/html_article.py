"""Whole web pages to article text, title, author and date, with trafilatura."""

from __future__ import annotations

from dataclasses import dataclass

import trafilatura


@dataclass(frozen=True, slots=True)
class ExtractedPage:
    title: str | None
    text: str
    author: str | None
    date: str | None


def extract_article(html: str, url: str | None = None) -> ExtractedPage:
    """The main text of a page; navigation, comments and other chrome are left out."""
    document = trafilatura.bare_extraction(
        html,
        url=url,
        include_comments=False,
        include_tables=True,
        with_metadata=True,
        favor_precision=True,
    )
    if document is None:
        return ExtractedPage(title=None, text="", author=None, date=None)
    return ExtractedPage(
        title=document.title,
        # trafilatura ends each paragraph with one newline; ours are separated by a blank line.
        text="\n\n".join(line for line in (document.text or "").split("\n") if line.strip()),
        author=document.author,
        date=document.date,
    )
