"""Reading a raw article off the wire: UTF-8 JSON, normalised once, then the contract.

The normalisation happens here and nowhere else: NUL characters, lone surrogates, bidi
overrides, non-finite and huge numbers are what PostgreSQL, UTF-8 or a reader's screen
cannot take. Every later contract refuses them, so ingest is the one place they are removed,
and the counts of what was removed go into the article's lineage.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from newsflow_shared import ArticleTooLarge, InvalidArticle, MalformedMessage, RawArticle
from newsflow_shared.reasons import describe_validation_error, json_problem
from newsflow_shared.text_safety import Normaliser


def read_raw(value: bytes, *, max_metadata_bytes: int) -> tuple[RawArticle, dict[str, int]]:
    """The article in ``value`` and what normalising it removed, by kind; :class:`RejectedInput` if unreadable."""
    try:
        # Python's parser, not pydantic's: it reads the escaped lone surrogates that JavaScript and
        # Python encoders write, so they can be replaced rather than refuse the whole article.
        data: Any = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, RecursionError, ValueError):  # ValueError: JSONDecodeError, or an integer too long
        raise MalformedMessage(json_problem(value) or "the message is not a UTF-8 JSON object") from None
    if not isinstance(data, dict):
        raise MalformedMessage(json_problem(value) or "the message is not a JSON object")
    normaliser = Normaliser()
    try:
        data = normaliser.json(data)
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
