"""Reading a raw article off the wire: UTF-8 JSON, normalised once, then the contract.

The normalisation happens here and nowhere else: NUL characters, lone surrogates, bidi
overrides, non-finite and huge numbers are what PostgreSQL, UTF-8 or a reader's screen
cannot take. Every later contract refuses them, so ingest is the one place they are removed,
and the counts of what was removed go into the article's lineage.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from newsflow_shared import ArticleTooLarge, InvalidArticle, MalformedMessage, RawArticle
from newsflow_shared.reasons import describe_validation_error, json_problem
from newsflow_shared.text_safety import Normaliser, free_key

# JSON may spell one character in up to 12 bytes ("\ud83d\ude00" for an emoji of 4 in UTF-8, "\u0001" for one of 1):
# six times the UTF-8 bytes bounds every escaping a producer may use of the characters ingest keeps. (A record that
# is mostly characters ingest removes, NUL and bidi controls, can be larger and is refused: it is not an article.)
_MOST_BYTES_A_CHARACTER_TAKES = 6
# Title, URL, source, language, dates and the JSON around them, each bounded by the contract (title and URL escaped
# at 12 bytes a character: ~72 KB), and whitespace between the fields: well under this.
_FIELDS_BESIDE_THE_BODY = 512 * 1024


def largest_readable(max_bytes: int, max_metadata_bytes: int) -> int:
    """The most bytes a raw record can take and still hold an article within the limits, however it is escaped."""
    return _MOST_BYTES_A_CHARACTER_TAKES * (max_bytes + max_metadata_bytes) + _FIELDS_BESIDE_THE_BODY


def read_raw(
    value: bytes, *, max_metadata_bytes: int, max_bytes: int | None = None
) -> tuple[RawArticle, dict[str, int]]:
    """The article in ``value`` and what normalising it removed, by kind; :class:`RejectedInput` if unreadable.

    With ``max_bytes`` (``INGEST_MAX_BYTES``), a record too large to hold any article within the limits is refused
    before it is parsed: a 32 MiB record became ~100 MB of Python objects first, a batch of them more than a
    replica's memory."""
    if max_bytes is not None and len(value) > (largest := largest_readable(max_bytes, max_metadata_bytes)):
        raise ArticleTooLarge(
            f"the message is {len(value) / 1_048_576:.1f} MiB: no article within INGEST_MAX_BYTES and "
            f"INGEST_MAX_METADATA_BYTES takes more than {largest / 1_048_576:.1f} MiB, however it is escaped"
        )
    most = max_metadata_bytes // 2 + 16
    if _containers_in(value, most) > most:
        raise ArticleTooLarge(
            f"the message holds more than {most:,} JSON arrays and objects, more than an article whose metadata"
            f" takes {max_metadata_bytes / 1024:.0f} KiB of JSON can (INGEST_MAX_METADATA_BYTES)"
        )
    try:
        # Python's parser, not pydantic's: it reads the escaped lone surrogates that JavaScript and
        # Python encoders write, so they can be replaced rather than refuse the whole article.
        data: Any = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, RecursionError, ValueError):  # ValueError: JSONDecodeError, or an integer too long
        raise MalformedMessage(json_problem(value) or "the message is not a UTF-8 JSON object") from None
    if not isinstance(data, dict):
        raise MalformedMessage(json_problem(value) or "the message is not a JSON object")
    free_form = {key: item for key, item in data.items() if key not in _FIELDS}
    if most < _values_in(free_form, most):
        raise ArticleTooLarge(
            f"the article's metadata (and unknown fields) hold more than {most:,} keys and values, more than"
            f" {max_metadata_bytes / 1024:.0f} KiB of JSON can (INGEST_MAX_METADATA_BYTES)"
        )
    normaliser = Normaliser()
    try:
        data = _normalised(data, normaliser)
        article = RawArticle.model_validate(data)
    except ValidationError as error:
        raise InvalidArticle(describe_validation_error(error, "RawArticle")) from None
    except ValueError as error:
        raise InvalidArticle(f"the article does not match the RawArticle contract: {error}") from None
    metadata_bytes = len(json.dumps(article.metadata, ensure_ascii=False).encode())
    if metadata_bytes > max_metadata_bytes:
        raise ArticleTooLarge(
            f"the article's metadata (and unknown fields) take {metadata_bytes / 1024:.0f} KiB; "
            f"the limit is {max_metadata_bytes / 1024:.0f} KiB (INGEST_MAX_METADATA_BYTES)"
        )
    return article, dict(normaliser.changes)


_FIELDS = frozenset(RawArticle.model_fields) - {"metadata"}
# A string never closed runs to the end ("?"): made to close, the expression failed at the end and began again at the
# next quote, the square of the record's length (230 KB of escaped quotes: 128 s).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)


def _containers_in(value: bytes, most: int) -> int:
    """The JSON arrays and objects in ``value``, outside its strings; exact once past ``most``.

    Parsed, a 12 MB record of four million empty arrays took 2-3 s of ingest's event loop and 310 MiB, a batch of
    two 600 MiB, before it was refused. Every array or object a valid article holds is in its metadata, which the
    limit bounds. Brackets are counted first, strings and all (a millisecond for 12 MB): only where there are that
    many is the count made exact, with the strings taken out (~0.1 s for 12 MB), for a text may hold brackets.
    """
    if value.count(b"[") + value.count(b"{") <= most:
        return 0
    outside = _JSON_STRING.sub(b"", value)
    return outside.count(b"[") + outside.count(b"{")


def _values_in(data: dict[str, Any], most: int) -> int:
    """The values and keys in ``data``, counted up to one past ``most``.

    Each takes two bytes of JSON at least (``0,``), so metadata within the limit holds at most half as many. Counted
    before the normaliser and the contract walk them, at ~6 µs each: a 13 MB record of a million keys (within what
    :func:`largest_readable` lets through) took 6.5 s of ingest's event loop to be refused as too large.
    """
    count = 0
    waiting: list[Any] = [data]
    while waiting and count <= most:
        item = waiting.pop()
        if isinstance(item, dict):
            count += len(item)
            waiting.extend(item.values())
        elif isinstance(item, list):
            count += len(item)
            waiting.extend(item)
    return count


def _normalised(data: dict[str, Any], normaliser: Normaliser) -> dict[str, Any]:
    """The message with its strings made safe, and only the free-form part (metadata, unknown fields) made JSON every
    store takes. A contract field keeps a number as it came, for the contract to refuse: turned into text or null
    like a metadata value, a huge integer passed as an ``id`` where a small one was refused, and a ``title`` of
    ``1e400`` vanished without a word."""
    fields = {
        key: normaliser.text(value) if isinstance(value, str) else value
        for key, value in data.items()
        if key in _FIELDS
    }
    if isinstance(given := data.get("id"), str) and fields["id"] != given:
        # Made safe, "a\u202eb" became "ab": the id of another article, whose row it then replaced. An id is a key.
        raise InvalidArticle(
            "the article's 'id' holds characters an id cannot keep (bidi controls, NUL, a lone surrogate): made"
            " safe it would be another article's id; give an id without them"
        )
    for key, value in normaliser.json({k: v for k, v in data.items() if k not in _FIELDS}).items():
        if key in fields:  # a name that came to a field's once made safe ("title\u202e"): both values are kept
            normaliser.changes["metadata_key_renamed"] += 1
            key = free_key(key, fields)
        fields[key] = value
    return fields
