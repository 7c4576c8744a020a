"""Alembic environment: runs migrations on the connection handed in by ``migrate.upgrade``
(or on ``sqlalchemy.url`` when invoked from the alembic command line)."""

from __future__ import annotations

from alembic import context

from scenedex.adapters.db.engine import create_engine
from scenedex.adapters.db.tables import metadata

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("alembic: no sqlalchemy.url in the configuration (scenedex db upgrade sets it)")
    engine = create_engine(url)
    with engine.connect() as connection:
        _run(connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
