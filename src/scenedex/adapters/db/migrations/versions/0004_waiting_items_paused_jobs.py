"""held items and paused jobs: item waiting_on / waiting_since, 'paused' holds a job's scope

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 13:10:00.000000

An item held while a dependency is down (or waiting for a retry) is ``waiting`` with the
dependency's name in ``waiting_on``. A ``paused`` job is still active: the partial unique index
on active scopes now counts it, so no second job can take its scope while it is paused.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TIMESTAMP = sa.DateTime(timezone=True)


def _active_scope_index(statuses: str) -> None:
    with op.batch_alter_table("reprocess_jobs", schema=None) as batch_op:
        batch_op.drop_index("uq_reprocess_jobs_active_scope")
        batch_op.create_index(
            "uq_reprocess_jobs_active_scope",
            ["scope_key"],
            unique=True,
            postgresql_where=sa.text(f"status IN ({statuses})"),
            sqlite_where=sa.text(f"status IN ({statuses})"),
        )


def upgrade() -> None:
    with op.batch_alter_table("reprocess_job_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("waiting_on", sa.String(32), nullable=True))
        batch_op.add_column(sa.Column("waiting_since", _TIMESTAMP, nullable=True))
    _active_scope_index("'queued', 'running', 'paused'")


def downgrade() -> None:
    op.execute("UPDATE reprocess_jobs SET status = 'running' WHERE status = 'paused'")
    op.execute("UPDATE reprocess_job_items SET status = 'queued' WHERE status = 'waiting'")
    _active_scope_index("'queued', 'running'")
    with op.batch_alter_table("reprocess_job_items", schema=None) as batch_op:
        batch_op.drop_column("waiting_since")
        batch_op.drop_column("waiting_on")
