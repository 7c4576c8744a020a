"""scenes.current_under: the digest a no-op reprocess compares in SQL

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00.000000

``current_under`` (nullable): the owner-wide context (spec scene-step fingerprints, text
channels, the owner's person set, the search index's generation) under which every derived
record of the scene, search document included, was last found current; NULL: unknown (new or
changed scene, records being written, a failed item). Existing scenes start at NULL: the first
run after the upgrade assesses them record by record once and sets it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scenes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("current_under", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scenes", schema=None) as batch_op:
        batch_op.drop_column("current_under")
