"""SQLAlchemy 2.0 tables for Postgres (psycopg 3) and SQLite.

Owner consistency is enforced by the database: children reference their parent through the
composite key ``(id, owner_id)``, so a scene cannot belong to another owner's video and a
derived record cannot belong to another owner's scene, person or photo.

Vectors are float32 little-endian bytes (``LargeBinary``: bytea / BLOB) with their shape in
``vector_shape`` (e.g. ``[512]`` or ``[3, 128]``), readable by both databases.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from scenedex.domain.spec import EmbeddingStepType

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
    ]


videos = sa.Table(
    "videos",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("owner_id", sa.Uuid, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("source_uri", sa.Text, nullable=False),
    sa.Column("duration_s", sa.Float, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    *_timestamps(),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("external_id", sa.Text, nullable=True),
    sa.Column("ingest", Json, nullable=True),
    sa.UniqueConstraint("id", "owner_id"),
    sa.Index("ix_videos_owner_updated", "owner_id", "updated_at"),
    # The caller's own id is unique per owner (idempotent create over HTTP).
    sa.Index(
        "uq_videos_owner_external_id",
        "owner_id",
        "external_id",
        unique=True,
        postgresql_where=sa.text("external_id IS NOT NULL"),
        sqlite_where=sa.text("external_id IS NOT NULL"),
    ),
)

scenes = sa.Table(
    "scenes",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("video_id", sa.Uuid, nullable=False),
    sa.Column("owner_id", sa.Uuid, nullable=False),
    sa.Column("ordinal", sa.Integer, nullable=False),
    sa.Column("start_s", sa.Float, nullable=False),
    sa.Column("end_s", sa.Float, nullable=False),
    sa.Column("transcript", sa.Text, nullable=False, server_default=""),
    sa.Column("visual_description", sa.Text, nullable=False, server_default=""),
    sa.Column("summary", sa.Text, nullable=False, server_default=""),
    sa.Column("keyframe_uri", sa.Text, nullable=False),
    sa.Column("keyframe_sha256", sa.String(64), nullable=False),
    *_timestamps(),
    # The context under which every record of the scene was last found current (NULL: unknown);
    # cleared by every write of the scene's source or records (``domain.digest``).
    sa.Column("current_under", sa.String(64), nullable=True),
    sa.UniqueConstraint("id", "owner_id"),
    sa.UniqueConstraint("video_id", "ordinal"),
    sa.ForeignKeyConstraint(["video_id", "owner_id"], ["videos.id", "videos.owner_id"], ondelete="CASCADE"),
    sa.Index("ix_scenes_owner_video", "owner_id", "video_id"),
)

persons = sa.Table(
    "persons",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("owner_id", sa.Uuid, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    # The person's last change that matching depends on (created, photos added or removed), and
    # when the owner's scenes were last all matched again after it (``person.searchable``).
    sa.Column("changed_at", Timestamp, nullable=True),
    sa.Column("searchable_at", Timestamp, nullable=True),
    # Any change ``GET /v1/persons/{id}`` shows (``listPersons``' ``updated_since``).
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.UniqueConstraint("id", "owner_id"),
    sa.Index("ix_persons_owner", "owner_id"),
)

person_photos = sa.Table(
    "person_photos",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("person_id", sa.Uuid, nullable=False),
    sa.Column("owner_id", sa.Uuid, nullable=False),
    sa.Column("image_uri", sa.Text, nullable=False),
    sa.Column("image_sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("id", "owner_id"),
    sa.ForeignKeyConstraint(
        ["person_id", "owner_id"], ["persons.id", "persons.owner_id"], ondelete="CASCADE"
    ),
    sa.Index("ix_person_photos_owner_person", "owner_id", "person_id"),
)


def _record_table(name: str, subject: str, parent: str) -> sa.Table:
    """A derived-record table: one row per (subject, key), stamped with its provenance."""
    return sa.Table(
        name,
        metadata,
        sa.Column(subject, sa.Uuid, primary_key=True),
        sa.Column("key", sa.String(32), primary_key=True, server_default=""),
        sa.Column("owner_id", sa.Uuid, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=True),
        sa.Column("vector_shape", Json, nullable=True),
        sa.Column("payload", Json, nullable=False),
        sa.Column("model_id", sa.Text, nullable=False),
        sa.Column("spec_version", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("input_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            [subject, "owner_id"], [f"{parent}.id", f"{parent}.owner_id"], ondelete="CASCADE"
        ),
        sa.Index(f"ix_{name}_owner", "owner_id"),
    )


RECORD_TABLES: dict[EmbeddingStepType, sa.Table] = {
    EmbeddingStepType.PERSON_PHOTO_EMBEDDINGS: _record_table(
        "person_photo_embeddings", "photo_id", "person_photos"
    ),
    EmbeddingStepType.PERSON_QUERY_EMBEDDINGS: _record_table(
        "person_query_embeddings", "person_id", "persons"
    ),
    EmbeddingStepType.SCENE_TEXT_EMBEDDINGS: _record_table("scene_text_embeddings", "scene_id", "scenes"),
    EmbeddingStepType.SCENE_CLIP_EMBEDDINGS: _record_table("scene_clip_embeddings", "scene_id", "scenes"),
    EmbeddingStepType.SCENE_PERSON_EMBEDDINGS: _record_table("scene_faces", "scene_id", "scenes"),
    EmbeddingStepType.SCENE_OCR: _record_table("scene_ocr", "scene_id", "scenes"),
}
"""Derived records of every step but SEARCH_REINDEX (which the SearchIndex holds)."""

search_documents = sa.Table(
    "search_documents",
    metadata,
    sa.Column("scene_id", sa.Uuid, primary_key=True),
    sa.Column("owner_id", sa.Uuid, nullable=False),
    sa.Column("video_id", sa.Uuid, nullable=False),
    sa.Column("start_s", sa.Float, nullable=False),
    sa.Column("end_s", sa.Float, nullable=False),
    sa.Column("document", Json, nullable=False),
    sa.Column("transcript_vector", sa.LargeBinary, nullable=True),
    sa.Column("visual_vector", sa.LargeBinary, nullable=True),
    sa.Column("summary_vector", sa.LargeBinary, nullable=True),
    sa.Column("ocr_vector", sa.LargeBinary, nullable=True),
    sa.Column("image_vector", sa.LargeBinary, nullable=True),
    sa.Column("face_descriptors", sa.LargeBinary, nullable=True),
    sa.Column("spec_version", sa.String(64), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("input_hash", sa.String(64), nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Index("ix_search_documents_owner_video", "owner_id", "video_id"),
)
"""The table-backed search index (one document per scene); OpenSearch replaces it later."""

face_decisions = sa.Table(
    "face_decisions",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("owner_id", sa.Uuid, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("scene_id", sa.Uuid, nullable=False),
    sa.Column("person_id", sa.Uuid, nullable=True),
    sa.Column("group_id", sa.Uuid, nullable=False),
    sa.Column("descriptor", sa.LargeBinary, nullable=False),
    sa.Column("first_s", sa.Float, nullable=False),
    sa.Column("last_s", sa.Float, nullable=False),
    sa.Column("bbox", Json, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.ForeignKeyConstraint(["scene_id", "owner_id"], ["scenes.id", "scenes.owner_id"], ondelete="CASCADE"),
    sa.ForeignKeyConstraint(
        ["person_id", "owner_id"], ["persons.id", "persons.owner_id"], ondelete="CASCADE"
    ),
    sa.Index("ix_face_decisions_owner", "owner_id"),
)
"""Users' decisions about faces (``domain.face_decisions``), one row per face: never derived,
removed with their scene, their person or by the user. ``descriptor``: ``(128,)`` float32."""

face_clusterings = sa.Table(
    "face_clusterings",
    metadata,
    sa.Column("owner_id", sa.Uuid, primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("input_hash", sa.String(64), nullable=False),
    sa.Column("settings_id", sa.String(64), nullable=False),
    sa.Column("splits_hash", sa.String(64), nullable=True),
    sa.Column("noise", Json, nullable=False),
    sa.Column("waiting", Json, nullable=False),
    sa.Column("full", sa.Boolean, nullable=False),
    sa.Column("faces", sa.Integer, nullable=False),
    sa.Column("computed_at", Timestamp, nullable=False),
)
"""Per owner, the state its suggested persons were computed in (``ClusteringState``)."""

face_clusters = sa.Table(
    "face_clusters",
    metadata,
    sa.Column("owner_id", sa.Uuid, primary_key=True),
    sa.Column("cluster_id", sa.String(32), primary_key=True),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("split", sa.Boolean, nullable=False),
    sa.Column("representative", sa.String(80), nullable=False),
    sa.Column("members", Json, nullable=False),
    sa.Column("descriptors", sa.LargeBinary, nullable=False),
    sa.Column("centroid", sa.LargeBinary, nullable=False),
    sa.Column("thumbnail", sa.LargeBinary, nullable=True),
    sa.Column("computed_at", Timestamp, nullable=False),
    sa.Index("ix_face_clusters_owner_size", "owner_id", "size"),
)
"""Suggested persons (``SuggestedPerson``): ``members`` the faces (id, scene, video, times, box)
in ``descriptors`` row order (``(size, 128)`` float32), ``thumbnail`` a JPEG. Replaced as a
whole per owner by the FACE_CLUSTERS step."""

_ACTIVE_JOB = "status IN ('queued', 'running', 'paused')"

reprocess_jobs = sa.Table(
    "reprocess_jobs",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("scope_key", sa.String(64), nullable=False),
    sa.Column("owner_id", sa.Uuid, nullable=True),
    sa.Column("video_id", sa.Uuid, nullable=True),
    sa.Column("force", sa.Boolean, nullable=False),
    sa.Column("since", Timestamp, nullable=True),
    sa.Column("spec_version", sa.String(64), nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("plan_cursor", sa.Uuid, nullable=True),
    sa.Column("plan_message_id", sa.String(64), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("planned_at", Timestamp, nullable=True),
    sa.Column("started_at", Timestamp, nullable=True),
    sa.Column("finished_at", Timestamp, nullable=True),
    sa.Column("updated_at", Timestamp, nullable=False),
    # At most one active job per scope, enforced by the database (a partial unique index).
    sa.Index(
        "uq_reprocess_jobs_active_scope",
        "scope_key",
        unique=True,
        postgresql_where=sa.text(_ACTIVE_JOB),
        sqlite_where=sa.text(_ACTIVE_JOB),
    ),
    sa.Index("ix_reprocess_jobs_status_created", "status", "created_at"),
)
"""Reprocess jobs (``domain.jobs.Job``): the source of truth for progress, not the broker."""

reprocess_job_items = sa.Table(
    "reprocess_job_items",
    metadata,
    sa.Column("job_id", sa.Uuid, sa.ForeignKey("reprocess_jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("subject_id", sa.Uuid, primary_key=True),
    sa.Column("owner_id", sa.Uuid, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("deliveries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("message_id", sa.String(64), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("counts", Json, nullable=True),
    sa.Column("errors", Json, nullable=True),
    sa.Column("started_at", Timestamp, nullable=True),
    sa.Column("finished_at", Timestamp, nullable=True),
    sa.Column("updated_at", Timestamp, nullable=False),
    # ``waiting``: the dependency the item is held for (or ``retry``), and since when.
    sa.Column("waiting_on", sa.String(32), nullable=True),
    sa.Column("waiting_since", Timestamp, nullable=True),
    sa.Index("ix_reprocess_job_items_job_status", "job_id", "status"),
)
"""One row per unit of a job: ``persons`` of an owner, or one ``video``; per-step counts are
set when the item finishes (never incremented), so duplicate deliveries cannot double them."""

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("type", sa.String(48), nullable=False),
    sa.Column("owner_id", sa.Uuid, nullable=True),
    sa.Column("occurred_at", Timestamp, nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Index("ix_events_owner_id", "owner_id", "id"),
    sa.Index("ix_events_occurred_at", "occurred_at"),
)
"""The outbox (``domain.events``): one row per fact, written in the transaction of its change;
``id`` a UUIDv7 (time ordered, the feed's cursor); ``owner_id`` NULL for an admin's event."""

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("owner_id", sa.Uuid, nullable=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("event_types", Json, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.Text, nullable=True),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("previous_secret", sa.Text, nullable=True),
    sa.Column("previous_expires_at", Timestamp, nullable=True),
    sa.Column("failing_since", Timestamp, nullable=True),
    *_timestamps(),
    sa.Index("ix_webhook_endpoints_owner_id", "owner_id"),
)
"""Webhook receivers (``domain.webhooks``): an owner's, or an admin's (``owner_id`` NULL: every
owner's events). ``secret`` signs; ``previous_secret`` too until ``previous_expires_at``."""

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("event_id", sa.Uuid, sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    sa.Column(
        "endpoint_id", sa.Uuid, sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("owner_id", sa.Uuid, nullable=True),
    sa.Column("event_type", sa.String(48), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", Timestamp, nullable=True),
    sa.Column("leased_until", Timestamp, nullable=True),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_attempt_at", Timestamp, nullable=True),
    sa.Column("delivered_at", Timestamp, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("event_id", "endpoint_id"),
    sa.Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
)
"""One row per (event, endpoint), created with the event: the state of its delivery (attempts,
last answer, next try). ``leased_until``: a message for it is out until then; past it, the
dispatcher sends another (a lost message, a killed worker)."""
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("owner_id", sa.Uuid, primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("route", sa.String(128), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("body", sa.Text, nullable=True),
    sa.Column("headers", sa.Text, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Index("ix_idempotency_keys_expires_at", "expires_at"),
)
"""The first answer to each ``Idempotency-Key`` of an owner (``domain.idempotency``): the
request's route and fingerprint (SHA-256 hex), the answer (``status`` null while the first
request runs) and when the row expires (``SCENEDEX_API__IDEMPOTENCY_TTL_S`` after it)."""
