"""The search page's data: the facets of what the filters match.

Counting facets over every match costs seconds on SQLite when a common word matches most of
100,000 articles (each count visits every match). So the facets count the newest
``FACET_SAMPLE`` matches, exactly when fewer match, and the page says so when more do; the
total is counted up to ``COUNT_CAP``. Topics are counted from ``article_topics`` (every assigned
topic and its broader ones) and shown as the IPTC tree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select

from newsflow_shared.db.tables import article_topics, articles
from newsflow_shared.taxonomy import load_taxonomy

from ..repository import ArticleRepository, Query

FACET_SAMPLE = 1_000
COUNT_CAP = 10_000
SOURCE_FACET_SIZE = 12
MONTH_FACET_SIZE = 12


@dataclass(frozen=True)
class TopicCount:
    code: str
    label: str
    count: int
    children: list[TopicCount] = field(default_factory=list)


@dataclass(frozen=True)
class Facets:
    topics: list[TopicCount]
    languages: list[tuple[str, int]]
    sources: list[tuple[str, int]]
    months: list[tuple[str, int]]
    total: int
    total_capped: bool
    sampled: int  # how many of the matches the facets counted

    @property
    def is_sample(self) -> bool:
        return self.sampled < self.total or self.total_capped


async def facets(repo: ArticleRepository, query: Query) -> Facets:
    conditions = repo.conditions(query, indexed=True)
    sample = (
        select(articles.c.id, articles.c.language, articles.c.source, articles.c.published_at)
        .where(*conditions)
        .order_by(articles.c.stored_at.desc(), articles.c.id.desc())
        .limit(FACET_SAMPLE)
    )
    async with repo.engine.connect() as connection:
        rows = list(await connection.execute(sample))
        # The sample's ids, not its query again: a full-text filter would be evaluated a second time.
        topic_counts = (
            select(article_topics.c.code, func.count())
            .where(article_topics.c.article_id.in_([r.id for r in rows]))
            .group_by(article_topics.c.code)
        )
        codes = dict((await connection.execute(topic_counts)).all()) if rows else {}
        if len(rows) < FACET_SAMPLE:
            total, capped = len(rows), False
        else:
            capped_count = select(func.count()).select_from(
                select(articles.c.id).where(*conditions).limit(COUNT_CAP + 1).subquery()
            )
            total = (await connection.execute(capped_count)).scalar_one()
            total, capped = min(total, COUNT_CAP), total > COUNT_CAP
    languages = Counter(r.language for r in rows if r.language)
    sources = Counter(r.source for r in rows if r.source)
    months = Counter(r.published_at.strftime("%Y-%m") for r in rows if r.published_at)
    return Facets(
        topics=topic_tree(codes),
        languages=sorted(languages.items(), key=lambda kv: (-kv[1], kv[0])),
        sources=sorted(sources.items(), key=lambda kv: (-kv[1], kv[0]))[:SOURCE_FACET_SIZE],
        months=sorted(months.items(), reverse=True)[:MONTH_FACET_SIZE],
        total=total,
        total_capped=capped,
        sampled=len(rows),
    )


def topic_tree(counts: dict[str, int]) -> list[TopicCount]:
    """Top-level topics by count, each with its second-level topics by count."""
    taxonomy = load_taxonomy()
    tree = []
    for code, count in counts.items():
        topic = taxonomy.topics.get(code)
        if topic is None or topic.level != 1:
            continue
        children = [
            TopicCount(child, taxonomy.topics[child].name, n)
            for child, n in counts.items()
            if child in taxonomy.topics and taxonomy.topics[child].parent == code
        ]
        children.sort(key=lambda t: (-t.count, t.label))
        tree.append(TopicCount(code, topic.name, count, children))
    tree.sort(key=lambda t: (-t.count, t.label))
    return tree
