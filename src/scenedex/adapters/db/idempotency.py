"""``IdempotencyStore`` on SQLAlchemy Core (the ``idempotency_keys`` table; Postgres and SQLite).

A claim is one transaction: delete the owner's expired rows (so the table holds only live keys
of the owners that use them; ``purge`` deletes every owner's), insert the claim
(``ON CONFLICT DO NOTHING RETURNING``: a row back means this request won), else read the row
that won: two requests racing with one key insert one row between them, the loser sees it
unanswered (in progress) or answered (replay).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from scenedex.adapters.db import tables as t
from scenedex.domain.idempotency import (
    Claim,
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    StoredAnswer,
)

_KEYS = t.idempotency_keys


class SqlIdempotencyStore:
    """Kept answers in ``idempotency_keys``, one transaction per method."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def claim(
        self, owner_id: uuid.UUID, key: str, route: str, fingerprint: str, now: datetime, expires_at: datetime
    ) -> Claim:
        where = (_KEYS.c.owner_id == owner_id) & (_KEYS.c.key == key)
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        row = {
            "owner_id": owner_id,
            "key": key,
            "route": route,
            "fingerprint": fingerprint,
            "created_at": now,
            "expires_at": expires_at,
        }
        with self.engine.begin() as connection:
            expired = (_KEYS.c.owner_id == owner_id) & (_KEYS.c.expires_at <= now)
            connection.execute(sa.delete(_KEYS).where(expired))
            insert = dialect.insert(_KEYS).values(**row).on_conflict_do_nothing().returning(_KEYS.c.key)
            if connection.execute(insert).first() is not None:
                return Claim(new=True)
            found = connection.execute(sa.select(_KEYS).where(where)).mappings().one()
        if (found["route"], found["fingerprint"]) != (route, fingerprint):
            raise IdempotencyKeyReusedError(
                f"Idempotency-Key {key!r} was used for another request ({found['route']}, other body); "
                "use a new key for a new request"
            )
        if found["status"] is None:
            raise IdempotencyInProgressError(
                f"the request with Idempotency-Key {key!r} has not answered yet; retry it later"
            )
        return Claim(
            new=False,
            replay=StoredAnswer(int(found["status"]), found["body"], json.loads(found["headers"] or "{}")),
        )

    def complete(self, owner_id: uuid.UUID, key: str, answer: StoredAnswer) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(_KEYS)
                .where((_KEYS.c.owner_id == owner_id) & (_KEYS.c.key == key))
                .values(status=answer.status, body=answer.body, headers=json.dumps(answer.headers))
            )

    def release(self, owner_id: uuid.UUID, key: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                sa.delete(_KEYS).where(
                    (_KEYS.c.owner_id == owner_id) & (_KEYS.c.key == key) & _KEYS.c.status.is_(None)
                )
            )

    def purge(self, now: datetime) -> int:
        with self.engine.begin() as connection:
            return int(connection.execute(sa.delete(_KEYS).where(_KEYS.c.expires_at <= now)).rowcount)
