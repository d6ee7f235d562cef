"""PostgreSQL's search vector reads the first 100,000 characters of an article's title and text, so every valid
article fits in one.

PostgreSQL refuses a tsvector of over 1 MB ("string is too long for tsvector"). The generated column read the whole
text, so ~800 KB of distinct words, under ingest's 2 MiB, failed storage's insert and the article was dead-lettered.
Its lexemes and their positions take at most ~8 bytes a character: 7.7 were measured for hyphenated words of
four-byte letters, each kept whole and in its parts. 100,000 characters (some 15,000 words, more than nearly any news
story, the title's at most 2,000 among them) stay under ~0.8 MB. SQLite's FTS5 has no such limit and indexes all.

A trigger computes the vector now, and the column stops being generated. Changing a generated column's expression
rewrites the table and rebuilds its index (219 s for 100,000 articles here, the table held all along:
bench/search_vector.py); this changes the catalog only, and the vectors already stored all fit. A downgrade makes
the column generated again, which does rewrite the table, and fails if an article stored since needs more than 1 MB.

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


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"""
        CREATE FUNCTION newsflow_articles_search() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.search := to_tsvector('simple', left(coalesce(NEW.title, '') || ' ' || NEW.text, {SEARCHED_CHARACTERS}));
            RETURN NEW;
        END $$
    """)
    op.execute("ALTER TABLE articles ALTER COLUMN search DROP EXPRESSION")
    op.execute(
        "CREATE TRIGGER articles_search BEFORE INSERT OR UPDATE OF title, text ON articles "
        "FOR EACH ROW EXECUTE FUNCTION newsflow_articles_search()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER articles_search ON articles")
    op.execute("DROP FUNCTION newsflow_articles_search()")
    op.execute("ALTER TABLE articles DROP COLUMN search")  # drops its index too
    op.execute(
        "ALTER TABLE articles ADD COLUMN search tsvector GENERATED ALWAYS AS "
        "(to_tsvector('simple', coalesce(title, '') || ' ' || text)) STORED"
    )
    op.execute("CREATE INDEX ix_articles_search ON articles USING GIN (search)")
