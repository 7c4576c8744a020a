"""persons.updated_at: when the person resource last changed (listPersons' updated_since)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 16:00:00.000000

``updated_at`` moves with every change a client can see on ``GET /v1/persons/{id}``: created,
renamed, photos added, removed or checked, a face decision for it, searchable again. Existing
persons get the latest of ``created_at``, ``changed_at`` and ``searchable_at``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("persons") as batch_op:
        batch_op.add_column(sa.Column("updated_at", _TIMESTAMP, nullable=True))
    op.execute("UPDATE persons SET updated_at = created_at")
    op.execute("UPDATE persons SET updated_at = changed_at WHERE changed_at > updated_at")
    op.execute("UPDATE persons SET updated_at = searchable_at WHERE searchable_at > updated_at")
    with op.batch_alter_table("persons") as batch_op:
        batch_op.alter_column("updated_at", existing_type=_TIMESTAMP, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("persons") as batch_op:
        batch_op.drop_column("updated_at")
