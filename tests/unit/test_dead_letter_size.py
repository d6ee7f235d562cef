"""A dead letter always fits in what Kafka accepts, whatever the record carried in its key and headers.

Found by hand: a record of 2 KB with 30 MB of headers (the broker takes 33 MB) made a dead letter of 37.7 MiB. Kafka
refused it, the batch failed each time it was tried, and the partition stopped behind it.
"""

from __future__ import annotations

import json

import pytest

from newsflow_shared import TRACE_HEADER, CleanArticle, Delivery, MalformedMessage, ServiceSettings, Stage
from newsflow_shared.dead_letter import KEPT_CHARACTERS, KEPT_HEADERS, REASON_CHARACTERS
from newsflow_shared.errors import RejectedInput

MiB = 1024 * 1024
LIMITS = [ServiceSettings(), ServiceSettings(kafka_max_message_bytes=MiB)]  # the default, 32 MiB, and the least


def delivery(value: int, key: int, headers: dict[str, int]) -> Delivery:
    return Delivery(
        value=b"x" * value,
        key=b"k" * key if key else None,
        headers={TRACE_HEADER: "trace-1"} | {name: "\x01" * size for name, size in headers.items()},  # JSON: \u0001
        topic="articles.ingested",
        partition=1,
        offset=9,
    )


def size(record: Delivery) -> int:
    return (
        len(record.value)
        + len(record.key or b"")
        + sum(len(t.encode()) for t in [*record.headers.values(), *record.headers])
    )


# Records Kafka takes at a limit of ``m`` bytes: (value, key, headers), each a share of the limit.
RECORDS = {
    "headers": lambda m: (2_000, 0, {f"big-{i}": m * 3 // 10 for i in range(3)}),
    "value-key-header": lambda m: (m * 6 // 10, m // 32, {"big": m * 3 // 10}),
    "value": lambda m: (m * 93 // 100, 0, {}),
    "key": lambda m: (1_000, m * 6 // 10, {}),
    "many-headers": lambda m: (1_000, 0, {f"h{i:06}": 2_000 for i in range(m * 9 // 10 // 2_010)}),
    # Names of six bytes a character in JSON: 400 KB of them on the wire, 2.4 MB in the letter.
    "long-names": lambda m: (1_000, 0, {f"{i:04}" + "\x01" * 2_000: 2_000 for i in range(100)}),
}


@pytest.mark.parametrize("kind", RECORDS)
@pytest.mark.parametrize("keyed_by_article", [False, True], ids=["ingest", "keyed"])
@pytest.mark.parametrize("settings", LIMITS, ids=["32MiB", "1MiB"])
def test_the_dead_letter_of_any_record_fits(kind: str, keyed_by_article: bool, settings: ServiceSettings) -> None:
    value, key, headers = RECORDS[kind](settings.kafka_max_message_bytes)
    arrived = delivery(value, key, headers)
    assert size(arrived) <= settings.kafka_max_message_bytes  # Kafka took it
    stage = Stage.for_service(settings, "cleanup", keyed_by_article=keyed_by_article)

    letter = stage.reject(arrived, MalformedMessage("not JSON"))
    record = stage.encode(letter)  # raises OutputTooLarge for a letter Kafka would refuse

    on_the_wire = (
        len(record.value) + len(record.key or b"") + sum(map(len, [*record.headers, *record.headers.values()]))
    )
    assert on_the_wire <= settings.kafka_max_message_bytes
    assert letter.original_size == value
    assert letter.headers[TRACE_HEADER] == "trace-1"
    if not letter.original_truncated:  # it all fitted: the long names at 32 MiB
        assert (letter.original, letter.headers) == (arrived.value, arrived.headers)
        return
    assert arrived.value.startswith(letter.original)
    assert len(letter.headers) <= KEPT_HEADERS
    assert all(len(text) <= KEPT_CHARACTERS for text in [*letter.headers, *letter.headers.values()])
    assert len(letter.original_key or "") <= KEPT_CHARACTERS


def test_a_record_that_fits_keeps_its_key_and_headers_whole() -> None:
    stage = Stage.for_service(LIMITS[0], "cleanup")
    arrived = delivery(MiB, 4_000, {"big": 5 * MiB})

    letter = stage.reject(arrived, MalformedMessage("not JSON"))

    assert not letter.original_truncated
    assert (letter.original, letter.original_key, letter.headers) == (arrived.value, "k" * 4_000, arrived.headers)


def test_a_long_original_is_cut_before_the_key_and_headers_are() -> None:
    """Only a key and headers that leave the original less than half its room are cut."""
    stage = Stage.for_service(LIMITS[1], "cleanup")
    arrived = delivery(900_000, 5_000, {"big": 5_000})

    letter = stage.reject(arrived, MalformedMessage("not JSON"))

    assert letter.original_truncated
    assert (letter.original_key, letter.headers) == ("k" * 5_000, arrived.headers)
    assert len(letter.original) > 600_000


def test_a_reason_that_quotes_megabytes_of_input_is_cut_and_still_says_what_was_wrong() -> None:
    """A schema_version of junk was quoted whole (written as escapes, five bytes a byte): the letter outgrew Kafka's
    limit and went out as one about its own size, the record's reason lost."""
    settings = ServiceSettings(kafka_max_message_bytes=MiB)
    stage = Stage.for_service(settings, "classify")
    value = json.dumps(
        {"schema_version": "1x" + "\x7f" * 220_000, "id": "a1", "text": "Words here.", "language": "en"}
        | {"language_confidence": 0.9, "content_hash": "h"},
        ensure_ascii=False,
    ).encode()
    arrived = Delivery(value=value, key=b"a1", headers={}, topic="articles.clean", partition=0, offset=7)
    _, [letter] = stage.decode_each([arrived], CleanArticle)
    assert letter.error == "InvalidArticle"
    assert "schema_version '1x\\x7f" in letter.reason
    assert "is not supported" in letter.reason
    assert len(letter.reason) < 400
    stage.encode(letter)  # fits

    long = stage.reject(arrived, RejectedInput("refused: " + "y" * 100_000))
    assert long.reason.startswith("refused: yyy")
    assert long.reason.endswith("… (cut; 100,009 characters in all)")
    assert len(long.reason) <= REASON_CHARACTERS + 40
