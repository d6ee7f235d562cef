"""Classify's domain logic: what text the model sees, and what the enriched article looks like."""

from __future__ import annotations

from newsflow_shared import CleanArticle, EnrichedArticle, Lineage, TopicScore
from newsflow_shared.taxonomy import load_taxonomy

from . import __version__

# Enough characters for any model's token budget: the title and lead carry the topic.
_MAX_CHARS = 4_000


def model_input(article: CleanArticle) -> str:
    """Title, then the body from the top: the truncation policy is 'title and lead'."""
    head = f"{article.title}.\n" if article.title else ""
    return (head + article.text)[:_MAX_CHARS]


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
