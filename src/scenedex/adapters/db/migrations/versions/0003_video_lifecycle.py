"""video lifecycle: status queued|ingesting|embedding|ready|failed, error, external_id, ingest

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00.000000

Videos ingested before this revision (status ``ingested``: their scenes exist) become ``ready``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("external_id", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("ingest", _JSON, nullable=True))
        batch_op.create_index(
            "uq_videos_owner_external_id",
            ["owner_id", "external_id"],
            unique=True,
            postgresql_where=sa.text("external_id IS NOT NULL"),
            sqlite_where=sa.text("external_id IS NOT NULL"),
        )
    op.execute("UPDATE videos SET status = 'ready' WHERE status = 'ingested'")


def downgrade() -> None:
    op.execute("UPDATE videos SET status = 'ingested' WHERE status = 'ready'")
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.drop_index("uq_videos_owner_external_id")
        batch_op.drop_column("ingest")
        batch_op.drop_column("external_id")
        batch_op.drop_column("error")
