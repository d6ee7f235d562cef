"""Classify's domain logic: what text the model sees, and what the enriched article looks like."""

from __future__ import annotations

from newsflow_shared import CleanArticle, EnrichedArticle, Lineage, TopicScore
from newsflow_shared.taxonomy import load_taxonomy

from . import __version__

# Enough characters for any model's token budget: the title and lead carry the topic.
_MAX_CHARS = 4_000
# A headline's length and then some: a page's <title> padded with keywords (2,000 characters pass the contract) took
# the model's whole window of 256 tokens, and a sport story read as politics from its title's padding alone.
_MAX_TITLE_CHARS = 300


def model_input(article: CleanArticle) -> str:
    """Title, then the body from the top: the truncation policy is 'title and lead'."""
    head = f"{_headline(article.title)}.\n" if article.title else ""
    return (head + article.text)[:_MAX_CHARS]


def _headline(title: str) -> str:
    if len(title) <= _MAX_TITLE_CHARS:
        return title
    cut = title[:_MAX_TITLE_CHARS]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


def enrich(article: CleanArticle, topics: list[TopicScore], model_name: str) -> EnrichedArticle:
    return EnrichedArticle(
        **article.model_dump(exclude={"lineage"}),
        topics=topics,
        lineage=[
            *article.lineage,
            Lineage(
                stage="classify",
                version=__version__,
                model=model_name,
                details={"taxonomy": f"IPTC Media Topics {load_taxonomy().version}"},
            ),
        ],
    )
