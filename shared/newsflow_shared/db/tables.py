"""The tables, defined once. Alembic migrations in ``migrations/versions`` create them."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

Json = JSON().with_variant(JSONB(), "postgresql")

articles = Table(
    "articles",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("title", Text),
    Column("text", Text, nullable=False),
    Column("language", String(16), nullable=False),
    Column("language_confidence", Float, nullable=False),
    Column("topics", Json, nullable=False),
    Column("duplicate_of", String(200)),
    Column("duplicate_score", Float),
    Column("source", String(500)),
    Column("url", Text),
    Column("author", Text),
    Column("published_at", DateTime(timezone=True)),
    Column("metadata", Json, nullable=False),
    Column("removed", Json, nullable=False),
    Column("lineage", Json, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("arrived_text", Text, doc="the body as cleanup received it, before repairs and removals (0003)"),
    Column("enrichment_hash", String(64), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_articles_language", "language"),
    Index("ix_articles_source", "source"),
    Index("ix_articles_published_at", "published_at"),
    Index("ix_articles_duplicate_of", "duplicate_of"),
    # Newest first with what the web page's filters and facets read, so its walks never touch the rows (0004).
    Index("ix_articles_newest", "stored_at", "id", "language", "source", "published_at", "duplicate_of"),
    Index("ix_articles_facets", "language", "source", "published_at", "duplicate_of", "id"),
)

article_topics = Table(
    "article_topics",
    metadata,
    Column("article_id", String(200), ForeignKey("articles.id", ondelete="CASCADE"), nullable=False),
    Column("code", String(32), nullable=False),
    Column("score", Float, nullable=False),
    Column("direct", Integer, nullable=False, doc="1 when assigned, 0 when rolled up from a narrower topic"),
    PrimaryKeyConstraint("article_id", "code"),
    Index("ix_article_topics_code", "code", "article_id"),
)

article_revisions = Table(
    "article_revisions",
    metadata,
    Column("article_id", String(200), ForeignKey("articles.id", ondelete="CASCADE"), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("enrichment", Json, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("article_id", "revision"),
)

ingest_seen = Table(
    "ingest_seen",
    metadata,
    Column("article_id", String(200), primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
)

# Cleanup's near-duplicate index: one fingerprint per article, and its LSH buckets.
cleanup_fingerprints = Table(
    "cleanup_fingerprints",
    metadata,
    Column("article_id", String(200), primary_key=True),
    Column("signature", LargeBinary, nullable=False),
    Column("shingles", Integer, nullable=False),
    Column("duplicate_of", String(200)),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    # The oldest first, for CLEANUP_DUPLICATE_DAYS (0005).
    Index("ix_cleanup_fingerprints_first_seen_at", "first_seen_at"),
)

cleanup_lsh = Table(
    "cleanup_lsh",
    metadata,
    Column("bucket", String(40), nullable=False),
    Column("article_id", String(200), nullable=False),
    PrimaryKeyConstraint("bucket", "article_id"),
    sqlite_with_rowid=False,  # one B-tree, the primary key's (0005)
)

# Cleanup's learned boilerplate: which short lines each source repeats, per article.
cleanup_source_lines = Table(
    "cleanup_source_lines",
    metadata,
    Column("source", String(500), nullable=False),
    Column("line_hash", String(32), nullable=False),
    Column("article_id", String(200), nullable=False),
    Column("line", Text, nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("source", "line_hash", "article_id"),
)

# Storage's copy of articles.dlq, for the web page's pipeline view and its re-drive button. One row per
# record a stage refused: a redelivered dead letter (same source topic, partition and offset) adds none.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source_topic", String(255), nullable=False),
    Column("source_partition", Integer, nullable=False),
    Column("source_offset", BigInteger, nullable=False),
    Column("stage", String(64), nullable=False),
    Column("error", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("article_id", String(200)),
    Column("original", LargeBinary, nullable=False),
    Column("original_size", BigInteger, nullable=False),
    Column("original_truncated", Boolean, nullable=False),
    Column("original_key", Text),
    Column("headers", Json, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=False),
    Column("redriven_at", DateTime(timezone=True)),
    # An operator's "nothing to re-drive here" (junk input, or an article pushed again from its source): the letter
    # no longer waits, and like a re-driven one it is deleted STORAGE_DEAD_LETTER_KEEP_DAYS later.
    Column("set_aside_at", DateTime(timezone=True)),
    # Set with redriven_at when a re-drive claims the letter, cleared when it finished: a claim of a re-drive that
    # was killed outright lapses then, and the letter waits again (migration 0009).
    Column("redrive_claimed_until", DateTime(timezone=True)),
    UniqueConstraint("source_topic", "source_partition", "source_offset", name="uq_dead_letters_source"),
    Index("ix_dead_letters_failed_at", "failed_at"),
    # The page counts each kind from it.
    Index("ix_dead_letters_kind", "stage", "error", "redriven_at", "set_aside_at", "id"),
    Index("ix_dead_letters_redrive_claimed_until", "redrive_claimed_until"),
)
