"""scene_ocr records and the search documents' ocr channel vector

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 13:00:00.000000

``scene_ocr``: one record per scene (key ``""``, no vector) with the text lines read from its
keyframe (``payload["lines"]``, ``payload["text"]``), the provenance columns of every derived
record. ``search_documents.ocr_vector``: the ``ocr`` text channel's embedding (NULL: OCR off, or
no text on the keyframe). Nothing is backfilled: the next reprocess computes what is missing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "scene_ocr",
        sa.Column("scene_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=32), server_default="", nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column("vector_shape", _JSON, nullable=True),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("spec_version", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["scene_id", "owner_id"],
            ["scenes.id", "scenes.owner_id"],
            name=op.f("fk_scene_ocr_scene_id_owner_id_scenes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scene_id", "key", name=op.f("pk_scene_ocr")),
    )
    with op.batch_alter_table("scene_ocr", schema=None) as batch_op:
        batch_op.create_index("ix_scene_ocr_owner", ["owner_id"], unique=False)
    with op.batch_alter_table("search_documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ocr_vector", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("search_documents", schema=None) as batch_op:
        batch_op.drop_column("ocr_vector")
    with op.batch_alter_table("scene_ocr", schema=None) as batch_op:
        batch_op.drop_index("ix_scene_ocr_owner")
    op.drop_table("scene_ocr")
