"""Managing persons: the use cases that the API routes (``api/routes/persons.py``) and the CLI
(``scenedex person``) share.

``Persons`` creates, lists, shows, renames and deletes an owner's persons and their reference
photos. Uploaded photos are checked before anything is stored: at most ``max_image_bytes``
each (``PhotoTooLargeError``), decodable through the guards of ``adapters.images`` (size,
pixel count, decompression bombs: ``NotAnImageError``, or ``PhotoTooLargeError`` for too many
pixels). Blobs are written before rows and removed after them, so a crash leaves at most an
unreferenced blob, never a row pointing at nothing. Every id is the owner's: another owner's
person or photo is a ``NotFoundError`` exactly like an unknown one.

A change of the person set (a person or photo added or removed) makes the owner's person steps
and scene face matching stale; ``reprocess_owner`` enqueues the owner-scope job that brings
them up to date (the scene faces are matched again from their stored descriptors, see
``SceneFacesStep``). A rename changes no embedding and enqueues nothing.
"""

from __future__ import annotations

import hashlib
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any

from scenedex.domain.coordinator import JobCoordinator
from scenedex.domain.errors import (
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    TransientError,
    UnsupportedMediaTypeError,
)
from scenedex.domain.events import EventType, person_event
from scenedex.domain.jobs import ActiveJobError, JobStatus, JobTrigger
from scenedex.domain.model import Person, PersonPhoto, new_id
from scenedex.domain.ports import BlobStore, UnitOfWork, UnitOfWorkFactory
from scenedex.domain.reprocess import ReprocessRunner
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.services.enqueue import enqueue_reprocess
from scenedex.services.ingest import person_photo_key
from scenedex.services.search import check_image

MAX_NAME_LENGTH = 200
"""Longest person name (characters), after stripping surrounding whitespace."""
BIDI_CONTROLS = frozenset(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]))
"""The bidi embedding, override (U+202A-U+202E) and isolate (U+2066-U+2069) characters: they
reorder the text shown after them (``evil<U+202E>gnp.exe`` shows as ``evilexe.png``); the marks
U+200E/U+200F, which reorder nothing around them, are allowed."""
_REFUSED = r"\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
NAME_PATTERN = rf"^[^{_REFUSED}]*[^\s{_REFUSED}][^{_REFUSED}]*$"
"""A person name in the API's schema: something other than whitespace, no control characters
and no ``BIDI_CONTROLS`` (``clean_person_name`` refuses the same; a NUL cannot be stored in a
Postgres text column)."""

_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


def clean_person_name(name: str) -> str:
    """``name`` without surrounding whitespace; raises ``InvalidRequestError`` when it is blank,
    longer than ``MAX_NAME_LENGTH``, holds control characters (a NUL cannot be stored in a
    Postgres text column) or ``BIDI_CONTROLS``."""
    clean = name.strip()
    if not clean:
        raise InvalidRequestError("a person needs a non-empty name")
    if len(clean) > MAX_NAME_LENGTH:
        raise InvalidRequestError(f"a person's name has at most {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(c) == "Cc" for c in clean):
        raise InvalidRequestError("a person's name cannot hold control characters")
    if any(c in BIDI_CONTROLS for c in clean):
        raise InvalidRequestError("a person's name cannot hold bidi override or isolate characters")
    return clean


class PhotoTooLargeError(PayloadTooLargeError):
    """A photo over the image size or pixel limit (HTTP 413)."""


class NotAnImageError(UnsupportedMediaTypeError):
    """A photo that is empty, corrupt or not an image format (HTTP 415)."""


class TooManyPhotosError(InvalidRequestError):
    """Photos beyond ``max_photos_per_person`` for one person (HTTP 422, CLI exit 2)."""


class OwnerBusyError(TransientError):
    """The owner's reprocess job is still running (``refresh_owner`` tries again later)."""


@dataclass(frozen=True)
class PhotoUpload:
    """A photo as received: its file name (for the blob's suffix only) and its bytes."""

    filename: str | None
    data: bytes

    @classmethod
    def from_file(cls, path: str | Path) -> PhotoUpload:
        """A photo read from a local file (the CLI, the demo, the bench). Raises
        ``InvalidRequestError`` when there is no such file; the bytes are checked by
        ``Persons.create``/``add_photos`` like an upload's."""
        file = Path(path)
        if not file.is_file():
            raise InvalidRequestError(f"photo file not found: {path}")
        return cls(file.name, file.read_bytes())


@dataclass(frozen=True)
class PersonView:
    """A person with its reference photos (oldest first)."""

    person: Person
    photos: tuple[PersonPhoto, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: ``{"person_id", "name", "created_at", "searchable", "photos": [{"photo_id",
        "status", "error", "created_at"}]}`` (the API's and ``scenedex person --json``'s shape);
        ``searchable``: the owner's scenes were matched again after its last change."""
        return {
            "person_id": str(self.person.id),
            "name": self.person.name,
            "created_at": self.person.created_at.isoformat(),
            "searchable": self.person.searchable,
            "photos": [
                {
                    "photo_id": str(p.id),
                    "status": p.status.value,
                    "error": p.error,
                    "created_at": p.created_at.isoformat(),
                }
                for p in self.photos
            ],
        }


@dataclass(frozen=True)
class PersonPage:
    """One page of an owner's persons (``Persons.list``: oldest first; ``Persons.page``: newest
    first) and how many there are in all (passing ``page``'s filter)."""

    persons: tuple[PersonView, ...]
    total: int


class Persons:
    """The person use cases on a unit-of-work factory and a blob store.

    ``max_image_bytes``/``max_image_pixels``: the limits every photo is decoded under (the
    settings' ``max_image_bytes``/``max_image_pixels``, as the face model's); ``max_photos``:
    most photos in one call; ``max_photos_per_person``: most photos a person may have in all
    (``SCENEDEX_API__MAX_PHOTOS_PER_PERSON``).

    Adding photos and deleting the person both lock the person's row (``PersonRepository.lock``)
    for their transaction: a delete waits for photos being added and then removes their blobs
    too, and photos added after a delete find no person and remove their own blobs.
    """

    def __init__(
        self,
        *,
        uow_factory: UnitOfWorkFactory,
        blobs: BlobStore,
        max_image_bytes: int,
        max_image_pixels: int,
        max_photos: int = 10,
        max_photos_per_person: int = 32,
    ) -> None:
        self._uow_factory = uow_factory
        self._blobs = blobs
        self.max_image_bytes = max_image_bytes
        self.max_image_pixels = max_image_pixels
        self.max_photos = max_photos
        self.max_photos_per_person = max_photos_per_person

    def create(self, owner_id: uuid.UUID, name: str, photos: Sequence[PhotoUpload]) -> PersonView:
        """A new person of ``owner_id`` with ``photos`` (at least one). Raises
        ``InvalidRequestError`` (blank or long name, no or too many photos: ``TooManyPhotosError``
        over ``max_photos_per_person``), ``PhotoTooLargeError`` and ``NotAnImageError``; nothing
        is stored then."""
        person = Person(id=new_id(), owner_id=owner_id, name=self._name(name))
        self._check_room(person.id, 0, len(photos))
        self._check(photos)
        stored = self._store(person, photos)
        with self._uow_factory() as uow:
            uow.persons.add(person)
            for photo in stored:
                uow.persons.add_photo(photo)
            uow.commit()
        return PersonView(person, stored)

    def add_photos(
        self, owner_id: uuid.UUID, person_id: uuid.UUID, photos: Sequence[PhotoUpload]
    ) -> PersonView:
        """Add ``photos`` to the owner's person; returns the person with all its photos.
        Raises ``NotFoundError`` (also when the person is deleted meanwhile: the blobs just
        written are removed), ``TooManyPhotosError`` when the person would have more than
        ``max_photos_per_person`` photos, and the errors of ``create``."""
        view = self.get(owner_id, person_id)
        self._check_room(person_id, len(view.photos), len(photos))
        self._check(photos)
        stored = self._store(view.person, photos)
        with self._uow_factory() as uow:
            refusal: Exception | None = None
            if uow.persons.lock(owner_id, person_id) is None:  # deleted meanwhile
                refusal = self._not_found(person_id)
            else:  # counted again under the lock: a concurrent upload may have added some
                has = len(self._get(uow, owner_id, person_id).photos)
                try:
                    self._check_room(person_id, has, len(photos))
                except TooManyPhotosError as error:
                    refusal = error
            if refusal is not None:
                self._remove_blobs(stored)
                raise refusal
            for photo in stored:
                uow.persons.add_photo(photo)
            uow.commit()
        return self.get(owner_id, person_id)

    def delete_photo(self, owner_id: uuid.UUID, person_id: uuid.UUID, photo_id: uuid.UUID) -> None:
        """Remove one photo of the owner's person (row, derived record, blob). A person may be
        left without photos: it then has no query embedding and matches no face. Raises
        ``NotFoundError``."""
        photo = next((p for p in self.get(owner_id, person_id).photos if p.id == photo_id), None)
        with self._uow_factory() as uow:
            if photo is None or not uow.persons.delete_photo(owner_id, person_id, photo_id):
                raise NotFoundError(f"photo {photo_id} of person {person_id} not found")
            uow.commit()
        self._remove_blobs([photo])

    def list(self, owner_id: uuid.UUID, *, limit: int = 50, offset: int = 0) -> PersonPage:
        """The owner's persons, oldest first, ``offset`` to ``offset + limit`` (persons are few
        per owner: one query for them and one for their photos)."""
        if limit < 1 or offset < 0:
            raise InvalidRequestError("limit must be >= 1 and offset >= 0")
        with self._uow_factory() as uow:
            persons = uow.persons.list(owner_id)
            photos = uow.persons.list_photos(owner_id)
        page = persons[offset : offset + limit]
        return PersonPage(tuple(self._view(p, photos) for p in page), len(persons))

    def page(
        self,
        owner_id: uuid.UUID,
        *,
        limit: int = 50,
        before: tuple[datetime, uuid.UUID] | None = None,
        updated_since: datetime | None = None,
    ) -> PersonPage:
        """The owner's persons newest first (the API's cursor): up to ``limit`` below the
        ``(created_at, id)`` key ``before`` (None: from the newest), only those whose resource
        changed at or after ``updated_since`` (``Person.updated_at``) when given; ``total``
        counts every person passing that filter. Raises ``InvalidRequestError`` for a bad
        ``limit``."""
        if limit < 1:
            raise InvalidRequestError("limit must be >= 1")
        with self._uow_factory() as uow:
            persons, total = uow.persons.page(
                owner_id, limit=limit, before=before, updated_since=updated_since
            )
            photos = uow.persons.list_photos(owner_id, [p.id for p in persons])
        return PersonPage(tuple(self._view(p, photos) for p in persons), total)

    def get(self, owner_id: uuid.UUID, person_id: uuid.UUID) -> PersonView:
        """The owner's person with its photos (status and error each); raises ``NotFoundError``."""
        with self._uow_factory() as uow:
            return self._get(uow, owner_id, person_id)

    def rename(self, owner_id: uuid.UUID, person_id: uuid.UUID, name: str) -> PersonView:
        """Give the owner's person a new name. Raises ``NotFoundError`` and
        ``InvalidRequestError`` (blank or long name)."""
        clean = self._name(name)
        with self._uow_factory() as uow:
            if not uow.persons.rename(owner_id, person_id, clean):
                raise self._not_found(person_id)
            uow.commit()
        return self.get(owner_id, person_id)

    def delete(self, owner_id: uuid.UUID, person_id: uuid.UUID) -> PersonView:
        """Remove the owner's person: its row, its photos and their derived records (one
        transaction, the database cascades), then its photo blobs. Returns what was removed.
        The scene faces that matched it are matched again by the owner's next reprocess
        (``reprocess_owner``). Raises ``NotFoundError``."""
        with self._uow_factory() as uow:
            if uow.persons.lock(owner_id, person_id) is None:  # waits for photos being added
                raise self._not_found(person_id)
            view = self._get(uow, owner_id, person_id)  # read after the lock: those photos too
            if not uow.persons.delete(owner_id, person_id):
                raise self._not_found(person_id)
            uow.events.add(person_event(EventType.PERSON_DELETED, view.person))
            uow.commit()
        self._remove_blobs(view.photos)
        return view

    # -- helpers ---------------------------------------------------------------------------

    def _get(self, uow: UnitOfWork, owner_id: uuid.UUID, person_id: uuid.UUID) -> PersonView:
        person = uow.persons.get(owner_id, person_id)
        if person is None:
            raise self._not_found(person_id)
        return self._view(person, uow.persons.list_photos(owner_id))

    @staticmethod
    def _view(person: Person, photos: Sequence[PersonPhoto]) -> PersonView:
        mine = sorted(
            (p for p in photos if p.person_id == person.id), key=lambda p: (p.created_at, str(p.id))
        )
        return PersonView(person, tuple(mine))

    @staticmethod
    def _not_found(person_id: uuid.UUID) -> NotFoundError:
        return NotFoundError(f"person {person_id} not found")

    @staticmethod
    def _name(name: str) -> str:
        return clean_person_name(name)

    def _check_room(self, person_id: uuid.UUID, has: int, adding: int) -> None:
        """Raise ``TooManyPhotosError`` when a person with ``has`` photos cannot take ``adding``
        more."""
        if has + adding > self.max_photos_per_person:
            limit = f"{self.max_photos_per_person} (SCENEDEX_API__MAX_PHOTOS_PER_PERSON)"
            raise TooManyPhotosError(
                f"person {person_id} has {has} photos; {adding} more would exceed {limit}"
                if has
                else f"a person has at most {limit} photos, got {adding}"
            )

    def _check(self, photos: Sequence[PhotoUpload]) -> None:
        """Every photo within the limits and decodable; raises on the first that is not."""
        if not photos:
            raise InvalidRequestError("a person needs at least one photo")
        if len(photos) > self.max_photos:
            raise InvalidRequestError(f"at most {self.max_photos} photos at once, got {len(photos)}")
        for number, photo in enumerate(photos, 1):
            label = f"photo {number} ({photo.filename})" if photo.filename else f"photo {number}"
            try:
                check_image(
                    photo.data,
                    max_bytes=self.max_image_bytes,
                    max_pixels=self.max_image_pixels,
                    label=label,
                    draft_size=None,
                )
            except PayloadTooLargeError as error:
                raise PhotoTooLargeError(str(error)) from None
            except UnsupportedMediaTypeError as error:
                raise NotAnImageError(str(error)) from None

    def _store(self, person: Person, photos: Sequence[PhotoUpload]) -> tuple[PersonPhoto, ...]:
        stored = []
        for photo in photos:
            photo_id = new_id()
            suffix = PurePath(photo.filename or "").suffix.lower()
            suffix = suffix if suffix in _SUFFIXES else ""
            key = person_photo_key(person.owner_id, person.id, photo_id, suffix)
            stored.append(
                PersonPhoto(
                    id=photo_id,
                    person_id=person.id,
                    owner_id=person.owner_id,
                    image_uri=self._blobs.write(key, photo.data),
                    image_sha256=hashlib.sha256(photo.data).hexdigest(),
                )
            )
        return tuple(stored)

    def _remove_blobs(self, photos: Sequence[PersonPhoto]) -> None:
        for photo in photos:
            self._blobs.delete(photo.image_uri)


# -- the reprocess a person change needs ------------------------------------------------------

FollowUp = Callable[[uuid.UUID], str]
"""Sends a delayed ``refresh_owner(owner_id)`` message (it enqueues the owner's reprocess once
the owner's active job is over); returns its message id."""


@dataclass(frozen=True)
class Reprocessing:
    """The job that picks a person change up.

    ``created``: a new owner-scope job; otherwise ``job_id`` is the owner's active job. A
    queued job has not run its person steps yet, so it covers the change; a running one may
    have, so ``follow_up_message_id`` names the delayed message that enqueues the owner's
    reprocess again once that job is over.
    """

    job_id: uuid.UUID
    created: bool
    follow_up_message_id: str | None = None


def reprocess_owner(
    owner_id: uuid.UUID,
    *,
    runner: ReprocessRunner,
    coordinator: JobCoordinator,
    trigger: JobTrigger,
    follow_up: FollowUp,
) -> Reprocessing | None:
    """Enqueue the owner-scope reprocess (person steps, then the owner's scenes: faces matched
    again, search documents) with the enqueue use case. When the owner has an active job:
    that job, with a follow-up sent unless it is still queued (see ``Reprocessing``). None
    when the owner has nothing left to reprocess (no videos, no persons). Raises the broker's
    or database's errors when they are unreachable (the change itself is kept: the sweeper's
    periodic jobs or ``scenedex reprocess`` pick it up)."""
    request = ReprocessRequest(ReprocessScope.OWNER, owner_id=owner_id)
    try:
        return Reprocessing(
            enqueue_reprocess(request, runner=runner, coordinator=coordinator, trigger=trigger).job.id, True
        )
    except NotFoundError:
        return None
    except ActiveJobError as active:
        job = coordinator.store.get(active.active_job_id)
        if job is not None and job.status is JobStatus.QUEUED:
            return Reprocessing(job.id, False)
        return Reprocessing(active.active_job_id, False, follow_up(owner_id))
