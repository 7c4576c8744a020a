"""The composition root: builds every adapter from settings, once per process.

``build_services(settings)`` builds the adapters (``Services``); ``bootstrap``
(``application.app``) puts the use cases on them and, when the process enqueues or runs jobs, on
the job runtime (``application.runtime``) of the same engine; tests pass fakes through
``overrides``. Nothing here loads a model or opens a connection: embedders load their weights
lazily on first use, engines connect on first query, the broker on its first command. Nothing
here imports the actors: the queue side (broker, sender) is handed in by the entry point
(``tasks.queue``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from scenedex.adapters.db.engine import create_engine
from scenedex.adapters.db.idempotency import SqlIdempotencyStore
from scenedex.adapters.db.repositories import SqlUnitOfWorkFactory
from scenedex.adapters.db.search_index import TableSearchIndex
from scenedex.adapters.storage import FsspecBlobStore
from scenedex.adapters.url_fetch import UrlDownloader, UrlPolicy
from scenedex.application.wiring import _clip, _faces, _ocr, _opensearch, _text, http_embedders
from scenedex.domain.face_clusters import ClusterSettings
from scenedex.domain.ports import (
    BlobStore,
    FaceEmbedder,
    ImageEmbedder,
    OcrReader,
    SearchIndex,
    TextEmbedder,
    UnitOfWorkFactory,
)
from scenedex.domain.reprocess import ReprocessRunner
from scenedex.domain.scene_faces import FaceSampling
from scenedex.domain.spec import OFF, ReprocessSpec, SpecInputs
from scenedex.services.face_clusters import FaceClusters
from scenedex.services.idempotency import Idempotency
from scenedex.services.persons import Persons
from scenedex.services.search import SceneResult, Search
from scenedex.services.videos import URL_HOSTS_SETTING, IngestLimits, SourcePolicy
from scenedex.settings import Settings


@dataclass
class Services:
    """Everything a process needs, built once. Models inside the embedders load lazily."""

    settings: Settings
    engine: sa.Engine
    uow_factory: UnitOfWorkFactory
    blobs: BlobStore
    image_embedder: ImageEmbedder
    text_embedder: TextEmbedder
    face_embedder: FaceEmbedder
    search_index: SearchIndex
    ocr_reader: OcrReader | None = None
    """The OCR reader (None: ``SCENEDEX_OCR__ENABLED=false``, no ``scene_ocr`` in the spec)."""
    _spec: ReprocessSpec | None = field(default=None, repr=False)

    @property
    def spec(self) -> ReprocessSpec:
        """The latest spec for the configured models (model ids read without loading weights)."""
        if self._spec is None:
            off = self.off_roles  # a model switched off is not read: it may not exist
            self._spec = ReprocessSpec.latest(
                SpecInputs(
                    clip_model_id=OFF if "clip" in off else self.image_embedder.model_id,
                    clip_preprocessing=OFF if "clip" in off else self.image_embedder.preprocessing_id,
                    off=off,
                    text_model_id=OFF if "text" in off else self.text_embedder.model_id,
                    face_model_id=OFF if "faces" in off else self.face_embedder.model_id,
                    face_detection=OFF if "faces" in off else self.face_embedder.detection_id,
                    face_match_threshold=self.settings.faces.match_threshold,
                    face_sampling=self.face_sampling.id,
                    face_clusters=self.cluster_settings.id,
                    ocr_model_id=self.ocr_model_id,
                    ocr_min_confidence=self.settings.ocr.min_confidence,
                )
            )
        return self._spec

    @property
    def ocr_model_id(self) -> str:
        """The OCR reader's model id, ``""`` when OCR is off (``SCENEDEX_OCR__ENABLED``)."""
        if not self.settings.ocr.enabled or self.ocr_reader is None:
            return ""
        return self.ocr_reader.model_id

    @property
    def off_roles(self) -> frozenset[str]:
        """The model roles switched off (``SCENEDEX_EMBEDDER__CLIP``, ``__TEXT``, ``__FACES=off``)."""
        embedder = self.settings.embedder
        return frozenset(role for role in ("clip", "text", "faces") if embedder.backend_of(role) == "off")

    def runner(self) -> ReprocessRunner:
        from scenedex.adapters.face_clustering import DbscanFaceClusterer
        from scenedex.adapters.frames import BlobVideoFrames
        from scenedex.adapters.images import face_thumbnail

        return ReprocessRunner(
            uow_factory=self.uow_factory,
            blobs=self.blobs,
            image_embedder=self.image_embedder,
            text_embedder=self.text_embedder,
            face_embedder=self.face_embedder,
            search_index=self.search_index,
            spec=self.spec,
            batch_size=self.settings.reprocess.batch_size,
            video_frames=BlobVideoFrames(self.blobs, max_source_bytes=self.settings.ingest.max_source_bytes),
            face_clusterer=DbscanFaceClusterer(),
            face_thumbnail=face_thumbnail,
            max_image_bytes=self.settings.max_image_bytes,
            ocr_reader=self.ocr_reader,
        )

    @property
    def cluster_settings(self) -> ClusterSettings:
        """How unknown faces are clustered (``SCENEDEX_FACES__CLUSTER_MAX_DISTANCE``,
        ``__CLUSTER_MIN_FACES``)."""
        faces = self.settings.faces
        return ClusterSettings(faces.cluster_max_distance, faces.cluster_min_faces)

    @property
    def face_sampling(self) -> FaceSampling:
        """Which frames of a scene the faces step reads (``SCENEDEX_FACES__SAMPLE_INTERVAL_S``,
        ``__MAX_FRAMES_PER_SCENE``, ``__APPEARANCE_GAP_S``)."""
        faces = self.settings.faces
        return FaceSampling(faces.sample_interval_s, faces.max_frames_per_scene, faces.appearance_gap_s)

    def with_settings(self, settings: Settings, *, keep_face_embedder: bool = True) -> Services:
        """Services on ``settings`` sharing this one's engine, blob store, search index and
        loaded CLIP and text models (and face models unless ``keep_face_embedder`` is False):
        the same library under another spec, e.g. other face settings, without loading twice."""
        shared: dict[str, Any] = {
            "engine": self.engine,
            "blobs": self.blobs,
            "search_index": self.search_index,
            "image_embedder": self.image_embedder,
            "text_embedder": self.text_embedder,
        }
        if settings.ocr.enabled and self.ocr_reader is not None:
            shared["ocr_reader"] = self.ocr_reader
        if keep_face_embedder:
            shared["face_embedder"] = self.face_embedder
        return build_services(settings, **shared)

    def persons(self) -> Persons:
        """The person use cases on these adapters, photos held to the image limits."""
        return Persons(
            uow_factory=self.uow_factory,
            blobs=self.blobs,
            max_image_bytes=self.settings.max_image_bytes,
            max_image_pixels=self.settings.max_image_pixels,
            max_photos=self.settings.api.max_photos,
            max_photos_per_person=self.settings.api.max_photos_per_person,
        )

    def face_clusters(self) -> FaceClusters:
        """The suggested-person use cases (list, confirm, reject, split) on these adapters."""
        return FaceClusters(uow_factory=self.uow_factory)

    def idempotency(self) -> Idempotency:
        """Kept answers of ``Idempotency-Key`` requests, in the database, for
        ``SCENEDEX_API__IDEMPOTENCY_TTL_S`` seconds."""
        return Idempotency(SqlIdempotencyStore(self.engine), self.settings.api.idempotency_ttl_s)

    def video_cutter(self) -> Any:
        """Scene detection and keyframe grabs for ``ingest_video`` (PySceneDetect and OpenCV,
        imported on first use; CPU only, no weights)."""
        from scenedex.adapters.video import PySceneDetectSceneDetector

        return PySceneDetectSceneDetector()

    def source_policy(self) -> SourcePolicy:
        """What ``POST /v1/videos`` accepts as a source: the blob store, and https URLs on
        ``SCENEDEX_INGEST__ALLOWED_URL_HOSTS``."""
        ingest = self.settings.ingest
        return SourcePolicy(
            self.blobs.root_uri,
            allowed_hosts=tuple(h.lower() for h in ingest.allowed_url_hosts),
            allow_http=ingest.allow_http,
            limits=self.ingest_limits(),
        )

    def ingest_limits(self) -> IngestLimits:
        """The caps of an ingest's reads: ``SCENEDEX_INGEST__MAX_SOURCE_BYTES``,
        ``SCENEDEX_MAX_IMAGE_BYTES`` / ``SCENEDEX_MAX_IMAGE_PIXELS`` for keyframes, and the
        subtitle cap (``domain.limits.MAX_SUBTITLES_BYTES``)."""
        return IngestLimits(
            max_source_bytes=self.settings.ingest.max_source_bytes,
            max_image_bytes=self.settings.max_image_bytes,
            max_image_pixels=self.settings.max_image_pixels,
        )

    def source_download(self) -> UrlDownloader:
        """How ``ingest_video`` downloads a URL source: through the SSRF guard, streamed to a
        file, at most ``SCENEDEX_INGEST__MAX_SOURCE_BYTES``."""
        ingest = self.settings.ingest
        return UrlDownloader(
            UrlPolicy(
                max_bytes=ingest.max_source_bytes,
                timeout_s=ingest.timeout_s,
                total_timeout_s=ingest.download_timeout_s,
                allowed_hosts=tuple(h.lower() for h in ingest.allowed_url_hosts),
                allow_private_addresses=ingest.allow_private_addresses,
                schemes=("http", "https") if ingest.allow_http else ("https",),
                hosts_setting=URL_HOSTS_SETTING,
            )
        )

    def searcher(self) -> Search:
        """The search use cases on these adapters, images held to the image limits."""
        return Search(
            uow_factory=self.uow_factory,
            index=self.search_index,
            text_embedder=self.text_embedder,
            image_embedder=self.image_embedder,
            blobs=self.blobs,
            max_image_bytes=self.settings.max_image_bytes,
            max_image_pixels=self.settings.max_image_pixels,
            off=self.off_roles,
        )

    def search(self, owner_id: uuid.UUID, *, k: int = 10, **query: Any) -> list[SceneResult]:
        """``Search.scenes`` on these adapters (kept for the callers not yet on ``Application``)."""
        return self.searcher().scenes(owner_id, k=k, **query)


def build_services(settings: Settings, **overrides: Any) -> Services:
    """Build the services from ``settings``; any keyword (``image_embedder=...``) replaces the
    adapter of that name (tests pass fakes)."""
    engine = overrides.pop("engine", None) or create_engine(settings.database_url)
    remote: list[tuple[ImageEmbedder, TextEmbedder, FaceEmbedder]] = []

    def embedder(role: int) -> Any:
        """Role 0 image, 1 text, 2 faces: local (or off: never asked), or on the embedding
        services of its role (``SCENEDEX_EMBEDDER__BACKEND``, ``__CLIP``, ``__TEXT``, ``__FACES``)."""
        if settings.embedder.backend_of(("clip", "text", "faces")[role]) != "http":
            return (_clip, _text, _faces)[role](settings)
        if not remote:
            remote.append(http_embedders(settings))
        return remote[0][role]

    parts: dict[str, Any] = {
        "uow_factory": lambda: SqlUnitOfWorkFactory(engine),
        "blobs": lambda: FsspecBlobStore(settings.storage_url),
        "image_embedder": lambda: embedder(0),
        "text_embedder": lambda: embedder(1),
        "face_embedder": lambda: embedder(2),
        "search_index": lambda: TableSearchIndex(engine, settings.search.cache_max_bytes),
        "ocr_reader": lambda: _ocr(settings),
    }
    unknown = set(overrides) - set(parts)
    if unknown:
        raise TypeError(f"unknown overrides: {sorted(unknown)}")
    built = {name: overrides[name] if name in overrides else make() for name, make in parts.items()}
    services = Services(settings=settings, engine=engine, **built)
    if "search_index" not in overrides and settings.search.backend == "opensearch":
        services.search_index = _opensearch(services)
    return services
