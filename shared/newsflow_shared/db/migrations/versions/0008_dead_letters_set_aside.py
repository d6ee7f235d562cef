"""A dead letter can be set aside (nothing to re-drive), and settled letters are deleted after a while.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("dead_letters", sa.Column("set_aside_at", sa.DateTime(timezone=True), nullable=True))
    # The pipeline page counts waiting, re-driven and set-aside letters of each kind from this index alone
    # (migration 0007 says why): the new column joins it.
    op.drop_index("ix_dead_letters_kind", "dead_letters")
    op.create_index("ix_dead_letters_kind", "dead_letters", ["stage", "error", "redriven_at", "set_aside_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_dead_letters_kind", "dead_letters")
    op.create_index("ix_dead_letters_kind", "dead_letters", ["stage", "error", "redriven_at", "id"])
    with op.batch_alter_table("dead_letters") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("set_aside_at")
