"""face decisions (users') and suggested persons (face clusters)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 18:00:00.000000

``face_decisions``: one row per face a user confirmed as a person, rejected for one or split
off a suggestion; cascades with its scene and its person. ``face_clusterings`` (one row per
owner) and ``face_clusters``: the suggested persons the FACE_CLUSTERS step keeps current.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TIMESTAMP = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "face_decisions",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("owner_id", sa.Uuid, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scene_id", sa.Uuid, nullable=False),
        sa.Column("person_id", sa.Uuid, nullable=True),
        sa.Column("group_id", sa.Uuid, nullable=False),
        sa.Column("descriptor", sa.LargeBinary, nullable=False),
        sa.Column("first_s", sa.Float, nullable=False),
        sa.Column("last_s", sa.Float, nullable=False),
        sa.Column("bbox", _JSON, nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["scene_id", "owner_id"],
            ["scenes.id", "scenes.owner_id"],
            name=op.f("fk_face_decisions_scene_id_owner_id_scenes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id", "owner_id"],
            ["persons.id", "persons.owner_id"],
            name=op.f("fk_face_decisions_person_id_owner_id_persons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_face_decisions")),
    )
    op.create_index("ix_face_decisions_owner", "face_decisions", ["owner_id"])
    op.create_table(
        "face_clusterings",
        sa.Column("owner_id", sa.Uuid, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("input_hash", sa.String(64), nullable=False),
        sa.Column("settings_id", sa.String(64), nullable=False),
        sa.Column("splits_hash", sa.String(64), nullable=True),
        sa.Column("noise", _JSON, nullable=False),
        sa.Column("waiting", _JSON, nullable=False),
        sa.Column("full", sa.Boolean, nullable=False),
        sa.Column("faces", sa.Integer, nullable=False),
        sa.Column("computed_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("owner_id", name=op.f("pk_face_clusterings")),
    )
    op.create_table(
        "face_clusters",
        sa.Column("owner_id", sa.Uuid, nullable=False),
        sa.Column("cluster_id", sa.String(32), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("split", sa.Boolean, nullable=False),
        sa.Column("representative", sa.String(80), nullable=False),
        sa.Column("members", _JSON, nullable=False),
        sa.Column("descriptors", sa.LargeBinary, nullable=False),
        sa.Column("centroid", sa.LargeBinary, nullable=False),
        sa.Column("thumbnail", sa.LargeBinary, nullable=True),
        sa.Column("computed_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("owner_id", "cluster_id", name=op.f("pk_face_clusters")),
    )
    op.create_index("ix_face_clusters_owner_size", "face_clusters", ["owner_id", "size"])


def downgrade() -> None:
    op.drop_index("ix_face_clusters_owner_size", table_name="face_clusters")
    op.drop_table("face_clusters")
    op.drop_table("face_clusterings")
    op.drop_index("ix_face_decisions_owner", table_name="face_decisions")
    op.drop_table("face_decisions")
