"""Where media lives in the blob store: every key is namespaced by owner
(``owners/{owner}/videos/{video}/...``, ``owners/{owner}/persons/...``). The one ingest path is
``services.videos`` (``create_video``, ``ingest_queued_video``, ``ingest_local_file``); persons
are added by ``services.persons.Persons``.
"""

from __future__ import annotations

import uuid


def video_prefix(owner_id: uuid.UUID, video_id: uuid.UUID) -> str:
    """Blob key prefix of a video's files: ``owners/{owner}/videos/{video}``."""
    return f"owners/{owner_id}/videos/{video_id}"


def keyframe_key(owner_id: uuid.UUID, video_id: uuid.UUID, ordinal: int) -> str:
    """Blob key of a scene's keyframe JPEG: ``owners/{owner}/videos/{video}/keyframes/00003.jpg``."""
    return f"{video_prefix(owner_id, video_id)}/keyframes/{ordinal:05d}.jpg"


def source_key(owner_id: uuid.UUID, video_id: uuid.UUID, suffix: str) -> str:
    """Blob key of a video's source copy: ``owners/{owner}/videos/{video}/source.mp4``."""
    return f"{video_prefix(owner_id, video_id)}/source{suffix}"


def person_photo_key(owner_id: uuid.UUID, person_id: uuid.UUID, photo_id: uuid.UUID, suffix: str) -> str:
    """Blob key of a person's reference photo: ``owners/{owner}/persons/{person}/{photo}.jpg``."""
    return f"owners/{owner_id}/persons/{person_id}/{photo_id}{suffix}"
