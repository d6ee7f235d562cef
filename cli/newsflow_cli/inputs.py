"""Reading what users push: files, folders, JSONL, standard input, into Kafka message values.

The bytes of a JSON or JSONL record are sent exactly as they are: ingest is the
one place that validates, so a broken record reaches the dead-letter topic with
its reason instead of vanishing in the command line tool.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SUFFIXES = {".txt", ".html", ".htm", ".json", ".jsonl", ".ndjson"}
MAX_KEY_BYTES = 4096


@dataclass(frozen=True)
class Input:
    """One article to push: the message value, where it came from, and the trace id that finds its result."""

    label: str
    value: bytes
    trace_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    key: bytes | None = None  # the record's Kafka key: see key_of


def key_of(record: object) -> bytes | None:
    """The raw record's Kafka key: the article id ingest will give it where the record names one (its ``id``, else
    one made from its ``url``), else none.

    Versions of one article must reach ingest in the order they were pushed. Without a key each record went to a
    random partition, so a correction could be handled, and stored, before the version it corrects, and left behind
    for good (with two ingest replicas a later re-push of it was skipped as already seen).
    """
    from newsflow_ingest.logic import url_id

    if not isinstance(record, dict):
        return None
    given, url = record.get("id"), record.get("url")
    try:
        if isinstance(given, str) and given.strip():
            key = given.encode("utf-8", "surrogatepass")
        elif isinstance(url, str) and url.strip():
            key = url_id(url).encode()  # of the normalised URL: "HTTPS://Site/a/" and "https://site/a" are one
        else:
            return None
    except (UnicodeEncodeError, ValueError):  # a lone surrogate, a URL urllib cannot split: ingest names them
        return None
    # One far past any real id (ingest refuses it) is not worth its bytes twice in the record.
    return key if len(key) <= MAX_KEY_BYTES else None


class UnreadablePath(ValueError):
    """A path that is not a file or folder, or a file type Newsflow does not read."""


def expand(paths: list[str]) -> Iterator[Path | None]:
    """Files named, and the readable files under folders named, sorted; ``-`` (None) is standard input."""
    for name in paths:
        if name == "-":
            yield None
            continue
        path = Path(name)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        elif path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise UnreadablePath(
                    f"{shown(path)}: Newsflow reads {', '.join(sorted(SUFFIXES))} files, not '{path.suffix}'"
                )
            yield path
        else:
            raise UnreadablePath(f"{shown(path)}: no such file or folder")


def read_inputs(paths: list[str]) -> Iterator[Input]:
    for path in expand(paths):
        if path is None:
            yield from _jsonl(sys.stdin.buffer.read(), "<stdin>")
            continue
        label = shown(path)
        try:
            data = path.read_bytes()
        except OSError as error:  # permissions, a file gone since the folder was listed: one line, not a traceback
            raise UnreadablePath(f"{label}: {error.strerror or error}") from None
        suffix = path.suffix.lower()
        if suffix in {".jsonl", ".ndjson"}:
            yield from _jsonl(data, label)
        elif suffix == ".json":
            yield from _json(data, label)
        elif suffix == ".txt":
            yield Input(label, _text_article(data, path))
        else:
            yield Input(label, _html_article(data, path))


def shown(path: Path) -> str:
    """``path`` as text a terminal can print: a name that is not UTF-8 comes from the file system with lone
    surrogates in it, which raised when printed."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _jsonl(data: bytes, label: str) -> Iterator[Input]:
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.strip():
            value = line.rstrip(b"\r")
            try:
                key = key_of(json.loads(value))
            except (ValueError, RecursionError):  # ValueError: JSONDecodeError, bad UTF-8, an integer too long
                key = None  # ingest dead-letters it with the parser's reason
            yield Input(f"{label}:{number}", value, key=key)


def _json(data: bytes, label: str) -> Iterator[Input]:
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):  # as above; and nested too deep for Python's parser
        yield Input(label, data)  # ingest dead-letters it with the parser's reason
        return
    try:
        if isinstance(parsed, list):
            # Encoded before any is sent: one that fails below sends the file once, not part of it twice.
            items = [Input(f"{label}[{index}]", _encoded(item), key=key_of(item)) for index, item in enumerate(parsed)]
        elif isinstance(parsed, dict):
            # Sent as read, not as the file's bytes: a BOM or UTF-16 that Python's reader takes, ingest (UTF-8 only)
            # refused, where the same object in a list went through.
            items = [Input(label, _encoded(parsed), key=key_of(parsed))]
        else:
            items = [Input(label, data)]  # not an object: ingest dead-letters it with the reason
    except RecursionError:  # read, but nested too deep to write again: the file as it is, for ingest to refuse
        items = [Input(label, data)]
    yield from items


def _encoded(value: object) -> bytes:
    """``value`` as UTF-8 JSON; a lone surrogate (``"\\ud800"`` in the file) stays escaped for ingest to replace, as
    it does in a JSONL line, where encoding it as UTF-8 raised and stopped the whole command."""
    try:
        return json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(value).encode()


def decode_text(data: bytes) -> str | None:
    """UTF-8 (with or without BOM) or UTF-16 with a BOM; None for anything else, which we do not guess."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _text_article(data: bytes, path: Path) -> bytes:
    """A ``.txt`` file: the first line is the title, the rest the body."""
    text = decode_text(data)
    if text is None or "\x00" in text:
        return data  # not text we can read: ingest dead-letters the original bytes with the reason
    title, _, body = text.lstrip().partition("\n")
    article = {"title": title.strip() or None, "text": body, "metadata": {"file": path.name}}
    return _encoded(article)  # a file name that is not UTF-8 holds lone surrogates: ingest replaces them


def _html_article(data: bytes, path: Path) -> bytes:
    text = decode_text(data)
    if text is None or "\x00" in text:
        return data
    return _encoded({"html": text, "metadata": {"file": path.name}})
