"""Alembic's environment: always run by :func:`service.store.migrate.upgrade` on a connection it passes in."""

from __future__ import annotations

from alembic import context

from service.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `xinxi db upgrade` (or start the service), not with the alembic command")
# render_as_batch: SQLite alters a table by copying it, which batch mode does.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
