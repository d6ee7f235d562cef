"""A dead letter goes back, byte for byte, to the topic of the stage that refused it."""

import pytest

from newsflow_shared import REDRIVE_HEADER, TRACE_HEADER, Delivery, RejectedInput, redrive_record
from newsflow_shared.dead_letter import dead_letter
from newsflow_shared.delivery import REDRIVEN_FROM_HEADER
from newsflow_shared.redrive import redriven_from

INPUTS = {"articles.raw", "articles.ingested", "articles.clean", "articles.enriched"}


def letter_for(value: bytes, *, max_original_bytes: int = 1_000):
    delivery = Delivery(
        value=value,
        key=b"a-1",
        headers={TRACE_HEADER: "t-1", "other": "x"},
        topic="articles.clean",
        partition=2,
        offset=7,
    )
    return dead_letter(
        delivery,
        stage="classify",
        error=ValueError("boom"),
        attempts=3,
        article_id="a-1",
        max_original_bytes=max_original_bytes,
    )


def test_redrive_sends_the_original_back_to_the_refusing_stage() -> None:
    record = redrive_record(letter_for(b'{"id": "a-1"}'), inputs=INPUTS)
    assert record.topic == "articles.clean"
    assert record.key == b"a-1"
    assert record.value == b'{"id": "a-1"}'
    assert record.headers == {
        TRACE_HEADER: "t-1",
        REDRIVE_HEADER: "classify",
        REDRIVEN_FROM_HEADER: "articles.clean:2:7",
    }


def test_a_redriven_record_counts_as_reprocessed_on_purpose() -> None:
    assert Delivery(value=b"{}", headers={REDRIVE_HEADER: "ingest"}).is_replay


def test_a_truncated_original_cannot_be_redriven() -> None:
    with pytest.raises(RejectedInput, match="kept only 10 of 20 bytes"):
        redrive_record(letter_for(b"x" * 20, max_original_bytes=10), inputs=INPUTS)


def test_a_letter_that_names_a_topic_no_stage_reads_is_not_sent_there() -> None:
    """Anyone who can write to the DLQ can write a letter naming any topic: re-driven as it said, its bytes went to
    ``articles.stored``, or to a topic that does not exist, failing the re-drive of every letter after it."""
    letter = letter_for(b'{"id": "a-1"}')
    for topic in ("articles.stored", "no-such-topic", "articles.dlq"):
        with pytest.raises(RejectedInput, match=f"names '{topic}' as where it came from, not one of the stages'"):
            redrive_record(letter.model_copy(update={"source_topic": topic}), inputs=INPUTS)


def test_a_letter_of_a_redriven_record_names_the_letter_it_follows() -> None:
    first = letter_for(b'{"id": "a-1"}')
    assert redriven_from(first) is None
    again = first.model_copy(update={"headers": redrive_record(first, inputs=INPUTS).headers})
    assert redriven_from(again) == ("articles.clean", 2, 7)
    for junk in ("", "articles.clean", "x:y:z", ":1:2"):
        assert redriven_from(first.model_copy(update={"headers": {REDRIVEN_FROM_HEADER: junk}})) is None
