"""The search page's data: a page of articles and the facets of what the filters match.

Facet counts are computed under the same conditions as the results (the repository's own), each
with one GROUP BY that SQLite answers from an index; topics are counted from ``article_topics``,
which holds every assigned topic and its broader topics, and shown as the IPTC tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import func, select

from newsflow_shared.db.tables import article_topics, articles
from newsflow_shared.taxonomy import load_taxonomy

from ..repository import ArticleRepository, Query

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


async def facets(repo: ArticleRepository, query: Query) -> Facets:
    """Counts under every filter but the facet's own, so the other values of a chosen facet stay in view."""
    async with repo.engine.connect() as connection:

        async def grouped(column: Any, without: dict[str, Any], limit: int | None = None) -> list[tuple[str, int]]:
            conditions = repo.conditions(replace(query, **without))
            statement = (
                select(column, func.count())
                .select_from(articles)
                .where(column.is_not(None), *conditions)
                .group_by(column)
                .order_by(func.count().desc(), column)
            )
            if limit is not None:
                statement = statement.limit(limit)
            return [(str(value), count) for value, count in await connection.execute(statement)]

        month = (
            func.substr(articles.c.published_at, 1, 7)
            if repo._sqlite
            else func.to_char(articles.c.published_at, "YYYY-MM")
        )
        languages = await grouped(articles.c.language, {"language": None})
        sources = await grouped(articles.c.source, {"source": None}, SOURCE_FACET_SIZE)
        months = sorted(await grouped(month, {"published_from": None, "published_to": None}, None), reverse=True)[
            :MONTH_FACET_SIZE
        ]
        conditions = repo.conditions(replace(query, topic=None))
        topic_counts = select(article_topics.c.code, func.count()).group_by(article_topics.c.code)
        if conditions:
            topic_counts = topic_counts.where(article_topics.c.article_id.in_(select(articles.c.id).where(*conditions)))
        codes = dict((await connection.execute(topic_counts)).all())
        total_statement = select(func.count()).select_from(articles).where(*repo.conditions(query))
        total = (await connection.execute(total_statement)).scalar_one()
    return Facets(topic_tree(codes), languages, sources, months, total)


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
