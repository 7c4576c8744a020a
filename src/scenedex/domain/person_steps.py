"""The person steps: reference photo descriptors and person query embeddings of one owner.

Persons are few per owner; the runner runs these before the owner's scenes, since scene faces
are matched against the person query embeddings.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from scenedex.domain.errors import BadInputError
from scenedex.domain.freshness import ExpectedStates, staleness
from scenedex.domain.limits import DEFAULT_MAX_IMAGE_BYTES
from scenedex.domain.model import PersonPhoto, PhotoStatus, RecordState, l2_normalise, largest_face
from scenedex.domain.ports import BlobStore, FaceEmbedder, UnitOfWork
from scenedex.domain.progress import ProgressTracker
from scenedex.domain.scene_steps import make_record, read_blobs
from scenedex.domain.spec import EmbeddingStepType

Step = EmbeddingStepType


def compute_photo_embeddings(
    uow: UnitOfWork,
    photos: Sequence[PersonPhoto],
    expected: ExpectedStates,
    tracker: ProgressTracker,
    blobs: BlobStore,
    embedder: FaceEmbedder,
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
) -> None:
    """PERSON_PHOTO_EMBEDDINGS for ``photos`` (the stale ones): the descriptor of the largest face
    of each reference photo (``(128,)`` float32) and the photo's status (ok, no face, failed);
    an unreadable photo (or one over ``max_bytes``) fails its item."""
    step = Step.PERSON_PHOTO_EMBEDDINGS
    images = read_blobs(blobs, {p.id: p.image_uri for p in photos}, max_bytes)
    readable = {p.id: data for p in photos if isinstance(data := images[p.id], bytes)}
    detected = dict(
        zip(
            list(readable),
            embedder.detect_faces(list(readable.values())),
            strict=True,
        )
    )
    records = []
    for photo in photos:
        outcome = detected.get(photo.id, images[photo.id])
        if isinstance(outcome, BadInputError):
            uow.persons.set_photo_status(photo.owner_id, photo.id, PhotoStatus.FAILED, str(outcome))
            tracker.failed(step, photo.id, f"photo {photo.image_uri}: {outcome}", photo.owner_id)
            continue
        assert isinstance(outcome, list)
        face = largest_face(outcome) if outcome else None
        status, error = (
            (PhotoStatus.OK, None) if face else (PhotoStatus.NO_FACE, "no face found in the photo")
        )
        uow.persons.set_photo_status(photo.owner_id, photo.id, status, error)
        records.append(
            make_record(
                spec=expected.spec,
                step=step,
                owner_id=photo.owner_id,
                subject_id=photo.id,
                key="",
                vector=None if face is None else face.descriptor,
                model_id=expected.spec.step(step).model_id,
                input_hash=expected.photos[photo.id].input_hash,
                payload={
                    "faces": len(outcome),
                    "person_id": str(photo.person_id),
                    "bbox": list(face.bbox) if face else None,
                },
            )
        )
        tracker.computed(step)
    uow.records.upsert(step, records)


def compute_person_queries(
    uow: UnitOfWork,
    owner_id: uuid.UUID,
    photos: Sequence[PersonPhoto],
    expected: ExpectedStates,
    force: bool,
    tracker: ProgressTracker,
) -> None:
    """PERSON_QUERY_EMBEDDINGS for every person of the owner that is not current: the
    L2-normalised mean of its photo descriptors, or for a person without a usable photo of its
    confirmed faces' descriptors (``domain.face_decisions``; ``(128,)`` float32; no vector
    without either), with the input hash of the photo records it was actually computed from
    and of its confirmations. Confirmed faces are not averaged into a photo mean: scene faces
    are matched against the query embedding and each confirmed face (``match_tracks``), so a
    person keeps matching its photos' face however many faces are confirmed for it."""
    step = Step.PERSON_QUERY_EMBEDDINGS
    photo_records = uow.records.get(Step.PERSON_PHOTO_EMBEDDINGS, owner_id, [p.id for p in photos])
    stored = uow.records.states(step, owner_id, expected.persons)
    references = expected.decisions.references(expected.persons)
    photos_of: dict[uuid.UUID, list[PersonPhoto]] = defaultdict(list)
    for photo in photos:
        photos_of[photo.person_id].append(photo)
    records = []
    for person_id, state in expected.persons.items():
        if not staleness(stored.get((person_id, "")), state, force):
            tracker.skipped(step)
            continue
        used = [photo_records.get((p.id, "")) for p in photos_of[person_id]]
        actual = ExpectedStates.person_input(
            (
                (p.id, RecordState(r.fingerprint, r.input_hash) if r else None)
                for p, r in zip(photos_of[person_id], used, strict=True)
            ),
            expected.decisions.reference_hash(person_id),
        )
        vectors = [r.vector for r in used if r is not None and r.vector is not None]
        photo_count = len(vectors)
        confirmed = references.get(person_id)
        if not vectors and confirmed is not None:  # a person made from a suggestion
            vectors = list(confirmed)
        vector = l2_normalise(np.mean(np.stack(vectors), axis=0)) if vectors else None
        records.append(
            make_record(
                spec=expected.spec,
                step=step,
                owner_id=owner_id,
                subject_id=person_id,
                key="",
                vector=vector,
                model_id=expected.spec.inputs.face_model_id,
                input_hash=actual,
                payload={
                    "photos": photo_count,
                    "confirmed_faces": 0 if confirmed is None else len(confirmed),
                },
            )
        )
        tracker.computed(step)
    uow.records.upsert(step, records)
