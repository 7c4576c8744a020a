"""Suggested persons and face decisions: the use cases the API routes
(``api/routes/face_clusters.py``) and the CLI (``scenedex faces``) share.

``FaceClusters`` lists an owner's suggested persons (``domain.cluster_step``: clusters of the
faces no person matched, largest first) and records the user's decisions about them
(``domain.face_decisions``): confirm a suggestion as an existing person or as a new named one,
reject one face for a person, split faces off a suggestion. Decisions are stored, never derived:
they are inputs of the pipeline, so the owner's reprocess (``services.persons.reprocess_owner``,
which the routes and the CLI enqueue) recomputes around them, and every later reprocess, forced
or under another spec, keeps them.

Every id is the owner's: another owner's suggestion, face, scene or person is a
``NotFoundError`` exactly like an unknown one. A face id is ``"<scene id>:<track index>"`` (the
track's row in the scene's face record, as listed in a suggestion or a person search hit).
"""

from __future__ import annotations

import base64
import builtins
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scenedex.domain.errors import InvalidRequestError, NotFoundError
from scenedex.domain.face_clusters import SuggestedPerson, UnmatchedFace, face_at
from scenedex.domain.face_decisions import DecisionKind, FaceDecision, descriptor_hash
from scenedex.domain.model import Person, faces_from_record, new_id
from scenedex.domain.ports import UnitOfWork, UnitOfWorkFactory
from scenedex.domain.spec import EmbeddingStepType
from scenedex.services.persons import clean_person_name

MAX_PAGE = 100
"""Most suggestions in one page."""


@dataclass(frozen=True)
class FaceView:
    """One face of a suggestion: where it is (scene, video, seconds from the video start) and
    its box ``(left, top, right, bottom)`` in pixels of its best frame."""

    face_id: str
    scene_id: uuid.UUID
    video_id: uuid.UUID
    first_s: float
    last_s: float
    bbox: tuple[int, int, int, int]

    @classmethod
    def of(cls, face: UnmatchedFace) -> FaceView:
        return cls(face.face_id, face.scene_id, face.video_id, face.first_s, face.last_s, face.bbox)

    def to_dict(self) -> dict[str, Any]:
        return {
            "face_id": self.face_id,
            "scene_id": str(self.scene_id),
            "video_id": str(self.video_id),
            "start_s": self.first_s,
            "end_s": self.last_s,
            "bbox": list(self.bbox),
        }


@dataclass(frozen=True)
class SuggestionView:
    """A suggested person as shown to users: its faces (in face id order), the representative
    face and its JPEG thumbnail (None when its frame could not be read), and ``split``: faces a
    user split off another suggestion."""

    cluster_id: str
    faces: tuple[FaceView, ...]
    representative: FaceView
    thumbnail: bytes | None
    split: bool

    @property
    def size(self) -> int:
        return len(self.faces)

    @property
    def scene_ids(self) -> tuple[uuid.UUID, ...]:
        return tuple(dict.fromkeys(f.scene_id for f in self.faces))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (the API's and ``scenedex faces clusters --json``'s shape); ``thumbnail`` is
        a ``data:image/jpeg;base64,...`` URI or null."""
        return {
            "cluster_id": self.cluster_id,
            "size": self.size,
            "scene_count": len(self.scene_ids),
            "split": self.split,
            "representative": self.representative.to_dict(),
            "thumbnail": thumbnail_uri(self.thumbnail),
            "scene_ids": [str(s) for s in self.scene_ids],
            "faces": [f.to_dict() for f in self.faces],
        }


def thumbnail_uri(jpeg: bytes | None) -> str | None:
    """A JPEG as a ``data:`` URI (None stays None)."""
    return None if jpeg is None else "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()


@dataclass(frozen=True)
class SuggestionPage:
    """One page of an owner's suggestions (largest first), how many there are in all, and the
    clustering they come from: when (None: never clustered), how many unknown faces it looked
    at and how many wait for the next full clustering; ``next_after``: the ``(size,
    cluster_id)`` key to page on from (None: this is the last page)."""

    suggestions: tuple[SuggestionView, ...]
    total: int
    computed_at: datetime | None
    unknown_faces: int
    waiting_faces: int
    next_after: tuple[int, str] | None = None


@dataclass(frozen=True)
class Decided:
    """What a decision call stored: the decision ``kind``, the person (``person_id``/
    ``person_name``; None for a split), whether the person was created by the call, the
    decision group and the faces it covers (already decided ones are not stored twice)."""

    kind: DecisionKind
    group_id: uuid.UUID
    face_ids: tuple[str, ...]
    person_id: uuid.UUID | None = None
    person_name: str | None = None
    person_created: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.kind.value,
            "group_id": str(self.group_id),
            "face_ids": list(self.face_ids),
            "person_id": str(self.person_id) if self.person_id else None,
            "person_name": self.person_name,
            "person_created": self.person_created,
        }


def parse_face_id(face_id: str) -> tuple[uuid.UUID, int]:
    """``(scene id, track index)`` of a face id; raises ``InvalidRequestError`` for another shape."""
    scene, _, index = face_id.partition(":")
    try:
        parsed = uuid.UUID(scene), int(index)
    except ValueError:
        raise InvalidRequestError(
            f"not a face id: {face_id!r} (expected '<scene id>:<track index>')"
        ) from None
    if parsed[1] < 0:
        raise InvalidRequestError(f"not a face id: {face_id!r} (negative track index)")
    return parsed


class FaceClusters:
    """The suggested-person use cases on a unit-of-work factory."""

    def __init__(self, *, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    def list(
        self, owner_id: uuid.UUID, *, limit: int = 20, offset: int = 0, after: tuple[int, str] | None = None
    ) -> SuggestionPage:
        """The owner's suggestions, largest first (ties: cluster id), ``limit`` (at most
        ``MAX_PAGE``) from ``offset`` (the CLI and console), or after the ``(size, cluster_id)``
        key ``after`` (the API's cursor). Faces whose scene was deleted since the last
        clustering are left out. Raises ``InvalidRequestError`` for a bad ``limit``/``offset``."""
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise InvalidRequestError(f"limit must be 1..{MAX_PAGE} and offset >= 0")
        with self._uow_factory() as uow:
            # One more than asked: whether there is a next page, and its key.
            suggestions, total = uow.face_clusters.page(owner_id, limit + 1, offset, after)
            state = uow.face_clusters.state(owner_id)
            views = self._views(uow, owner_id, suggestions[:limit])
        last = suggestions[limit - 1] if len(suggestions) > limit else None
        return SuggestionPage(
            tuple(views),
            total,
            state.computed_at if state else None,
            state.faces if state else 0,
            len(state.waiting) if state else 0,
            (last.size, last.cluster_id) if last is not None else None,
        )

    def get(self, owner_id: uuid.UUID, cluster_id: str) -> SuggestionView:
        """One suggestion of the owner; raises ``NotFoundError``."""
        with self._uow_factory() as uow:
            return self._view(uow, owner_id, self._suggestion(uow, owner_id, cluster_id))

    def confirm(
        self,
        owner_id: uuid.UUID,
        cluster_id: str,
        *,
        person_id: uuid.UUID | None = None,
        name: str | None = None,
    ) -> Decided:
        """The suggestion's faces are person ``person_id`` (an existing person of the owner), or
        a new person called ``name``: one ``confirm`` decision per face (faces already confirmed
        for that person are skipped). The suggestion is removed from the list at once (the
        user's decision); its faces match the person from the owner's next reprocess on.
        Raises ``InvalidRequestError`` (neither or both of ``person_id``/``name``, a blank or
        long name) and ``NotFoundError`` (suggestion or person)."""
        if (person_id is None) == (name is None):
            raise InvalidRequestError(
                "give exactly one of person_id (an existing person) or name (a new one)"
            )
        with self._uow_factory() as uow:
            suggestion = self._suggestion(uow, owner_id, cluster_id)
            created = False
            if person_id is not None:
                person = uow.persons.get(owner_id, person_id)
                if person is None:
                    raise NotFoundError(f"person {person_id} not found")
            else:
                assert name is not None
                person = Person(id=new_id(), owner_id=owner_id, name=clean_person_name(name))
                uow.persons.add(person)
                created = True
            members = self._existing(uow, owner_id, suggestion.members)
            done = {
                (d.scene_id, d.descriptor_hash)
                for d in uow.face_decisions.list(owner_id)
                if d.kind is DecisionKind.CONFIRM and d.person_id == person.id
            }
            todo = [m for m in members if (m.scene_id, descriptor_hash(m.descriptor)) not in done]
            group = new_id()
            uow.face_decisions.add_many(
                [self._decision(owner_id, DecisionKind.CONFIRM, m, person.id, group) for m in todo]
            )
            uow.face_clusters.delete(owner_id, cluster_id)
            uow.commit()
        return Decided(
            DecisionKind.CONFIRM, group, tuple(m.face_id for m in todo), person.id, person.name, created
        )

    def reject(self, owner_id: uuid.UUID, face_id: str, person_id: uuid.UUID) -> Decided:
        """This face (of a scene's current face record) is not person ``person_id``: in its
        scene, the same face never matches that person again (it may match another). Rejecting
        it twice stores one decision. Raises ``InvalidRequestError`` (face id shape) and
        ``NotFoundError`` (scene, face or person)."""
        scene_id, index = parse_face_id(face_id)
        with self._uow_factory() as uow:
            if uow.persons.get(owner_id, person_id) is None:
                raise NotFoundError(f"person {person_id} not found")
            face = self._face(uow, owner_id, scene_id, index, face_id)
            group = new_id()
            already = any(
                d.kind is DecisionKind.REJECT
                and d.person_id == person_id
                and d.scene_id == scene_id
                and d.descriptor_hash == descriptor_hash(face.descriptor)
                for d in uow.face_decisions.list(owner_id)
            )
            if not already:
                uow.face_decisions.add_many(
                    [self._decision(owner_id, DecisionKind.REJECT, face, person_id, group)]
                )
                uow.commit()
        return Decided(DecisionKind.REJECT, group, () if already else (face_id,), person_id)

    def split(self, owner_id: uuid.UUID, cluster_id: str, face_ids: Sequence[str]) -> Decided:
        """Take ``face_ids`` out of the suggestion: they are suggested apart, as one group, from
        the owner's next clustering on. Raises ``InvalidRequestError`` (no faces, all of them,
        or faces not in the suggestion) and ``NotFoundError`` (suggestion)."""
        wanted = list(dict.fromkeys(face_ids))
        if not wanted:
            raise InvalidRequestError("give the face ids to split off")
        with self._uow_factory() as uow:
            suggestion = self._suggestion(uow, owner_id, cluster_id)
            members = {m.face_id: m for m in suggestion.members}
            unknown = [f for f in wanted if f not in members]
            if unknown:
                raise InvalidRequestError(f"not faces of suggestion {cluster_id}: {', '.join(unknown)}")
            if len(wanted) == len(members):
                raise InvalidRequestError("a split leaves at least one face in the suggestion")
            group = new_id()
            uow.face_decisions.add_many(
                [self._decision(owner_id, DecisionKind.SPLIT, members[f], None, group) for f in wanted]
            )
            uow.commit()
        return Decided(DecisionKind.SPLIT, group, tuple(wanted))

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _suggestion(uow: UnitOfWork, owner_id: uuid.UUID, cluster_id: str) -> SuggestedPerson:
        suggestion = uow.face_clusters.get(owner_id, cluster_id)
        if suggestion is None:
            raise NotFoundError(f"suggested person {cluster_id} not found")
        return suggestion

    @staticmethod
    def _existing(
        uow: UnitOfWork, owner_id: uuid.UUID, faces: Sequence[UnmatchedFace]
    ) -> builtins.list[UnmatchedFace]:
        scenes = uow.scenes.existing(owner_id, {f.scene_id for f in faces})
        return [f for f in faces if f.scene_id in scenes]

    def _views(
        self, uow: UnitOfWork, owner_id: uuid.UUID, suggestions: Sequence[SuggestedPerson]
    ) -> builtins.list[SuggestionView]:
        scenes = uow.scenes.existing(owner_id, {m.scene_id for s in suggestions for m in s.members})
        views = []
        for suggestion in suggestions:
            faces = tuple(FaceView.of(m) for m in suggestion.members if m.scene_id in scenes)
            if faces:
                rep = next((f for f in faces if f.face_id == suggestion.cluster.representative), faces[0])
                views.append(
                    SuggestionView(suggestion.cluster_id, faces, rep, suggestion.thumbnail, suggestion.split)
                )
        return views

    def _view(self, uow: UnitOfWork, owner_id: uuid.UUID, suggestion: SuggestedPerson) -> SuggestionView:
        views = self._views(uow, owner_id, [suggestion])
        if not views:  # every scene of it deleted
            raise NotFoundError(f"suggested person {suggestion.cluster_id} not found")
        return views[0]

    @staticmethod
    def _face(
        uow: UnitOfWork, owner_id: uuid.UUID, scene_id: uuid.UUID, index: int, face_id: str
    ) -> UnmatchedFace:
        """The face at ``index`` of the scene's current face record (matched or not)."""
        scene = uow.scenes.get(owner_id, scene_id)
        record = uow.records.get(EmbeddingStepType.SCENE_PERSON_EMBEDDINGS, owner_id, [scene_id]).get(
            (scene_id, "")
        )
        if scene is None or record is None or index >= len(faces_from_record(record)):
            raise NotFoundError(f"face {face_id} not found")
        return face_at(record, index, scene.video_id)

    @staticmethod
    def _decision(
        owner_id: uuid.UUID,
        kind: DecisionKind,
        face: UnmatchedFace,
        person_id: uuid.UUID | None,
        group: uuid.UUID,
    ) -> FaceDecision:
        return FaceDecision(
            id=new_id(),
            owner_id=owner_id,
            kind=kind,
            scene_id=face.scene_id,
            person_id=person_id,
            group_id=group,
            descriptor=face.descriptor,
            first_s=face.first_s,
            last_s=face.last_s,
            bbox=face.bbox,
        )
