"""Articles, their topics and revisions, and ingest's record of what it has seen.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "articles",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("title", sa.Text),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("language_confidence", sa.Float, nullable=False),
        sa.Column("topics", Json, nullable=False),
        sa.Column("duplicate_of", sa.String(200)),
        sa.Column("duplicate_score", sa.Float),
        sa.Column("source", sa.String(500)),
        sa.Column("url", sa.Text),
        sa.Column("author", sa.Text),
        sa.Column("published_at", Stamp),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("removed", Json, nullable=False),
        sa.Column("lineage", Json, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("enrichment_hash", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("received_at", Stamp, nullable=False),
        sa.Column("stored_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
    )
    op.create_index("ix_articles_language", "articles", ["language"])
    op.create_index("ix_articles_source", "articles", ["source"])
    op.create_index("ix_articles_published_at", "articles", ["published_at"])
    op.create_index("ix_articles_duplicate_of", "articles", ["duplicate_of"])
    op.create_index("ix_articles_stored_at_id", "articles", ["stored_at", "id"])

    _create_full_text_search()

    op.create_table(
        "article_topics",
        sa.Column("article_id", sa.String(200), sa.ForeignKey("articles.id", ondelete="CASCADE"), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("direct", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("article_id", "code"),
    )
    op.create_index("ix_article_topics_code", "article_topics", ["code", "article_id"])

    op.create_table(
        "article_revisions",
        sa.Column("article_id", sa.String(200), sa.ForeignKey("articles.id", ondelete="CASCADE"), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("enrichment", Json, nullable=False),
        sa.Column("recorded_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("article_id", "revision"),
    )

    op.create_table(
        "ingest_seen",
        sa.Column("article_id", sa.String(200), primary_key=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("first_seen_at", Stamp, nullable=False),
        sa.Column("last_seen_at", Stamp, nullable=False),
    )


def _create_full_text_search() -> None:
    """PostgreSQL: a generated tsvector with a GIN index. SQLite: an FTS5 table kept in step by triggers."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE articles ADD COLUMN search tsvector GENERATED ALWAYS AS "
            "(to_tsvector('simple', coalesce(title, '') || ' ' || text)) STORED"
        )
        op.execute("CREATE INDEX ix_articles_search ON articles USING GIN (search)")
        return
    op.execute(
        "CREATE VIRTUAL TABLE articles_fts USING fts5(title, text, content='articles', content_rowid='rowid', "
        "tokenize='unicode61 remove_diacritics 2')"
    )
    op.execute(
        "CREATE TRIGGER articles_fts_insert AFTER INSERT ON articles BEGIN "
        "INSERT INTO articles_fts(rowid, title, text) VALUES (new.rowid, new.title, new.text); END"
    )
    op.execute(
        "CREATE TRIGGER articles_fts_delete AFTER DELETE ON articles BEGIN "
        "INSERT INTO articles_fts(articles_fts, rowid, title, text) VALUES ('delete', old.rowid, old.title, old.text); END"
    )
    op.execute(
        "CREATE TRIGGER articles_fts_update AFTER UPDATE ON articles BEGIN "
        "INSERT INTO articles_fts(articles_fts, rowid, title, text) VALUES ('delete', old.rowid, old.title, old.text); "
        "INSERT INTO articles_fts(rowid, title, text) VALUES (new.rowid, new.title, new.text); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS articles_fts")
    op.drop_table("ingest_seen")
    op.drop_table("article_revisions")
    op.drop_table("article_topics")
    op.drop_table("articles")
