"""Every kind of bad input gets a reason a person can read, and never an exception out of the stage."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from newsflow_ingest.logic import ingest
from newsflow_ingest.reading import read_raw
from newsflow_shared import (
    ArticleTooLarge,
    CleanArticle,
    Delivery,
    EnrichedArticle,
    IngestedArticle,
    InvalidArticle,
    MalformedMessage,
    RawArticle,
    SkippedArticle,
    StoredArticle,
)
from newsflow_shared.contracts import ArticleBase
from newsflow_shared.reasons import json_problem
from newsflow_shared.text_safety import Normaliser, free_key


def decode(value: bytes) -> RawArticle:
    return Delivery(value=value).decode(RawArticle)


@pytest.mark.parametrize(
    ("value", "error", "reason"),
    [
        (b"", MalformedMessage, "the message is empty"),
        (b"hello there", MalformedMessage, "not valid JSON"),
        (b'{"text": "unterminated', MalformedMessage, "not valid JSON"),
        (b"[1, 2]", MalformedMessage, "a list, not an object"),
        (b'"just a string"', MalformedMessage, "a str, not an object"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", MalformedMessage, "not UTF-8"),
        ('{"text": "Grüße"}'.encode("latin-1"), MalformedMessage, "invalid byte 0xfc"),
        (b'{"text": "a\x00b"}', MalformedMessage, "NUL bytes"),
        (b'{"text": 42}', InvalidArticle, "field 'text': Input should be a valid string (got int)"),
        (b'{"text": ["a"]}', InvalidArticle, "field 'text'"),
        (b'{"title": "only a title"}', InvalidArticle, "has no body"),
        (b'{"text": "   \\n  "}', InvalidArticle, "has no body"),
        (b'{"id": "", "text": "x"}', InvalidArticle, "field 'id'"),
        (b'{"id": "a b", "text": "x"}', InvalidArticle, "no spaces or control characters"),
        (b'{"text": "x", "published_at": "yesterday"}', InvalidArticle, "field 'published_at'"),
        (b'{"text": "x", "schema_version": "2.0"}', InvalidArticle, "schema_version '2.0' is not supported"),
        (b'{"text": "x", "metadata": "not a dict"}', InvalidArticle, "field 'metadata'"),
        # Within 200 and 500 characters, but over what PostgreSQL's index rows hold (four-byte letters).
        (f'{{"id": "{chr(0x20000) * 129}", "text": "x"}}'.encode(), InvalidArticle, "the id takes 516 bytes"),
        (f'{{"source": "{chr(0x20000) * 376}", "text": "x"}}'.encode(), InvalidArticle, "the source takes 1,504 bytes"),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(value: bytes, error: type[Exception], reason: str) -> None:
    with pytest.raises(error) as caught:
        decode(value)
    assert reason in caught.value.reason  # type: ignore[attr-defined]


def test_huge_text_is_rejected_by_size_not_by_crashing() -> None:
    raw = decode(b'{"text": "' + b"a" * (20 * 1024 * 1024) + b'"}')
    with pytest.raises(ArticleTooLarge, match=r"20\.0 MiB; the limit is 2\.0 MiB \(INGEST_MAX_BYTES\)"):
        ingest(raw, max_bytes=2 * 1024 * 1024)


@pytest.mark.parametrize("model", [RawArticle, IngestedArticle, CleanArticle, EnrichedArticle, StoredArticle])
def test_every_hop_holds_ids_and_sources_to_the_bytes_the_database_indexes_hold(model: type[ArticleBase]) -> None:
    """The bounds hold at every hop, so a record put straight on a later topic meets them too."""
    fields = {"text": "x", "content_hash": "h", "language": "en", "language_confidence": 1.0}
    widest = {"id": chr(0x20000) * 128, "source": chr(0x20000) * 375}  # 512 and 1,500 bytes
    over = {"id": chr(0x20000) * 129, "source": chr(0x20000) * 376}
    if model in (CleanArticle, EnrichedArticle, StoredArticle):
        widest["duplicate_of"], over["duplicate_of"] = widest["id"], over["id"]
    assert model.model_validate(fields | widest).id == widest["id"]
    assert model.model_validate(fields | {"id": "ж" * 200, "source": "源" * 500}).source == "源" * 500
    for field, value in over.items():
        with pytest.raises(ValidationError, match=f"the {field.replace('duplicate_of', 'id')} takes"):
            model.model_validate(fields | widest | {field: value})


def test_a_skipped_article_holds_its_id_to_the_same_bytes() -> None:
    SkippedArticle(id=chr(0x20000) * 128, content_hash="h", reason="a re-send")
    with pytest.raises(ValidationError, match="the id takes 516 bytes"):
        SkippedArticle(id=chr(0x20000) * 129, content_hash="h", reason="a re-send")


def test_unknown_fields_are_kept_in_metadata() -> None:
    raw = decode(b'{"text": "x", "editor": "Ann", "tags": ["a"], "metadata": {"k": 1}}')
    assert raw.metadata == {"editor": "Ann", "tags": ["a"], "k": 1}


def test_other_languages_html_and_odd_characters_are_accepted() -> None:
    raw = decode('{"html": "<p>Привет, мир! 你好 🌍</p>", "language": "ru"}'.encode())
    assert raw.html is not None
    assert "你好" in raw.html


def test_an_integer_too_long_for_python_is_a_malformed_message_not_a_surprise() -> None:
    """Python refuses to read an integer of over 4,300 digits with a plain ValueError, which neither ingest's reader
    nor the diagnosis caught: each such record was retried three times and dead-lettered as "unexpected"."""
    value = b'{"text": "x", "metadata": {"n": ' + b"9" * 5000 + b"}}"
    with pytest.raises(MalformedMessage, match="an integer of more than 4,300 digits: send it as a string"):
        read_raw(value, max_metadata_bytes=1 << 20)
    assert json_problem(value) == "the message has an integer of more than 4,300 digits: send it as a string"
    fine = read_raw(b'{"text": "x", "metadata": {"n": ' + b"9" * 4000 + b"}}", max_metadata_bytes=1 << 20)[0]
    assert str(fine.metadata["n"]) == "9" * 4000  # kept (as text: past what JSON readers elsewhere hold exactly)


def test_keys_that_come_to_one_name_keep_both_values() -> None:
    """A top-level field also in "metadata", or two keys that differ only in a NUL ingest removes, are two values:
    neither may be dropped for the other."""
    raw = decode(b'{"text": "x", "editor": "Ann", "metadata": {"editor": "Bob", "editor (2)": "Cy"}}')
    assert raw.metadata == {"editor": "Bob", "editor (2)": "Cy", "editor (3)": "Ann"}
    article, normalised = read_raw(
        b'{"text": "x", "metadata": {"tag\\u0000": 1, "tag": 2}}', max_metadata_bytes=1 << 20
    )
    assert article.metadata == {"tag": 1, "tag (2)": 2}
    assert normalised == {"nul": 1, "metadata_key_renamed": 1}


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (b'{"id": 9007199254740993, "text": "x"}', "id"),  # past 2**53: once turned into text and taken
        (b'{"text": 12345678901234567890}', "text"),
        (b'{"text": "x", "url": -99999999999999999999}', "url"),  # its id would have come from that "URL"
        (b'{"text": "x", "title": 1e400}', "title"),  # infinite: once made null, the title gone without a word
    ],
)
def test_a_number_in_a_field_is_refused_however_large(value: bytes, field: str) -> None:
    """Ingest's normalising of numbers (huge integers to text, infinities to null) is for metadata; on the contract's
    own fields it slipped numbers past the strict strings."""
    with pytest.raises(InvalidArticle, match=f"field '{field}': Input should be a valid string"):
        read_raw(value, max_metadata_bytes=1 << 20)


def test_a_key_that_comes_to_a_fields_name_keeps_its_value_beside_it() -> None:
    article, normalised = read_raw(
        b'{"text": "x", "title\\u202e": "a", "title": "b", "n": 9007199254740993, "f": 1e400}',
        max_metadata_bytes=1 << 20,
    )
    assert article.title == "b"
    assert article.metadata == {"title (2)": "a", "n": "9007199254740993", "f": None}
    assert normalised == {"bidi_control": 1, "huge_integer": 1, "non_finite_number": 1, "metadata_key_renamed": 1}


def test_a_record_too_large_for_any_article_is_refused_before_it_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 32 MiB record was parsed whole (~100 MB of objects) before its size was checked."""
    from newsflow_ingest import reading

    parsed: list[bytes] = []
    monkeypatch.setattr(reading.json, "loads", lambda text: parsed.append(text) or {"text": "x"})
    largest = reading.largest_readable(1024 * 1024, 64 * 1024)
    value = b'{"text": "' + b"a" * largest + b'"}'
    with pytest.raises(ArticleTooLarge, match=r"no article within INGEST_MAX_BYTES and INGEST_MAX_METADATA_BYTES"):
        read_raw(value, max_metadata_bytes=64 * 1024, max_bytes=1024 * 1024)
    assert parsed == []


@pytest.mark.parametrize(
    "fields",
    [
        {f"{i:07}": 0 for i in range(200_000)},  # unknown top-level fields join the metadata
        {"metadata": {f"{i:07}": 0 for i in range(200_000)}},
        {"metadata": {"a": [[]] * 200_000}},
    ],
    ids=["top-level", "metadata keys", "nested lists"],
)
def test_metadata_of_more_values_than_its_limit_can_hold_is_refused_before_it_is_walked(
    fields: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 13 MB record of a million metadata keys (within what is parsed at all) was normalised and validated, 6.5 s of
    ingest's event loop, before its size was found too large. Each value takes two bytes of JSON at least."""
    from newsflow_ingest import reading

    walked: list[object] = []
    monkeypatch.setattr(reading.Normaliser, "json", lambda self, value, depth=0: walked.append(value) or value)
    value = json.dumps({"text": "Storm warning.", **fields}).encode()
    # (Lists by the thousand are refused sooner, before they are parsed.)
    refused = r"hold more than 32,784 keys and values, more than 64 KiB|holds more than 32,784 JSON arrays and objects"
    with pytest.raises(ArticleTooLarge, match=refused):
        read_raw(value, max_metadata_bytes=64 * 1024, max_bytes=1024 * 1024)
    assert walked == []
    most = {"metadata": {f"k{i}": 0 for i in range(30_000)}}  # 30,000 values: ~300 KiB of JSON, refused by its size
    with pytest.raises(ArticleTooLarge, match=r"take \d+ KiB; the limit is 64 KiB"):
        read_raw(json.dumps({"text": "x", **most}).encode(), max_metadata_bytes=64 * 1024)


def test_millions_of_arrays_are_refused_before_they_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """12 MB of empty arrays (in a field, where the metadata's count does not look) took 2-3 s of ingest's event loop
    and 310 MiB to parse, only to be refused."""
    from newsflow_ingest import reading

    loads = reading.json.loads
    parsed: list[str] = []
    monkeypatch.setattr(reading.json, "loads", lambda text: parsed.append(text) or loads(text))
    flood = b'{"text": "ok", "title": [' + b",".join([b"[]"] * 1_000_000) + b"]}"
    with pytest.raises(ArticleTooLarge, match=r"more than 32,784 JSON arrays and objects"):
        read_raw(flood, max_metadata_bytes=64 * 1024, max_bytes=2 * 1024 * 1024)
    assert parsed == []
    # Brackets in the text are no arrays: an article of 50,000 citations "[1]" and braces is read.
    text = 'The council met [1] and voted {aye} on "[the] budget". ' * 50_000
    article, _ = read_raw(json.dumps({"text": text}).encode(), max_metadata_bytes=64 * 1024, max_bytes=4 * 1024 * 1024)
    assert article.text == text
    assert len(parsed) == 1


@pytest.mark.timeout(60)  # ~0.1 s; before, the square of the length: 230 KB took 128 s, 2 MB would take hours
def test_a_string_never_closed_is_read_past_once() -> None:
    value = b"[" * 40_000 + b'"' + b'\\"' * 1_000_000
    with pytest.raises(ArticleTooLarge, match=r"more than 32,784 JSON arrays and objects"):
        read_raw(value, max_metadata_bytes=64 * 1024, max_bytes=2 * 1024 * 1024)


def test_the_most_escaped_article_within_the_limits_is_still_read() -> None:
    """Every character escaped as JSON's longest form for its size (one UTF-8 byte as six): not too large."""
    text = "\x01" * (1024 * 1024)  # 1 MiB in UTF-8
    metadata = {"k": "\u00e9" * (30 * 1024)}  # 60 KiB in UTF-8, 180 KiB escaped
    value = json.dumps({"text": text, "metadata": metadata}, ensure_ascii=True).encode()
    assert len(value) > 6 * 1024 * 1024
    article, _ = read_raw(value, max_metadata_bytes=64 * 1024, max_bytes=1024 * 1024)
    assert article.text == text


def test_thousands_of_keys_that_come_to_one_name_cost_their_number_not_its_square() -> None:
    """Each renamed key searched for a free number from (2) up: 8,000 keys that differ only in bidi controls took
    3.8 s of ingest's event loop, and a record of some 13 MB could hold hours of it."""

    class Counted(dict):
        lookups = 0

        def __contains__(self, key: object) -> bool:
            Counted.lookups += 1
            return super().__contains__(key)

    taken, numbers = Counted(), {}
    for i in range(5_000):
        taken[free_key("k", taken, numbers)] = i
    assert Counted.lookups <= 3 * 5_000  # a few a key, where counting up from (2) each time was 12.5 million
    assert taken["k (5000)"] == 4_999

    normaliser = Normaliser()
    cleaned = normaliser.json({"k" + "\u202e" * i: i for i in range(2_000)})
    assert (len(cleaned), cleaned["k"], cleaned["k (2000)"]) == (2_000, 0, 1_999)
    assert normaliser.changes == {"bidi_control": sum(range(2_000)), "metadata_key_renamed": 1_999}


@pytest.mark.parametrize("given", ["a\\u202eb", "a\\u0000b", "a\\ud800b", "\\u2066ab"])
def test_an_id_that_making_safe_would_change_is_refused_not_changed(given: str) -> None:
    """Ingest made every string safe, the id too: "a\u202eb" became "ab", the id of another article, whose row it
    then replaced (its history kept, but on screen another story)."""
    with pytest.raises(InvalidArticle) as refused:
        read_raw(f'{{"id": "{given}", "text": "x"}}'.encode(), max_metadata_bytes=1 << 20)
    assert "the article's 'id' holds characters an id cannot keep" in refused.value.reason
    assert read_raw(b'{"id": "ab", "text": "x"}', max_metadata_bytes=1 << 20)[0].id == "ab"


@pytest.mark.parametrize("given", ["2024", "0", "-1", "99999999", 0, 1_700_000_000, 1_700_000_000_000, 1.5])
def test_a_date_given_as_a_number_is_refused_not_read_as_seconds_since_1970(given: object) -> None:
    # Read as seconds or milliseconds, "2024" was 00:33:44 on 1 January 1970, within the plausible years, and stored.
    value = json.dumps({"text": "Storm warning.", "published_at": given}).encode()
    with pytest.raises(InvalidArticle, match=r"published_at.*is a number, not a date.*ISO 8601"):
        read_raw(value, max_metadata_bytes=64 * 1024)


def test_a_date_in_iso_8601s_basic_form_is_that_day() -> None:
    value = json.dumps({"text": "Storm warning.", "published_at": "20240315"}).encode()
    assert read_raw(value, max_metadata_bytes=64 * 1024)[0].published_at == datetime(2024, 3, 15, tzinfo=UTC)
