"""Cleanup forgets the near-duplicates it saw longest ago by walking an index, not every fingerprint.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # CLEANUP_DUPLICATE_DAYS: each forgetting reads the oldest fingerprints first; without this index it read every
    # fingerprint (~1 KB each with its signature) to find them.
    op.create_index("ix_cleanup_fingerprints_first_seen_at", "cleanup_fingerprints", ["first_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_cleanup_fingerprints_first_seen_at", "cleanup_fingerprints")
