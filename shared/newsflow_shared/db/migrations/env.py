"""Alembic environment: migrations run on a connection handed over by :func:`newsflow_shared.db.upgrade`."""

from __future__ import annotations

from alembic import context

from newsflow_shared.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `newsflow db upgrade`, which hands Alembic a connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
