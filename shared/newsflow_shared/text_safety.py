"""What text may travel and be stored: one normalisation at ingest, one check on every later contract.

PostgreSQL refuses NUL in text and in JSON, UTF-8 cannot encode a lone surrogate, and
bidirectional overrides make a headline read backwards in every tool that shows it. Ingest
removes them once and records how many (:func:`normalise`); every contract after ingest
refuses them (:data:`SafeText`), so a later stage that makes one is caught at its own door.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections import Counter
from typing import Annotated, Any

from pydantic import AfterValidator

# Embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069). The marks LRM and RLM stay:
# right-to-left text needs them and they cannot reorder anything around them.
_BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_UNSAFE = re.compile(f"[\x00\ud800-\udfff{_BIDI_CONTROLS}]")
_KIND = {"\x00": "nul"} | dict.fromkeys(_BIDI_CONTROLS, "bidi_control")

MAX_METADATA_DEPTH = 16
MAX_SAFE_INTEGER = 2**53
"""Beyond this a JSON number loses digits in JavaScript and in PostgreSQL's float; it travels as a string."""


def _kind(char: str) -> str:
    return _KIND.get(char, "lone_surrogate")


class Normaliser:
    """Cleans strings and JSON values and counts what it removed, by kind."""

    def __init__(self) -> None:
        self.changes: Counter[str] = Counter()

    def text(self, value: str) -> str:
        if not _UNSAFE.search(value):
            return value

        def replace(match: re.Match[str]) -> str:
            kind = _kind(match.group())
            self.changes[kind] += 1
            return "\ufffd" if kind == "lone_surrogate" else ""

        return _UNSAFE.sub(replace, value)

    def json(self, value: Any, depth: int = 0) -> Any:
        """A JSON value every store accepts: clean strings, finite numbers, bounded depth."""
        if depth > MAX_METADATA_DEPTH:
            raise ValueError(f"metadata is nested more than {MAX_METADATA_DEPTH} levels deep")
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, float) and not math.isfinite(value):
            self.changes["non_finite_number"] += 1
            return None
        if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
            self.changes["huge_integer"] += 1
            return str(value)
        if isinstance(value, dict):
            cleaned: dict[str, Any] = {}
            numbers: dict[str, int] = {}  # where each name's search for a free number goes on: N collisions cost N
            for key, item in value.items():
                name = self.text(str(key))
                if name in cleaned:  # "a\u0000" and "a": keep both values, not the last
                    self.changes["metadata_key_renamed"] += 1
                    name = free_key(name, cleaned, numbers)
                cleaned[name] = self.json(item, depth + 1)
            return cleaned
        if isinstance(value, list):
            return [self.json(item, depth + 1) for item in value]
        return value


def free_key(name: str, taken: dict[str, Any], numbers: dict[str, int] | None = None) -> str:
    """``name``, or ``name (2)``, ``name (3)``… whichever ``taken`` does not hold yet: where two keys of a
    message come to one name, both values are kept and the second is renamed where a person sees it.

    ``numbers`` remembers, per name, the number to try next: without it, thousands of keys that come to one name
    cost the square of their number (8,000 took 3.8 s of ingest's event loop)."""
    if name not in taken:
        return name
    numbers = {} if numbers is None else numbers
    number = numbers.get(name, 2)
    while f"{name} ({number})" in taken:
        number += 1
    numbers[name] = number + 1
    return f"{name} ({number})"


# Format characters (zero-width space and joiners, the BOM, word joiner), controls and separators: none of them is
# anything a reader sees.
_UNSEEN = frozenset({"Cf", "Cc", "Zs", "Zl", "Zp"})


def has_words(text: str) -> bool:
    """A letter or a digit somewhere: what an article's clean text must have to be classified and stored. Cleanup
    asks it of what it leaves, and the CleanArticle contract of what any producer sends."""
    return any(ch.isalnum() for ch in text)


# A decimal character reference of more digits than Python reads as a number at once (4,300): html.unescape raised
# ValueError ("Exceeds the limit (4300 digits) for integer string conversion") on a 5 KB article, which ingest and
# cleanup then retried as a bug and dead-lettered with that as its reason, and storage's page answered 500.
_LONG_DECIMAL_REFERENCE = re.compile(r"&#([0-9]{8,})(;?)")
_LAST_CODE_POINT_DIGITS = len(str(0x10FFFF))


def _shortened(reference: re.Match[str]) -> str:
    digits = reference[1].lstrip("0") or "0"
    # Past U+10FFFF html.unescape gives U+FFFD, whatever the number: the same, without reading it.
    return "\ufffd" if len(digits) > _LAST_CODE_POINT_DIGITS else f"&#{digits}{reference[2]}"


def unescape_html(text: str) -> str:
    """:func:`html.unescape`, for text anyone may send: a reference's number of any length is read as a browser would."""
    if "&#" in text:
        text = _LONG_DECIMAL_REFERENCE.sub(_shortened, text)
    return html.unescape(text)


def reads_blank(text: str | None) -> bool:
    """Nothing a reader would see: empty, whitespace, zero-width characters, or entities of those ("&nbsp;").

    Ingest and cleanup both ask it of an article's text before they take its page instead: with ``str.strip`` a text
    of one zero-width space hid the page (cleanup then emptied the text and dead-lettered the article), and gave
    every such article one id.
    """
    if not text:
        return True
    if "&" in text:
        text = unescape_html(text)
    return all(ch.isspace() or unicodedata.category(ch) in _UNSEEN for ch in text)


def make_safe(value: str) -> str:
    """``value`` without what :data:`SafeText` refuses, for text a later stage makes: an entity such as
    ``&#x202e;`` that cleanup decodes is a bidi override again, which ingest had no way to see."""
    return Normaliser().text(value)


def unsafe_characters(value: str) -> str | None:
    """Name the first character no store accepts, or None."""
    found = _UNSAFE.search(value)
    if found is None:
        return None
    return f"{_kind(found.group()).replace('_', ' ')} U+{ord(found.group()):04X} at position {found.start()}"


def refuse_unsafe(value: str) -> str:
    """``value`` unchanged, or a ValueError naming the first character :data:`SafeText` refuses."""
    problem = unsafe_characters(value)
    if problem:
        raise ValueError(f"contains a character that cannot be stored ({problem}); ingest removes these")
    return value


SafeText = Annotated[str, AfterValidator(refuse_unsafe)]
"""A string without NUL, lone surrogates or bidi overrides: what every contract after ingest carries."""


def check_json(value: Any, depth: int = 0) -> Any:
    """Refuse what :meth:`Normaliser.json` would have changed: contracts after ingest carry only clean JSON."""
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"metadata is nested more than {MAX_METADATA_DEPTH} levels deep")
    if isinstance(value, str):
        refuse_unsafe(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("metadata holds NaN or Infinity, which JSON stores refuse")
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_unsafe(str(key))
            check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json(item, depth + 1)
    return value
