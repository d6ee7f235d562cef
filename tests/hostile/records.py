"""Hostile raw articles: every kind of input that has stopped a stage somewhere, as bytes on the wire.

Used by the in-memory fuzz tests, the real-broker hostile run, and ``python -m tests.hostile.records FILE``
to write them as JSONL (one record a line, between two good articles) for ``newsflow process``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

GOOD_BODY = (
    "The city council approved a new budget for public libraries on Tuesday, adding evening opening hours "
    "at six branches and funding for a mobile library that will visit outlying villages twice a week.\n\n"
    "Councillors said the plan would cost 1.2 million pounds over three years."
)


def good(article_id: str, **fields: object) -> dict[str, object]:
    return {"id": article_id, "title": "Libraries to open late", "text": GOOD_BODY, **fields}


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def hostile_records() -> Iterator[tuple[str, bytes]]:
    """(name, message bytes) for each hostile kind; a name says what the record tries."""

    def obj(name: str, **fields: object) -> tuple[str, bytes]:
        article = good(f"hostile-{name}", **fields)
        try:
            return name, json.dumps(article, ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate: escaped, as Python's and JavaScript's encoders write it
            return name, json.dumps(article).encode()

    # Dates out of any range, or not dates.
    yield obj("date-year-1-with-offset", published_at="0001-01-01T00:00:00+01:00")
    yield obj("date-year-9999-behind-utc", published_at="9999-12-31T23:59:59-05:00")
    yield obj("date-year-0", published_at="0000-01-01T00:00:00Z")
    yield obj("date-not-a-date", published_at="yesterday afternoon")
    yield obj("date-number", published_at=1e300)
    yield obj("date-huge-epoch", published_at=99999999999999999999)
    yield obj("date-month-13", published_at="2024-13-45T25:61:61Z")
    # NUL characters and lone surrogates in every text field, and in metadata keys and values.
    for field in ("id", "title", "text", "url", "source", "language"):
        yield obj(f"nul-in-{field}", **{field: f"before\x00after {field}"})
        yield obj(f"surrogate-in-{field}", **{field: f"before\ud800after {field}"})
    yield obj("nul-in-metadata", metadata={"k\x00ey": "va\x00lue", "nested": {"x": "\x00"}})
    yield obj("surrogate-in-metadata", metadata={"k\udfffey": "va\ud800lue"})
    yield obj("nul-unknown-field", **{"extra\x00field": "\x00"})
    # Fields far longer than any column.
    for field, size in (("id", 10_000), ("source", 100_000), ("url", 200_000), ("title", 300_000), ("language", 5_000)):
        yield obj(f"long-{field}", **{field: "x" * size})
    # Metadata that is huge, deeply nested, or full of huge numbers, NaN and Infinity.
    yield obj("metadata-huge", metadata={f"key-{i}": "v" * 100 for i in range(50_000)})
    yield (
        "metadata-deep",
        ('{"id": "hostile-metadata-deep", "text": "' + GOOD_BODY.replace("\n", "\\n") + '", "metadata": ').encode()
        + _nested(5_000).encode()
        + b"}",
    )
    yield obj("metadata-huge-numbers", metadata={"big": 10**400, "neg": -(10**400), "float": 1e308})
    yield obj("metadata-nan-infinity", metadata={"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf")})
    yield "text-nan-literal", b'{"id": "hostile-nan", "text": NaN}'
    # A 1.5 MB word; 200,000 newlines; only zero-width characters; only emoji.
    yield obj("word-1.5mb", text="a" * 1_500_000)
    yield obj("newlines-200k", text="\n" * 200_000 + "word")
    yield obj("only-newlines", text="\n" * 200_000)
    yield obj("only-zero-width", text="\u200b\u200c\u200d\ufeff" * 5_000)
    yield obj("only-emoji", text="\U0001f600\U0001f4f0\U0001f30d" * 3_000)
    yield obj("combining-marks", text="e" + "\u0301" * 100_000)
    # HTML that is only scripts, or 20,000 levels deep.
    yield obj("html-only-scripts", text=None, html="<script>alert(1)</script>" * 2_000)
    yield obj("html-deep", text=None, html="<div>" * 20_000 + "deep text" + "</div>" * 20_000)
    yield obj("html-deep-unclosed", text=None, html="<b><i>" * 50_000)
    yield obj("html-comment-bomb", text=None, html="<!--" + "-" * 1_000_000)
    # Right-to-left overrides and other bidi controls.
    yield obj("rtl-override", title="\u202eelttit desrever", text="\u202e" + GOOD_BODY + "\u2066\u2069\u200f")
    # Ids with slashes or non-Latin letters.
    yield obj("id-slashes", id="../../etc/passwd")
    yield obj("id-non-latin", id="статья-記事-مقال")
    yield obj("id-url-like", id="https://example.com/a?b=c&d=e#f")
    # Fields that belong to later stages.
    yield obj("later-stage-fields", language="xx-not-a-language", topics=[{"code": "medtop:1"}], content_hash=5)
    yield obj("schema-version-2", schema_version="2.0")
    yield obj("schema-version-number", schema_version=1)
    # Duplicate JSON keys; JSON nested 100,000 deep; a URL that does not parse and no id.
    yield "duplicate-keys", b'{"id": "hostile-dup", "text": "first body text here", "text": 5, "id": "hostile-dup-2"}'
    yield "json-deep-100k", _nested(100_000).encode()
    yield "json-deep-array", b"[" * 100_000 + b"]" * 100_000
    yield "url-unparseable-no-id", json.dumps({"url": "http://[::1", "text": GOOD_BODY}).encode()
    yield "url-port-out-of-range", json.dumps({"url": "http://example.com:99999/x", "text": GOOD_BODY}).encode()
    # Wrong types, not JSON at all, binary, other encodings, empties.
    yield obj("wrong-types", title=5, text=["a"], source={"x": 1})
    yield obj("metadata-not-object", metadata=[1, 2, 3])
    yield "not-json", b"this is not json {"
    yield "binary", bytes(range(256)) * 4
    yield "latin-1", '{"id": "hostile-latin1", "text": "caf\xe9 cr\xe8me"}'.encode("latin-1")
    yield "utf-16", '{"id": "hostile-utf16", "text": "hello"}'.encode("utf-16")
    yield "empty-object", b"{}"
    yield "empty-text", obj("empty-text", text="   ")[1]
    yield "json-array", b"[1, 2, 3]"
    yield "json-string", b'"just a string"'
    yield "json-null", b"null"
    yield "surrogate-raw-bytes", '{"id": "hostile-raw-surrogate", "text": "a\ud800b"}'.encode("utf-8", "surrogatepass")
    yield "overlong-utf8", b'{"id": "hostile-overlong", "text": "\xc0\xaf"}'
    yield "escaped-nul", b'{"id": "hostile-escaped-nul", "text": "a\\u0000b plus enough words to be an article"}'
    yield "escaped-surrogate", b'{"id": "hostile-escaped-surrogate", "text": "a\\ud800b and more words here"}'


def good_records(prefix: str, count: int) -> Iterator[tuple[str, bytes]]:
    for number in range(count):
        yield f"{prefix}-{number}", json.dumps(good(f"{prefix}-{number}")).encode()


def write_jsonl(path: Path) -> int:
    """The hostile set between two good articles, one record a line (newlines inside records are escaped)."""
    lines = [json.dumps(good("good-first")).encode()]
    lines += [value for _, value in hostile_records() if b"\n" not in value]
    lines.append(json.dumps(good("good-last", title="The second good article")).encode())
    path.write_bytes(b"\n".join(lines) + b"\n")
    return len(lines)


if __name__ == "__main__":
    print(write_jsonl(Path(sys.argv[1])), "records written to", sys.argv[1])
