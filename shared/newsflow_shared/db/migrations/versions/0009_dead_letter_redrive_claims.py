"""A re-drive's claim on a dead letter lapses if the re-drive never finished.

A re-drive marks its letters re-driven before it sends them (so a double click sends none twice) and gives back the
ones Kafka did not take. A storage replica (or ``newsflow dlq redrive``) killed outright in between left every
letter it had claimed marked re-driven, sent or not, for good. The claim now holds until ``redrive_claimed_until``;
a re-drive that finishes clears it, and storage gives back those whose claim lapsed.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("dead_letters", sa.Column("redrive_claimed_until", sa.DateTime(timezone=True), nullable=True))
    # Storage looks for lapsed claims every minute: a range of this index, not a scan of every letter.
    op.create_index("ix_dead_letters_redrive_claimed_until", "dead_letters", ["redrive_claimed_until"])


def downgrade() -> None:
    op.drop_index("ix_dead_letters_redrive_claimed_until", "dead_letters")
    with op.batch_alter_table("dead_letters") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("redrive_claimed_until")
