"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 08:51:12.629487
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "persons",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_persons")),
        sa.UniqueConstraint("id", "owner_id", name=op.f("uq_persons_id_owner_id")),
    )
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.create_index("ix_persons_owner", ["owner_id"], unique=False)

    op.create_table(
        "search_documents",
        sa.Column("scene_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("video_id", sa.Uuid(), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=False),
        sa.Column("end_s", sa.Float(), nullable=False),
        sa.Column(
            "document",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("transcript_vector", sa.LargeBinary(), nullable=True),
        sa.Column("visual_vector", sa.LargeBinary(), nullable=True),
        sa.Column("summary_vector", sa.LargeBinary(), nullable=True),
        sa.Column("image_vector", sa.LargeBinary(), nullable=True),
        sa.Column("face_descriptors", sa.LargeBinary(), nullable=True),
        sa.Column("spec_version", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scene_id", name=op.f("pk_search_documents")),
    )
    with op.batch_alter_table("search_documents", schema=None) as batch_op:
        batch_op.create_index("ix_search_documents_owner_video", ["owner_id", "video_id"], unique=False)

    op.create_table(
        "videos",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("source_uri", sa.Text(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_videos")),
        sa.UniqueConstraint("id", "owner_id", name=op.f("uq_videos_id_owner_id")),
    )
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.create_index("ix_videos_owner_updated", ["owner_id", "updated_at"], unique=False)

    op.create_table(
        "person_photos",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("image_uri", sa.Text(), nullable=False),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id", "owner_id"],
            ["persons.id", "persons.owner_id"],
            name=op.f("fk_person_photos_person_id_owner_id_persons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person_photos")),
        sa.UniqueConstraint("id", "owner_id", name=op.f("uq_person_photos_id_owner_id")),
    )
    with op.batch_alter_table("person_photos", schema=None) as batch_op:
        batch_op.create_index("ix_person_photos_owner_person", ["owner_id", "person_id"], unique=False)

    op.create_table(
        "person_query_embeddings",
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=32), server_default="", nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column(
            "vector_shape",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("spec_version", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id", "owner_id"],
            ["persons.id", "persons.owner_id"],
            name=op.f("fk_person_query_embeddings_person_id_owner_id_persons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("person_id", "key", name=op.f("pk_person_query_embeddings")),
    )
    with op.batch_alter_table("person_query_embeddings", schema=None) as batch_op:
        batch_op.create_index("ix_person_query_embeddings_owner", ["owner_id"], unique=False)

    op.create_table(
        "scenes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("video_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=False),
        sa.Column("end_s", sa.Float(), nullable=False),
        sa.Column("transcript", sa.Text(), server_default="", nullable=False),
        sa.Column("visual_description", sa.Text(), server_default="", nullable=False),
        sa.Column("summary", sa.Text(), server_default="", nullable=False),
        sa.Column("keyframe_uri", sa.Text(), nullable=False),
        sa.Column("keyframe_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["video_id", "owner_id"],
            ["videos.id", "videos.owner_id"],
            name=op.f("fk_scenes_video_id_owner_id_videos"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scenes")),
        sa.UniqueConstraint("id", "owner_id", name=op.f("uq_scenes_id_owner_id")),
        sa.UniqueConstraint("video_id", "ordinal", name=op.f("uq_scenes_video_id_ordinal")),
    )
    with op.batch_alter_table("scenes", schema=None) as batch_op:
        batch_op.create_index("ix_scenes_owner_video", ["owner_id", "video_id"], unique=False)

    op.create_table(
        "person_photo_embeddings",
        sa.Column("photo_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=32), server_default="", nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column(
            "vector_shape",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("spec_version", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["photo_id", "owner_id"],
            ["person_photos.id", "person_photos.owner_id"],
            name=op.f("fk_person_photo_embeddings_photo_id_owner_id_person_photos"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("photo_id", "key", name=op.f("pk_person_photo_embeddings")),
    )
    with op.batch_alter_table("person_photo_embeddings", schema=None) as batch_op:
        batch_op.create_index("ix_person_photo_embeddings_owner", ["owner_id"], unique=False)

    op.create_table(
        "scene_clip_embeddings",
        sa.Column("scene_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=32), server_default="", nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column(
            "vector_shape",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("spec_version", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["scene_id", "owner_id"],
            ["scenes.id", "scenes.owner_id"],
            name=op.f("fk_scene_clip_embeddings_scene_id_owner_id_scenes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scene_id", "key", name=op.f("pk_scene_clip_embeddings")),
    )
    with op.batch_alter_table("scene_clip_embeddings", schema=None) as batch_op:
        batch_op.create_index("ix_scene_clip_embeddings_owner", ["owner_id"], unique=False)

    op.create_table(
        "scene_faces",
        sa.Column("scene_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=32), server_default="", nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column(
            "vector_shape",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("spec_version", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["scene_id", "owner_id"],
            ["scenes.id", "scenes.owner_id"],
            name=op.f("fk_scene_faces_scene_id_owner_id_scenes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scene_id", "key", name=op.f("pk_scene_faces")),
    )
    with op.batch_alter_table("scene_faces", schema=None) as batch_op:
        batch_op.create_index("ix_scene_faces_owner", ["owner_id"], unique=False)

    op.create_table(
        "scene_text_embeddings",
        sa.Column("scene_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=32), server_default="", nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column(
            "vector_shape",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("spec_version", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["scene_id", "owner_id"],
            ["scenes.id", "scenes.owner_id"],
            name=op.f("fk_scene_text_embeddings_scene_id_owner_id_scenes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scene_id", "key", name=op.f("pk_scene_text_embeddings")),
    )
    with op.batch_alter_table("scene_text_embeddings", schema=None) as batch_op:
        batch_op.create_index("ix_scene_text_embeddings_owner", ["owner_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("scene_text_embeddings", schema=None) as batch_op:
        batch_op.drop_index("ix_scene_text_embeddings_owner")

    op.drop_table("scene_text_embeddings")
    with op.batch_alter_table("scene_faces", schema=None) as batch_op:
        batch_op.drop_index("ix_scene_faces_owner")

    op.drop_table("scene_faces")
    with op.batch_alter_table("scene_clip_embeddings", schema=None) as batch_op:
        batch_op.drop_index("ix_scene_clip_embeddings_owner")

    op.drop_table("scene_clip_embeddings")
    with op.batch_alter_table("person_photo_embeddings", schema=None) as batch_op:
        batch_op.drop_index("ix_person_photo_embeddings_owner")

    op.drop_table("person_photo_embeddings")
    with op.batch_alter_table("scenes", schema=None) as batch_op:
        batch_op.drop_index("ix_scenes_owner_video")

    op.drop_table("scenes")
    with op.batch_alter_table("person_query_embeddings", schema=None) as batch_op:
        batch_op.drop_index("ix_person_query_embeddings_owner")

    op.drop_table("person_query_embeddings")
    with op.batch_alter_table("person_photos", schema=None) as batch_op:
        batch_op.drop_index("ix_person_photos_owner_person")

    op.drop_table("person_photos")
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.drop_index("ix_videos_owner_updated")

    op.drop_table("videos")
    with op.batch_alter_table("search_documents", schema=None) as batch_op:
        batch_op.drop_index("ix_search_documents_owner_video")

    op.drop_table("search_documents")
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.drop_index("ix_persons_owner")

    op.drop_table("persons")
