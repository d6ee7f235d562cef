"""Storage's web page: a copy of the dead letters (pipeline view, re-drive), and the text as it arrived.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Nullable: articles stored before cleanup carried it have none, and the page says so.
    op.add_column("articles", sa.Column("arrived_text", sa.Text))
    # The web page's facet counts read only these columns: from this index, SQLite counts 100,000 articles
    # without touching their rows (~2 KB each with text), which took seconds under a full-text filter.
    op.create_index("ix_articles_facets", "articles", ["language", "source", "published_at", "duplicate_of", "id"])
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source_topic", sa.String(255), nullable=False),
        sa.Column("source_partition", sa.Integer, nullable=False),
        sa.Column("source_offset", sa.BigInteger, nullable=False),
        sa.Column("stage", sa.String(64), nullable=False),
        sa.Column("error", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("article_id", sa.String(200)),
        sa.Column("original", sa.LargeBinary, nullable=False),
        sa.Column("original_size", sa.BigInteger, nullable=False),
        sa.Column("original_truncated", sa.Boolean, nullable=False),
        sa.Column("original_key", sa.Text),
        sa.Column("headers", Json, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("failed_at", Stamp, nullable=False),
        sa.Column("redriven_at", Stamp),
        sa.UniqueConstraint("source_topic", "source_partition", "source_offset", name="uq_dead_letters_source"),
    )
    op.create_index("ix_dead_letters_failed_at", "dead_letters", ["failed_at"])
    op.create_index("ix_dead_letters_kind", "dead_letters", ["stage", "error"])


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.drop_index("ix_articles_facets", "articles")
    with op.batch_alter_table("articles") as batch:
        batch.drop_column("arrived_text")
