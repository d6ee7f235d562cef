"""Plain-language reasons for dead letters: what is wrong with a message, and where."""

from __future__ import annotations

import json
import sys

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from .errors import RejectedInput
from .failures import sqlstate


def json_problem(value: bytes) -> str | None:
    """Say why ``value`` is not a UTF-8 JSON object, or return None when it is one."""
    if not value:
        return "the message is empty: expected a JSON object with 'text' or 'html'"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as error:
        return (
            f"the message is not UTF-8 text (invalid byte 0x{value[error.start]:02x} at position {error.start}); "
            "it may be binary or in another encoding: send JSON encoded as UTF-8"
        )
    if "\x00" in text:
        return "the message contains NUL bytes: it looks binary, not like a JSON article"
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        return f"the message is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
    except RecursionError:
        return "the message is JSON nested too deep to read (hundreds of levels): send a flat article object"
    except ValueError as error:  # Python's limit on an integer's digits; not a JSONDecodeError
        if "digits" in str(error):
            return (
                f"the message has an integer of more than {sys.get_int_max_str_digits():,} digits: send it as a string"
            )
        return f"the message is not JSON that can be read: {error}"
    if not isinstance(parsed, dict):
        return f"the message is JSON but a {type(parsed).__name__}, not an object with 'text' or 'html'"
    return None


def explain(error: BaseException) -> str:
    """A sentence for the ``reason`` field: what is wrong, and where."""
    if isinstance(error, RejectedInput):
        return error.reason
    if isinstance(error, ValidationError):
        return describe_validation_error(error, error.title)
    if isinstance(error, DBAPIError):
        code = sqlstate(error)
        # The driver's own first line; SQLAlchemy's text would add the whole statement and its parameters.
        detail = str(error.orig if error.orig is not None else error).strip().splitlines()
        return (
            f"the database refused this record{f' (SQLSTATE {code})' if code else ''}: "
            f"{(detail[0] if detail else type(error).__name__)[:300]}"
        )
    if isinstance(error, UnicodeError):
        return f"text in this record cannot be encoded: {str(error)[:300]}"
    if isinstance(error, RecursionError):
        return "this record is nested too deep to process"
    text = str(error).strip() or "no message"
    return f"unexpected {type(error).__name__} while processing: {text[:500]}"


def describe_validation_error(error: ValidationError, contract: str = "RawArticle") -> str:
    parts = []
    for item in error.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "message"
        message = item["msg"]
        if item["type"] == "string_pattern_mismatch" and where == "id":
            parts.append("field 'id': must be 1 to 200 characters with no spaces or control characters")
        elif where == "message" or item["type"] == "value_error":
            parts.append(message.removeprefix("Value error, "))
        else:
            got = type(item.get("input")).__name__ if "input" in item else None
            got_text = f" (got {got})" if got and item["type"] not in {"missing"} else ""
            parts.append(f"field '{where}': {message}{got_text}")
    more = error.error_count() - len(parts)
    suffix = f"; and {more} more problem(s)" if more > 0 else ""
    return f"the article does not match the {contract} contract: " + "; ".join(parts) + suffix
