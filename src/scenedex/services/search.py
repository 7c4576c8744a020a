"""Owner-scoped scene search: builds query vectors with the configured embedders and asks the
SearchIndex port (table-backed exact kNN, or OpenSearch hybrid search) for the nearest scenes;
then describes the hits for a results page (``describe_hits``: the video's ``external_id``,
the persons' names, the keyframe URL) and serves a scene's keyframe (``owned_scene``,
``keyframe_bytes``). The API and the CLI share these use cases."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scenedex.adapters.images import decode_image
from scenedex.domain.blobs import owner_key
from scenedex.domain.errors import (
    BadInputError,
    BlobTooLargeError,
    InvalidRequestError,
    KindUnavailableError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from scenedex.domain.model import Scene, SearchHit, SearchQuery
from scenedex.domain.ports import BlobStore, ImageEmbedder, SearchIndex, TextEmbedder, UnitOfWorkFactory
from scenedex.domain.spec import EmbeddingStepType

MAX_K = 1000

KEYFRAME_PATH = "/v1/scenes/{scene_id}/keyframe"
"""Where the API serves a scene's keyframe (``SceneResult.keyframe_url``)."""

_MEDIA_TYPES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True)
class PersonRef:
    """A person recognised in a scene, by id and current name."""

    person_id: uuid.UUID
    name: str


@dataclass(frozen=True)
class SceneResult:
    """One ranked scene as a results page shows it: the hit (``score``: cosine in [-1, 1],
    higher is nearer), its video's ``external_id`` (the caller's own id, None when not given),
    the persons recognised in it and where its keyframe is served. ``appearances``: for a
    person search, the time ranges ``(start_s, end_s)`` (seconds from the video start,
    ascending) in which that person is on screen in the scene; empty for other searches.
    ``channel``: for a text search, the text channel that matched best (``transcript``,
    ``visual``, ``summary`` or ``ocr``); ``ocr_snippet``: the start of the words read on the
    keyframe (the ``scene_ocr`` step), None when there are none."""

    scene_id: uuid.UUID
    video_id: uuid.UUID
    external_id: str | None
    start_s: float
    end_s: float
    score: float
    persons: tuple[PersonRef, ...]
    appearances: tuple[tuple[float, float], ...] = ()
    channel: str | None = None
    ocr_snippet: str | None = None

    @property
    def keyframe_url(self) -> str:
        """The API path serving this scene's keyframe (``KEYFRAME_PATH``)."""
        return KEYFRAME_PATH.format(scene_id=self.scene_id)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the API's and ``scenedex search --json``'s results."""
        return {
            "scene_id": str(self.scene_id),
            "video_id": str(self.video_id),
            "external_id": self.external_id,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "score": round(self.score, 6),
            "persons": [{"person_id": str(p.person_id), "name": p.name} for p in self.persons],
            "keyframe_url": self.keyframe_url,
            "appearances": [{"start_s": start, "end_s": end} for start, end in self.appearances],
            "channel": self.channel,
            "ocr_snippet": self.ocr_snippet,
        }


def format_ranges(ranges: Sequence[tuple[float, float]]) -> str:
    """Time ranges in seconds as ``m:ss-m:ss``, comma-separated (``0:04-0:07, 0:12-0:15``); a
    range within one second as one time (``0:04``); ``""`` for none."""

    def clock(seconds: float) -> str:
        whole = int(seconds)
        return f"{whole // 60}:{whole % 60:02d}"

    return ", ".join(
        clock(start) if clock(start) == clock(end) else f"{clock(start)}-{clock(end)}"
        for start, end in ranges
    )


def is_untrained(image_embedder: ImageEmbedder) -> bool:
    """True when CLIP runs on random weights (its text tower then means nothing)."""
    return ":untrained" in image_embedder.model_id


def search_scenes(
    *,
    uow_factory: UnitOfWorkFactory,
    index: SearchIndex,
    text_embedder: TextEmbedder,
    image_embedder: ImageEmbedder,
    owner_id: uuid.UUID,
    text: str | None = None,
    image: bytes | None = None,
    person_id: uuid.UUID | None = None,
    k: int = 10,
    off: frozenset[str] = frozenset(),
) -> list[SearchHit]:
    """The owner's ``k`` best scenes for exactly one of ``text``, ``image`` (encoded bytes) or
    ``person_id``. Text queries use the text model over the text channels, plus CLIP's text
    tower over the image embeddings when real CLIP weights are configured. A person search
    returns the scenes where the person is matched (the search document's ``person_ids``),
    ranked by face similarity to the person's query embedding; its hits carry the person's time
    ranges in each scene (``SearchHit.appearances``).

    With ``"clip"`` in ``off`` (``SCENEDEX_EMBEDDER__CLIP=off``) text queries use the text
    channels only and an image query raises ``KindUnavailableError``; with ``"text"``
    (``__TEXT=off``) text queries use CLIP's text tower alone, and raise ``KindUnavailableError``
    when CLIP is off or untrained too; with ``"faces"`` (``__FACES=off``) a person query raises
    ``KindUnavailableError``.

    Raises ``InvalidRequestError`` (no or several queries, bad k, unreadable image, person
    without a query embedding) and ``NotFoundError`` (person not the owner's).
    """
    given = [q for q in (text, image, person_id) if q is not None]
    if len(given) != 1:
        raise InvalidRequestError("give exactly one of: text, image, person id")
    if not 1 <= k <= MAX_K:
        raise InvalidRequestError(f"k must be between 1 and {MAX_K}, got {k}")
    if text is not None:
        if not text.strip():
            raise InvalidRequestError("the text query is empty")
        tower = "clip" not in off and not is_untrained(image_embedder)
        clip_text = image_embedder.encode_text([text])[0] if tower else None
        if "text" in off and clip_text is None:
            raise KindUnavailableError("text", "SCENEDEX_EMBEDDER__TEXT")
        text_vector = None if "text" in off else text_embedder.embed_texts([text])[0]
        query = SearchQuery(text_vector=text_vector, clip_text_vector=clip_text, text=text)
    elif image is not None:
        if "clip" in off:
            raise KindUnavailableError("image", "SCENEDEX_EMBEDDER__CLIP")
        (vector,) = image_embedder.embed_images([image])
        if isinstance(vector, BadInputError):
            raise InvalidRequestError(f"query image: {vector}")
        query = SearchQuery(image_vector=vector)
    else:
        assert person_id is not None
        if "faces" in off:
            raise KindUnavailableError("person", "SCENEDEX_EMBEDDER__FACES")
        query = SearchQuery(face_vector=_person_vector(uow_factory, owner_id, person_id), person_id=person_id)
    return index.search(owner_id, query, k)


def _person_vector(uow_factory: UnitOfWorkFactory, owner_id: uuid.UUID, person_id: uuid.UUID) -> np.ndarray:
    with uow_factory() as uow:
        if uow.persons.get(owner_id, person_id) is None:
            raise NotFoundError(f"person {person_id} not found for owner {owner_id}")
        records = uow.records.get(EmbeddingStepType.PERSON_QUERY_EMBEDDINGS, owner_id, [person_id])
    record = records.get((person_id, ""))
    if record is None or record.vector is None:
        raise InvalidRequestError(
            f"person {person_id} has no query embedding: run a reprocess, and check that "
            "the person's photos show a face"
        )
    return record.vector


def describe_hits(
    uow_factory: UnitOfWorkFactory, owner_id: uuid.UUID, hits: Sequence[SearchHit]
) -> list[SceneResult]:
    """``hits`` with their videos' ``external_id`` (one owner-scoped query for the hits' video
    ids) and their persons' names (the owner's persons, read only when a hit shows one). A hit
    whose video or person is gone from the database (deleted; its search document not yet
    removed) is left out, or loses that person: a deletion disappears from results at once."""
    if not hits:
        return []
    with uow_factory() as uow:
        external_ids = uow.videos.external_ids(owner_id, {hit.video_id for hit in hits})
        names = {p.id: p.name for p in uow.persons.list(owner_id)} if any(h.person_ids for h in hits) else {}
    return [
        SceneResult(
            scene_id=hit.scene_id,
            video_id=hit.video_id,
            external_id=external_ids[hit.video_id],
            start_s=hit.start_s,
            end_s=hit.end_s,
            score=hit.score,
            persons=tuple(PersonRef(p, names[p]) for p in hit.person_ids if p in names),
            appearances=hit.appearances,
            channel=hit.channel,
            ocr_snippet=hit.ocr_snippet,
        )
        for hit in hits
        if hit.video_id in external_ids
    ]


def check_image(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    label: str = "image",
    draft_size: tuple[int, int] | None = (224, 224),
) -> bytes:
    """``data`` if it is an image within the limits (size, then pixels read from the header:
    the decompression-bomb guard of ``adapters.images``, decoded at ``draft_size``); query
    images and person photo uploads are checked here. Raises ``PayloadTooLargeError`` (over
    ``max_bytes`` or ``max_pixels``, a bomb) and ``UnsupportedMediaTypeError`` (empty, corrupt,
    not an image), their messages starting with ``label``."""
    if len(data) > max_bytes:
        raise PayloadTooLargeError(f"{label}: {len(data)} bytes, larger than the limit of {max_bytes} bytes")
    try:
        decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels, draft_size=draft_size)
    except BadInputError as error:
        too_large = str(error).startswith(("image too large", "image rejected as a decompression bomb"))
        kind = PayloadTooLargeError if too_large else UnsupportedMediaTypeError
        raise kind(f"{label}: {error}") from None
    return data


def owner_blob(blobs: BlobStore, owner_id: uuid.UUID, uri: str, max_bytes: int) -> bytes:
    """The bytes of ``uri`` if it names a blob under the owner's prefix of the store
    (``owners/{owner_id}/...``: its keyframes, photos and uploads; ``domain.blobs.owner_key``).
    Raises ``NotFoundError`` for anything else (another owner's blob, outside the store, not
    canonical, a symlink, nothing there), without saying which; ``PayloadTooLargeError`` for
    the owner's own blob over ``max_bytes`` (bytes, from its size before reading)."""
    if owner_key(blobs.root_uri, owner_id, uri) is None:
        raise NotFoundError(f"no image at {uri} for this owner")
    try:
        return blobs.read(uri, max_bytes)
    except BlobTooLargeError as error:
        raise PayloadTooLargeError(str(error)) from None
    except BadInputError:
        raise NotFoundError(f"no image at {uri} for this owner") from None


def owned_scene(uow_factory: UnitOfWorkFactory, owner_id: uuid.UUID, scene_id: uuid.UUID) -> Scene:
    """The owner's scene; ``NotFoundError`` for an unknown id or another owner's scene."""
    with uow_factory() as uow:
        scene = uow.scenes.get(owner_id, scene_id)
    if scene is None:
        raise NotFoundError(f"scene {scene_id} not found")
    return scene


def keyframe_bytes(blobs: BlobStore, scene: Scene, max_bytes: int) -> tuple[bytes, str]:
    """The scene's keyframe and its media type, read from its magic bytes (keyframes are JPEG;
    upstream ones may be PNG, GIF or WebP). ``NotFoundError`` when its blob is missing,
    unreadable, over ``max_bytes`` or not one of those images (never served as raw bytes)."""
    try:
        data = blobs.read(scene.keyframe_uri, max_bytes)
    except BadInputError:
        raise NotFoundError(f"scene {scene.id} has no keyframe") from None
    media_type = next((kind for magic, kind in _MEDIA_TYPES if data.startswith(magic)), None)
    if media_type is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        media_type = "image/webp"
    if media_type is None:
        raise NotFoundError(f"scene {scene.id} has no keyframe image")
    return data, media_type


class Search:
    """The owner's search use cases: scenes for a text, an image or a person, described for a
    results page; an image query's bytes; a scene and its keyframe (the API's search routes and
    keyframe endpoint, the console's search page, ``scenedex search``)."""

    def __init__(
        self,
        *,
        uow_factory: UnitOfWorkFactory,
        index: SearchIndex,
        text_embedder: TextEmbedder,
        image_embedder: ImageEmbedder,
        blobs: BlobStore,
        max_image_bytes: int,
        max_image_pixels: int,
        off: frozenset[str] = frozenset(),
    ) -> None:
        self._off = off
        self._uow_factory = uow_factory
        self._index = index
        self._text_embedder = text_embedder
        self._image_embedder = image_embedder
        self._blobs = blobs
        self.max_image_bytes = max_image_bytes
        self._max_image_pixels = max_image_pixels

    def scenes(self, owner_id: uuid.UUID, *, k: int = 10, **query: Any) -> list[SceneResult]:
        """``search_scenes`` (query: ``text=``, ``image=`` or ``person_id=``), the hits described
        for a results page (``describe_hits``)."""
        hits = search_scenes(
            uow_factory=self._uow_factory,
            index=self._index,
            text_embedder=self._text_embedder,
            image_embedder=self._image_embedder,
            owner_id=owner_id,
            k=k,
            off=self._off,
            **query,
        )
        return describe_hits(self._uow_factory, owner_id, hits)

    def query_image(self, owner_id: uuid.UUID, *, data: bytes | None = None, uri: str | None = None) -> bytes:
        """An image query's bytes: ``data`` (an upload) or the owner's blob at ``uri``
        (``owner_blob``), held to ``max_image_bytes`` / ``max_image_pixels`` (``check_image``)."""
        if (data is None) == (uri is None):
            raise InvalidRequestError("give exactly one of: an image, a keyframe_uri")
        image = (
            data if data is not None else owner_blob(self._blobs, owner_id, str(uri), self.max_image_bytes)
        )
        return check_image(image, max_bytes=self.max_image_bytes, max_pixels=self._max_image_pixels)

    def scene(self, owner_id: uuid.UUID, scene_id: uuid.UUID) -> Scene:
        """The owner's scene; ``NotFoundError`` for an unknown or another owner's (``owned_scene``)."""
        return owned_scene(self._uow_factory, owner_id, scene_id)

    def keyframe(self, scene: Scene) -> tuple[bytes, str]:
        """The scene's keyframe bytes and media type (``keyframe_bytes``)."""
        return keyframe_bytes(self._blobs, scene, self.max_image_bytes)

    def blob(self, owner_id: uuid.UUID, uri: str) -> bytes:
        """The owner's blob at ``uri`` (a person's photo on the console), at most
        ``max_image_bytes`` (``owner_blob``)."""
        return owner_blob(self._blobs, owner_id, uri, self.max_image_bytes)
