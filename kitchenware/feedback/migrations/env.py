"""Alembic's environment for the feedback database: run by `schema.migrate` (and `kitchenware feedback upgrade`)
on the connection it passes in, inside its transaction; there is no alembic.ini."""

from alembic import context

from kitchenware.feedback.tables import metadata

# render_as_batch: SQLite alters a table by copying it, which Alembic's batch mode does for a revision's ALTERs.
context.configure(connection=context.config.attributes["connection"], target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
