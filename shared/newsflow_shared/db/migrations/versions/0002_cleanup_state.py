"""Cleanup's shared state: the near-duplicate index (MinHash fingerprints, LSH buckets) and learned boilerplate.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cleanup_fingerprints",
        sa.Column("article_id", sa.String(200), primary_key=True),
        sa.Column("signature", sa.LargeBinary, nullable=False),
        sa.Column("shingles", sa.Integer, nullable=False),
        sa.Column("duplicate_of", sa.String(200)),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "cleanup_lsh",
        sa.Column("bucket", sa.String(40), nullable=False),
        sa.Column("article_id", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "article_id"),
    )

    op.create_table(
        "cleanup_source_lines",
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("line_hash", sa.String(32), nullable=False),
        sa.Column("article_id", sa.String(200), nullable=False),
        sa.Column("line", sa.Text, nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "line_hash", "article_id"),
    )


def downgrade() -> None:
    op.drop_table("cleanup_source_lines")
    op.drop_table("cleanup_lsh")
    op.drop_table("cleanup_fingerprints")
