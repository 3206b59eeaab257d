"""Alembic environment: runs on the application's own engine (see `qrsvc.db.upgrade`)."""

from __future__ import annotations

from alembic import context

from qrsvc.extensions import db

with db.engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=db.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
