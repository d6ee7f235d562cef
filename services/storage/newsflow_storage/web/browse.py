"""The search page's data: a page of articles and the facets of what the filters match.

Counting facets over every match costs seconds on SQLite when a common word matches most of
100,000 articles (each count visits every match). So the facets count the newest
``FACET_SAMPLE`` matches, exactly when fewer match, and the page says so when more do. The total
is exact when only words are searched on SQLite (FTS5 counts its doclists) or fewer than
``FACET_SAMPLE`` match, else counted up to ``COUNT_CAP`` (the page shows "10,000+"). Topics are counted from
``article_topics`` (every assigned topic and its broader ones) and shown as the IPTC tree.

Where the time went at 100,000 articles: the first page, the sample and the total each built the
set of a common word's ~100,000 rowids again (~10-15 ms each), the sample's 1,000 rows crossed into
Python to be counted there, and filters on language, source or a month read each walked article
(~2-4 KB) from the table. Now the first page is the sample's first rows (one walk for both), the
sample is counted in SQL in one statement, the walk reads only ``ix_articles_newest``, a search of
words alone is counted by FTS5, and a common word's sample is found in a window of the newest
candidates instead of the set of every match (:func:`_window`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import column, func, literal_column, select, table, text, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from newsflow_shared.db.engine import utc_period
from newsflow_shared.db.tables import article_topics, articles
from newsflow_shared.taxonomy import load_taxonomy

from ..repository import ArticleRepository, Page, Query, fts5_phrase, search_words

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


async def browse(repo: ArticleRepository, query: Query) -> tuple[Page, Facets]:
    """A page of results and the facets of every match.

    Newest first from the first page, the page is the newest of the facets' sample: one walk of the
    matches gives both, in one read transaction. A later page or best match first is the repository's
    own search beside the facets.
    """
    if query.sort == "date" and not query.cursor and query.limit < FACET_SAMPLE:
        async with repo.engine.connect() as connection:
            counts, first = await _facets(repo, connection, query, page_ids=query.limit + 1)
            return await repo.newest_of(connection, first, query.limit), counts
    page, counts = await asyncio.gather(repo.search(query), facets(repo, query))
    return page, counts


async def facets(repo: ArticleRepository, query: Query) -> Facets:
    async with repo.engine.connect() as connection:
        counts, _ = await _facets(repo, connection, query, page_ids=0)
    return counts


async def _facets(
    repo: ArticleRepository, connection: AsyncConnection, query: Query, *, page_ids: int
) -> tuple[Facets, list[str]]:
    """The facets of ``query``'s newest ``FACET_SAMPLE`` matches and the ids of the newest ``page_ids``."""
    words = search_words(query.q)
    # Counted where it serves: as the exact total of words alone, and to size the window. Not with a topic:
    # walking to a window's candidates through a topic's set costs more than the set of matches it spares.
    share = await repo.match_count(connection, words) if words and not query.topic else None
    window = _window(*share) if share else None
    counted, first, candidates = await _sample_counts(repo, connection, query, page_ids, window)
    sampled = sum(counted["sampled"].values())
    if window is not None and sampled < FACET_SAMPLE and candidates >= window:
        # Too few of the window's candidates had the words (the rest of the matches are older): all matches.
        counted, first, _ = await _sample_counts(repo, connection, query, page_ids, None)
        sampled = sum(counted["sampled"].values())
    if sampled < FACET_SAMPLE:
        total, capped = sampled, False
    elif share and not repo.conditions(query, full_text=False):
        total, capped = share[0], False  # words alone: FTS5's exact count
    else:
        total, capped = await _total(repo, connection, query)
    return (
        Facets(
            topics=topic_tree(counted["topic"]),
            languages=sorted(counted["language"].items(), key=lambda kv: (-kv[1], kv[0])),
            sources=sorted(counted["source"].items(), key=lambda kv: (-kv[1], kv[0]))[:SOURCE_FACET_SIZE],
            months=sorted(counted["month"].items(), reverse=True)[:MONTH_FACET_SIZE],
            total=total,
            total_capped=capped,
            sampled=sampled,
        ),
        first,
    )


def _window(matched: int, rows: int) -> int | None:
    """How many of the newest articles that pass the other filters to test for the words; None: every match.

    Enough to hold half as many again as ``FACET_SAMPLE`` at the words' share of all articles, and used
    only where that is a quarter of the matches or fewer (a common word): it spares building the set of
    every match's rowid (~15 ms for 80,000 of 100,000 articles, against ~3 ms for the window).
    """
    if not matched:
        return None
    window = -(-FACET_SAMPLE * 3 * rows // (2 * matched))
    return window if 4 * window <= matched else None


async def _sample_counts(
    repo: ArticleRepository, connection: AsyncConnection, query: Query, page_ids: int, window: int | None
) -> tuple[dict[str, dict[str, int]], list[str], int]:
    """Each facet's counts over the sample, the newest ``page_ids`` ids, and how many candidates a window held."""
    counted: dict[str, dict[str, int]] = {"language": {}, "source": {}, "month": {}, "topic": {}, "sampled": {}}
    first: list[str] = []
    candidates = 0
    for facet, value, n in await connection.execute(_facet_statement(repo, query, page_ids, window)):
        if facet == "page":
            first.append(value)
        elif facet == "candidates":
            candidates = n
        elif value is not None or facet == "sampled":
            counted[facet][value] = n
    return counted, first, candidates


def _facet_statement(repo: ArticleRepository, query: Query, page_ids: int, window: int | None) -> Any:
    """One statement: the sample (newest first through ``ix_articles_newest``, materialised once), each facet's
    counts over it as rows (facet, value, count), and the ids of its newest ``page_ids`` as rows ('page', id, 0).

    With a ``window`` (SQLite, words): the sample is the newest matches among the ``window`` newest articles
    that pass the other filters, FTS5 asked only for the rowids between theirs. That is exact when it holds
    ``FACET_SAMPLE`` (every other match is older than every candidate) or the candidates ran out before the
    window did (they were every article that passes the filters); the caller asks again without a window
    otherwise, from the row ('candidates', NULL, how many).
    """
    columns = [articles.c.id, articles.c.language, articles.c.source, articles.c.published_at, articles.c.stored_at]
    extra = []
    if window is None:
        sample = (
            select(*columns)
            .where(*repo.conditions(query))
            .order_by(articles.c.stored_at.desc(), articles.c.id.desc())
            .limit(FACET_SAMPLE)
        )
    else:
        found = (
            select(literal_column("articles.rowid").label("r"), *columns)
            .where(*repo.conditions(query, full_text=False))
            .order_by(articles.c.stored_at.desc(), articles.c.id.desc())
            .limit(window)
            .cte("candidates")
            .prefix_with("MATERIALIZED")
        )
        fts = table("articles_fts", column("rowid"))
        hits = select(fts.c.rowid).where(
            text("articles_fts MATCH :fts").bindparams(fts=fts5_phrase(search_words(query.q) or "")),
            fts.c.rowid.between(
                select(func.min(found.c.r)).scalar_subquery(), select(func.max(found.c.r)).scalar_subquery()
            ),
        )
        sample = (
            select(*(found.c[c.name] for c in columns))
            .where(found.c.r.in_(hits))
            .order_by(found.c.stored_at.desc(), found.c.id.desc())
            .limit(FACET_SAMPLE)
        )
        extra.append(
            select(_label("candidates"), literal_column("NULL").label("value"), func.count().label("n")).select_from(
                found
            )
        )
    sample = sample.cte("sample").prefix_with("MATERIALIZED")
    month = utc_period(sample.c.published_at, "month", sqlite=repo._sqlite)

    def counts(name: str, value: Any) -> Any:
        return select(_label(name), value.label("value"), func.count().label("n")).group_by(value)

    parts = [
        counts("language", sample.c.language),
        counts("source", sample.c.source),
        counts("month", month),
        counts("topic", article_topics.c.code).where(article_topics.c.article_id.in_(select(sample.c.id))),
        select(_label("sampled"), literal_column("NULL").label("value"), func.count().label("n")).select_from(sample),
        *extra,
    ]
    if page_ids:
        newest = (
            select(sample.c.id)
            .order_by(sample.c.stored_at.desc(), sample.c.id.desc())
            .limit(page_ids)
            .subquery("newest")
        )
        parts.append(select(_label("page"), newest.c.id.label("value"), literal_column("0").label("n")))
    return union_all(*parts)


def _label(name: str) -> Any:
    return literal_column(f"'{name}'").label("facet")


async def _total(repo: ArticleRepository, connection: AsyncConnection, query: Query) -> tuple[int, bool]:
    """How many articles match, and whether that is only a lower bound (``COUNT_CAP`` and more)."""
    # The filters as the planner likes them (it may drive by a topic's or a source's index), stopping at the cap.
    capped = select(func.count()).select_from(
        # No column of articles selected: an index that holds the filtered columns answers alone (a month's
        # 8,640 from ix_articles_published_at in 0.6 ms, where selecting the id read each article: 12 ms).
        select(literal_column("1"))
        .select_from(articles)
        .where(*repo.conditions(query, indexed=True))
        .limit(COUNT_CAP + 1)
        .subquery()
    )
    total = (await connection.execute(capped)).scalar_one()
    return min(total, COUNT_CAP), total > COUNT_CAP


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
