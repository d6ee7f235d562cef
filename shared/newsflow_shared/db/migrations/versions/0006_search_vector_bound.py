"""PostgreSQL's search vector reads the first 100,000 characters of an article's title and text, so every valid
article fits in one.

PostgreSQL refuses a tsvector of over 1 MB ("string is too long for tsvector"). The generated column read the whole
text, so ~800 KB of distinct words, under ingest's 2 MiB, failed storage's insert and the article was dead-lettered.
Its lexemes and their positions take at most ~8 bytes a character: 7.7 were measured for hyphenated words of
four-byte letters, each kept whole and in its parts. 100,000 characters (some 15,000 words, more than nearly any news
story, the title's at most 2,000 among them) stay under ~0.8 MB. SQLite's FTS5 has no such limit and indexes all.

Dropping and adding the generated column rewrites ``articles`` and rebuilds its search index: minutes for millions of
articles, with the table locked meanwhile. A downgrade fails if an article stored since needs the whole vector.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SEARCHED_CHARACTERS = 100_000


def _search_column(document: str) -> None:
    op.execute("ALTER TABLE articles DROP COLUMN search")  # drops its index too
    op.execute(
        f"ALTER TABLE articles ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('simple', {document})) STORED"
    )
    op.execute("CREATE INDEX ix_articles_search ON articles USING GIN (search)")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _search_column(f"left(coalesce(title, '') || ' ' || text, {SEARCHED_CHARACTERS})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _search_column("coalesce(title, '') || ' ' || text")
