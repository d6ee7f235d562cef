"""Search matches marked in escaped text: article text is hostile input, so it is escaped first, piece by piece,
and only our own ``<mark>`` is markup."""

from __future__ import annotations

import re

from markupsafe import Markup, escape

SNIPPET_SEARCH_CHARACTERS = 100_000
"""How far into an article its snippet looks for a match. The page is drawn on the event loop that also keeps the
stage's consumer alive, and a query of many terms the regular expression never finds (hyphenated pairs, which
full-text search reads as phrases) scanned every result's whole text: 0.5 s for one article of 2 MB."""


MARKED_TERMS = 16
"""How many of a query's words are marked (its longest: "the" and "in" match less than "climate"). The expression tries
each at every place in the text: 250 hyphenated words, which no text held as written, took 240 ms a result, 2.5 s a
page on the event loop; sixteen cost what one does."""


def word_pattern(words: str | None) -> re.Pattern[str] | None:
    """Each searched word at the start of a word, in any case (what full-text search matched, near enough)."""
    given = dict.fromkeys(w for w in (words or "").split() if any(ch.isalnum() for ch in w))
    terms = sorted(given, key=len, reverse=True)[:MARKED_TERMS]  # sorted() keeps the query's order among equals
    if not terms:
        return None
    return re.compile(r"(?<!\w)(" + "|".join(re.escape(t) for t in terms) + r")", re.IGNORECASE)


def marked(text: str, pattern: re.Pattern[str] | None) -> Markup:
    if pattern is None:
        return Markup(escape(text))
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(escape(text[last : match.start()]))
        out.append(Markup("<mark>") + escape(match.group(0)) + Markup("</mark>"))
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


def snippet(text: str, pattern: re.Pattern[str] | None, width: int = 260) -> Markup:
    """A window of the text around its first match (or its start), with the matches marked."""
    flat = " ".join(text[:SNIPPET_SEARCH_CHARACTERS].split())
    match = pattern.search(flat) if pattern is not None else None
    start = max(0, match.start() - width // 3) if match else 0
    if start:
        space = flat.find(" ", start)
        start = space + 1 if 0 <= space < start + 30 else start
    end = min(len(flat), start + width)
    if end < len(flat):
        space = flat.rfind(" ", start, end)
        end = space if space > start + width // 2 else end
    piece = marked(flat[start:end], pattern)
    more = end < len(flat) or len(text) > SNIPPET_SEARCH_CHARACTERS
    return (Markup("… ") if start else Markup("")) + piece + (Markup(" …") if more else Markup(""))
