"""Engine creation and the dialect-aware upsert used by every repository."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session


def create_engine(database_url: str) -> sa.Engine:
    """An engine for ``database_url`` (``postgresql+psycopg://...`` or ``sqlite:///path``).

    ``postgresql://`` is taken to mean psycopg 3. For SQLite the parent folder is created,
    foreign keys are switched on and WAL journaling lets readers run beside one writer.
    """
    url = make_url(database_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def upsert(
    connection: sa.Connection | Session,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    *,
    keep_on_update: Sequence[str] = ("created_at",),
) -> None:
    """``INSERT ... ON CONFLICT (primary key) DO UPDATE`` of ``rows`` (idempotent).

    The update only applies when the existing row has the same ``owner_id``: a write can never
    take over another owner's row. Columns in ``keep_on_update`` keep their first value.
    """
    if not rows:
        return
    bind = connection.get_bind() if isinstance(connection, Session) else connection
    dialect = bind.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    keys = [c.name for c in table.primary_key.columns]
    updates = {
        c.name: stmt.excluded[c.name]
        for c in table.columns
        if c.name not in keys and c.name not in keep_on_update
    }
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_=updates, where=table.c.owner_id == stmt.excluded.owner_id
    )
    connection.execute(stmt, list(rows))


def vector_to_bytes(vector: np.ndarray | None) -> tuple[bytes | None, list[int] | None]:
    """float32 little-endian bytes and shape of ``vector`` (``(None, None)`` for None)."""
    if vector is None:
        return None, None
    array = np.ascontiguousarray(vector, dtype="<f4")
    return array.tobytes(), list(array.shape)


def vector_from_bytes(data: bytes | None, shape: Sequence[int] | None) -> np.ndarray | None:
    """The float32 array stored by ``vector_to_bytes`` (None stays None)."""
    if data is None:
        return None
    array = np.frombuffer(data, dtype="<f4").astype(np.float32)
    return array.reshape(tuple(shape)) if shape is not None else array
