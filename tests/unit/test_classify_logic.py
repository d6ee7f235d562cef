"""What classify's model reads of an article, and what it refuses to read."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from newsflow_classify.logic import model_input
from newsflow_shared import CleanArticle, EnrichedArticle
from newsflow_shared.contracts import AS_STORED

LEAD = "The striker scored twice in the second half as the champions won the cup final 3-1."


def article(title: str | None, text: str = LEAD) -> CleanArticle:
    return CleanArticle(id="a", title=title, text=text, language="en", language_confidence=0.9, content_hash="h")


def test_a_padded_title_leaves_the_lead_in_the_models_window() -> None:
    """A page's <title> of 1,951 characters took all 256 tokens: a sport story read as politics from its padding."""
    padded = "Breaking news " + "election government minister parliament vote policy " * 38
    seen = model_input(article(padded))
    assert seen.index(LEAD) <= 310  # the headline's first 300 characters, then the lead
    assert seen.startswith("Breaking news election")
    assert model_input(article("Champions win the cup")) == f"Champions win the cup.\n{LEAD}"


@pytest.mark.parametrize("text", ["", "\u3000" * 100, "\xa0" * 100, "\u200b\u200d", "--- ...", "\n\n"])
def test_a_clean_article_without_a_word_is_refused(text: str) -> None:
    """Cleanup never sends one; another producer on articles.clean did, and the model gave it topics."""
    with pytest.raises(ValidationError, match="no letter or digit"):
        article(None, text)


def test_an_article_stored_before_the_check_is_still_read() -> None:
    """Rows stored before it (classified then) are read back as stored: the API, the pages and replay list them."""
    row = article("Markets").model_dump() | {"topics": [], "text": "\U0001f4c8 \u2014 \U0001f4c9"}
    assert EnrichedArticle.model_validate(row, context=AS_STORED).text == "\U0001f4c8 \u2014 \U0001f4c9"
    with pytest.raises(ValidationError, match="no letter or digit"):
        EnrichedArticle.model_validate(row)
