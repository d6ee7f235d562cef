"""The web page's newest-first walks read an index, not the articles.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Newest first (stored_at, id) with every column a filter or a facet reads: a page and its facets walk this
    # index and test language, source, dates and near-duplicates in it, where the narrower (stored_at, id) index
    # made SQLite read each article (~2-4 KB with its text) just to test its language. It starts with that index's
    # columns, so it replaces it. ~0.5 s at 100,000 articles on SQLite.
    op.create_index(
        "ix_articles_newest", "articles", ["stored_at", "id", "language", "source", "published_at", "duplicate_of"]
    )
    op.drop_index("ix_articles_stored_at_id", "articles")


def downgrade() -> None:
    op.create_index("ix_articles_stored_at_id", "articles", ["stored_at", "id"])
    op.drop_index("ix_articles_newest", "articles")
