"""Getting media in: videos cut into scenes with keyframes, persons with reference photos.

Blobs are written before rows, so a crash leaves at most an unreferenced blob, never a row
pointing at nothing. Keys are namespaced by owner: ``owners/{owner}/videos/{video}/...``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from scenedex.adapters.storage import FsspecBlobStore
from scenedex.adapters.subtitles import Cue, load_cues, transcript_for
from scenedex.domain.errors import InvalidRequestError
from scenedex.domain.model import Person, PersonPhoto, Scene, Video, new_id
from scenedex.domain.ports import UnitOfWorkFactory

if TYPE_CHECKING:  # the detector's types; importing them would load OpenCV
    from scenedex.adapters.video import VideoScenes


class SceneDetector(Protocol):
    def detect(self, path: str | Path) -> VideoScenes: ...


@dataclass(frozen=True)
class IngestedVideo:
    video: Video
    scenes: tuple[Scene, ...]


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


def ingest_video(
    *,
    uow_factory: UnitOfWorkFactory,
    blobs: FsspecBlobStore,
    detector: SceneDetector,
    path: str | Path,
    owner_id: uuid.UUID,
    title: str | None = None,
    subtitles: str | Path | None = None,
) -> IngestedVideo:
    """Detect the video's scenes, store the source and one JPEG keyframe per scene, fill each
    scene's transcript from the subtitle cues overlapping it, and create the rows.

    Raises ``InvalidRequestError`` for a missing file and ``BadInputError`` for a file that is
    not a readable video or subtitle file.
    """
    source = _existing_file(path, "video")
    cues: Sequence[Cue] = load_cues(_existing_file(subtitles, "subtitles")) if subtitles else ()
    detected = detector.detect(source)
    video_id = new_id()
    source_uri = blobs.write_file(source_key(owner_id, video_id, source.suffix.lower()), str(source))
    scenes = []
    for ordinal, cut in enumerate(detected.scenes):
        keyframe_uri = blobs.write(keyframe_key(owner_id, video_id, ordinal), cut.keyframe_jpeg)
        scenes.append(
            Scene(
                id=new_id(),
                video_id=video_id,
                owner_id=owner_id,
                ordinal=ordinal,
                start_s=cut.start_s,
                end_s=cut.end_s,
                keyframe_uri=keyframe_uri,
                keyframe_sha256=hashlib.sha256(cut.keyframe_jpeg).hexdigest(),
                transcript=transcript_for(cut.start_s, cut.end_s, cues),
            )
        )
    video = Video(
        id=video_id,
        owner_id=owner_id,
        title=title or source.stem,
        source_uri=source_uri,
        duration_s=detected.duration_s,
    )
    with uow_factory() as uow:
        uow.videos.add(video)
        uow.scenes.add_many(scenes)
        uow.commit()
    return IngestedVideo(video, tuple(scenes))


@dataclass(frozen=True)
class AddedPerson:
    person: Person
    photos: tuple[PersonPhoto, ...]


def add_person(
    *,
    uow_factory: UnitOfWorkFactory,
    blobs: FsspecBlobStore,
    owner_id: uuid.UUID,
    name: str,
    photo_paths: Sequence[str | Path],
) -> AddedPerson:
    """Create a person with reference photos (stored as given; faces are found by the
    PERSON_PHOTO_EMBEDDINGS step). Raises ``InvalidRequestError`` for a blank name, no photos
    or a missing photo file."""
    if not name.strip():
        raise InvalidRequestError("a person needs a non-empty name")
    if not photo_paths:
        raise InvalidRequestError("a person needs at least one photo")
    files = [_existing_file(p, "photo") for p in photo_paths]
    person = Person(id=new_id(), owner_id=owner_id, name=name.strip())
    photos = []
    for file in files:
        data = file.read_bytes()
        photo_id = new_id()
        uri = blobs.write(person_photo_key(owner_id, person.id, photo_id, file.suffix.lower()), data)
        photos.append(
            PersonPhoto(
                id=photo_id,
                person_id=person.id,
                owner_id=owner_id,
                image_uri=uri,
                image_sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    with uow_factory() as uow:
        uow.persons.add(person)
        for photo in photos:
            uow.persons.add_photo(photo)
        uow.commit()
    return AddedPerson(person, tuple(photos))


def _existing_file(path: str | Path, what: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise InvalidRequestError(f"{what} file not found: {path}")
    return file
