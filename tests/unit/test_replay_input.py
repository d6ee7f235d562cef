"""What `newsflow replay --stage classify|cleanup` sends for a stored article: today's contract, whatever the row holds."""

from __future__ import annotations

from newsflow_cli.replay import as_input_to
from newsflow_shared import CleanArticle, IngestedArticle, StoredArticle
from newsflow_shared.contracts import AS_STORED, MAX_REMOVALS, SUMMED_UP

STORED = {
    "id": "old-1",
    "text": "Storms closed the ports.",
    "language": "en",
    "language_confidence": 0.9,
    "content_hash": "h",
    "lineage": [
        {"stage": "ingest", "version": "1"},
        {"stage": "cleanup", "version": "1"},
        {"stage": "classify", "version": "1"},
    ],
}


def test_a_row_stored_with_more_removals_than_listed_today_is_replayed_within_the_bounds() -> None:
    """Stored before an article listed at most 200 removals: replaying it to classify raised on the first such row,
    after the batches before it had gone."""
    row = StoredArticle.model_validate(STORED | {"removed": [{"what": "Ad", "why": "rule"}] * 300}, context=AS_STORED)
    message = as_input_to("classify", row)
    assert isinstance(message, CleanArticle)
    assert len(message.removed) == MAX_REMOVALS
    assert message.removed[-1].why == SUMMED_UP
    assert [step.stage for step in message.lineage] == ["ingest", "cleanup"]
    CleanArticle.model_validate_json(message.model_dump_json())  # classify reads it
    assert isinstance(as_input_to("cleanup", row), IngestedArticle)
