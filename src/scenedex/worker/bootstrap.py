"""The composition root: builds every adapter from settings, once per process.

The CLI, the worker and the API call ``bootstrap(settings)`` for the services and, when they
enqueue or run jobs, ``build_runtime(settings, services)`` for the job runtime on the same
engine (job store, Dramatiq sender and broker, Redis probe, coordinator); tests pass fakes
through ``overrides``. The entry points construct the ``Settings`` and pass them here. Nothing
here loads a model or opens a connection: embedders load their weights lazily on first use,
engines connect on first query, the broker on its first command.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dramatiq
import sqlalchemy as sa

from scenedex.adapters.breakers import BreakerBoard, BreakerConfig, CircuitBreaker, LocalKeyValue
from scenedex.adapters.db.engine import create_engine
from scenedex.adapters.db.jobs import SqlJobStore
from scenedex.adapters.db.repositories import SqlUnitOfWorkFactory
from scenedex.adapters.db.search_index import TableSearchIndex
from scenedex.adapters.storage import FsspecBlobStore
from scenedex.adapters.token_denylist import RedisTokenDenylist
from scenedex.adapters.url_fetch import UrlDownloader, UrlPolicy
from scenedex.domain.coordinator import JobCoordinator
from scenedex.domain.errors import BLOBS, DATABASE, EMBEDDING, OPENSEARCH, REDIS, InvalidRequestError
from scenedex.domain.face_clusters import ClusterSettings
from scenedex.domain.model import Scene
from scenedex.domain.ports import (
    BlobStore,
    FaceEmbedder,
    ImageEmbedder,
    MessageProbe,
    SearchIndex,
    TextEmbedder,
    UnitOfWorkFactory,
)
from scenedex.domain.reprocess import ReprocessRunner
from scenedex.domain.scene_faces import FaceSampling
from scenedex.domain.spec import ReprocessSpec, SpecInputs
from scenedex.services.face_clusters import FaceClusters
from scenedex.services.persons import Persons
from scenedex.services.search import (
    SceneResult,
    check_image,
    describe_hits,
    keyframe_bytes,
    owned_scene,
    owner_blob,
    search_scenes,
)
from scenedex.services.videos import URL_HOSTS_SETTING, IngestLimits, SourcePolicy
from scenedex.settings import SearchSettings, Settings
from scenedex.tasks.messaging import RedisMessageProbe
from scenedex.worker.broker import ensure_broker

if TYPE_CHECKING:
    from scenedex.tasks.actors import DramatiqSender


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
    _spec: ReprocessSpec | None = field(default=None, repr=False)

    @property
    def spec(self) -> ReprocessSpec:
        """The latest spec for the configured models (model ids read without loading weights)."""
        if self._spec is None:
            self._spec = ReprocessSpec.latest(
                SpecInputs(
                    clip_model_id=self.image_embedder.model_id,
                    clip_preprocessing=self.image_embedder.preprocessing_id,
                    text_model_id=self.text_embedder.model_id,
                    face_model_id=self.face_embedder.model_id,
                    face_detection=self.face_embedder.detection_id,
                    face_match_threshold=self.settings.faces.match_threshold,
                    face_sampling=self.face_sampling.id,
                    face_clusters=self.cluster_settings.id,
                )
            )
        return self._spec

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
        if keep_face_embedder:
            shared["face_embedder"] = self.face_embedder
        return bootstrap(settings, **shared)

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

    def search(self, owner_id: uuid.UUID, *, k: int = 10, **query: Any) -> list[SceneResult]:
        """``search_scenes`` on these adapters (query: ``text=``, ``image=`` or ``person_id=``),
        the hits described for a results page (``describe_hits``)."""
        hits = search_scenes(
            uow_factory=self.uow_factory,
            index=self.search_index,
            text_embedder=self.text_embedder,
            image_embedder=self.image_embedder,
            owner_id=owner_id,
            k=k,
            **query,
        )
        return describe_hits(self.uow_factory, owner_id, hits)

    def query_image(self, owner_id: uuid.UUID, *, data: bytes | None = None, uri: str | None = None) -> bytes:
        """An image query's bytes: ``data`` (an upload) or the owner's blob at ``uri``
        (``owner_blob``), held to ``max_image_bytes`` / ``max_image_pixels`` (``check_image``)."""
        if (data is None) == (uri is None):
            raise InvalidRequestError("give exactly one of: an image, a keyframe_uri")
        image = (
            data
            if data is not None
            else owner_blob(self.blobs, owner_id, str(uri), self.settings.max_image_bytes)
        )
        return check_image(
            image, max_bytes=self.settings.max_image_bytes, max_pixels=self.settings.max_image_pixels
        )

    def scene(self, owner_id: uuid.UUID, scene_id: uuid.UUID) -> Scene:
        """The owner's scene; ``NotFoundError`` for an unknown or another owner's (``owned_scene``)."""
        return owned_scene(self.uow_factory, owner_id, scene_id)

    def keyframe(self, scene: Scene) -> tuple[bytes, str]:
        """The scene's keyframe bytes and media type (``keyframe_bytes``)."""
        return keyframe_bytes(self.blobs, scene, self.settings.max_image_bytes)


def bootstrap(settings: Settings, **overrides: Any) -> Services:
    """Build the services from ``settings``; any keyword (``image_embedder=...``) replaces the
    adapter of that name (tests pass fakes)."""
    engine = overrides.pop("engine", None) or create_engine(settings.database_url)
    remote: list[tuple[ImageEmbedder, TextEmbedder, FaceEmbedder]] = []

    def embedder(role: int) -> Any:
        """Role 0 image, 1 text, 2 faces: local, or one client of the embedding service."""
        if settings.embedder.backend == "local":
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
    }
    unknown = set(overrides) - set(parts)
    if unknown:
        raise TypeError(f"unknown overrides: {sorted(unknown)}")
    built = {name: overrides[name] if name in overrides else make() for name, make in parts.items()}
    services = Services(settings=settings, engine=engine, **built)
    if "search_index" not in overrides and settings.search.backend == "opensearch":
        services.search_index = _opensearch(services)
    return services


@dataclass
class JobRuntime:
    """The queued side of a process, built by ``build_runtime``: the ``JobCoordinator`` (SQL
    job store, Dramatiq sender, and the services' runner when built with services), the Redis
    probe that ``resume`` and the sweeper ask, the sender of every actor's messages
    (``DramatiqSender``) and the circuit breakers of the dependencies (``breakers``).
    ``services``: None in a process that only enqueues or inspects jobs."""

    settings: Settings
    services: Services | None
    coordinator: JobCoordinator
    probe: MessageProbe
    sender: DramatiqSender
    breakers: BreakerBoard


def build_runtime(
    settings: Settings, services: Services | None = None, *, engine: sa.Engine | None = None
) -> JobRuntime:
    """The job runtime of a process on ``settings``.

    With ``services`` (the worker, the API, the scheduler, ``scenedex reprocess --enqueue``) it
    shares their engine and its coordinator runs jobs on their runner, which computes their
    spec from the configured model ids (no weights loaded; CLIP's preprocessing description
    imports open_clip). Without (``scenedex jobs``, the embed message after an ingest) it only
    creates, sends and inspects jobs, on ``engine`` or a new one, and imports no model library.

    Installs dramatiq's global broker from ``settings`` unless one is set (``ensure_broker``)
    and declares the actors on it. Opens no connection.
    """
    broker = task_broker(settings)
    from scenedex.tasks.actors import DramatiqSender

    if services is not None:
        engine = services.engine
    engine = engine or create_engine(settings.database_url)
    sender = DramatiqSender()
    coordinator = JobCoordinator(
        SqlJobStore(engine),
        sender,
        services.runner() if services is not None else None,
        max_deliveries=settings.worker.max_deliveries,
    )
    breakers = dependency_breakers(settings, broker, engine, services)
    return JobRuntime(settings, services, coordinator, RedisMessageProbe(broker), sender, breakers)


def dependency_breakers(
    settings: Settings, broker: Any, engine: sa.Engine, services: Services | None = None
) -> BreakerBoard:
    """A circuit breaker and a health probe per dependency this process uses: the database,
    the blob store and Redis always, the embedding service when ``SCENEDEX_EMBEDDER__BACKEND``
    is ``http`` (``GET /health``), OpenSearch when it is the search backend (cluster health).
    The breakers are shared through the broker's Redis, except Redis's own (in the process)."""
    from fsspec.core import url_to_fs

    config = BreakerConfig(
        failure_threshold=settings.breakers.failure_threshold,
        failure_window_s=settings.breakers.failure_window_s,
        open_s=settings.breakers.open_s,
        max_open_s=settings.breakers.max_open_s,
        probe_timeout_s=settings.breakers.probe_timeout_s,
    )
    timeout = settings.breakers.probe_timeout_s

    def database() -> None:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    def blobs() -> None:
        fs, root = url_to_fs(settings.storage_url)
        fs.exists(root)

    def redis() -> None:
        broker.client.ping()

    probes: dict[str, Any] = {DATABASE: database, BLOBS: blobs, REDIS: redis}
    if settings.embedder.backend == "http":
        import httpx

        url = settings.embedder.url.rstrip("/") + "/health"
        probes[EMBEDDING] = lambda: httpx.get(url, timeout=timeout, trust_env=False).raise_for_status()
    if settings.search.backend == "opensearch":
        client = opensearch_client(settings.search, timeout_s=timeout, max_retries=0)
        probes[OPENSEARCH] = lambda: client.cluster.health(request_timeout=timeout)
    shared = getattr(broker, "client", None) or LocalKeyValue()  # a stub broker (tests) has no Redis
    breakers = {
        name: CircuitBreaker(name, LocalKeyValue() if name == REDIS else shared, config) for name in probes
    }
    return BreakerBoard(breakers, probes)


def token_denylist(settings: Settings) -> RedisTokenDenylist:
    """The deny-list of revoked bearer tokens on ``SCENEDEX_REDIS_URL`` (the API's verifier,
    the console's sign-out, ``scenedex token revoke``), with 2 s timeouts: an unreachable Redis
    is an error at once, not a hung request. Opens no connection."""
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2.0, socket_timeout=2.0)
    return RedisTokenDenylist(client)


def task_broker(settings: Settings) -> dramatiq.Broker:
    """dramatiq's global broker with scenedex's actors declared on it: the broker set before,
    or a RedisBroker on ``settings.redis_url`` installed now (``ensure_broker``). The worker's
    entry calls it before adding its middleware; ``build_runtime`` calls it too."""
    broker = ensure_broker(settings)
    from scenedex.tasks.actors import configure_retries  # declares the actors on the global broker

    configure_retries(settings.worker)
    return broker


def opensearch_client(
    search: SearchSettings, *, timeout_s: float | None = None, max_retries: int | None = None
) -> Any:
    """An ``opensearchpy.OpenSearch`` client for ``SCENEDEX_SEARCH__*`` (URL, basic auth, TLS);
    ``timeout_s`` (seconds) and ``max_retries`` override the settings' (``scenedex doctor``
    uses short ones)."""
    from scenedex.adapters.opensearch import make_client

    return make_client(
        search.url,
        username=search.username,
        password=search.password.get_secret_value() if search.password else None,
        verify_certs=search.verify_certs,
        ca_certs=search.ca_certs,
        timeout_s=search.timeout_s if timeout_s is None else timeout_s,
        max_retries=search.max_retries if max_retries is None else max_retries,
    )


def _opensearch(services: Services) -> SearchIndex:
    """The OpenSearch index of ``services``' spec; its layout (spec fingerprint, vector sizes
    from the embedders, which load no weights for it) is resolved on first use."""
    from scenedex.adapters.opensearch import IndexLayout, IndexNames, OpenSearchIndex, sql_scene_counts

    search = services.settings.search
    names = IndexNames(search.index_prefix)
    client = opensearch_client(search)

    def layout() -> IndexLayout:
        text: Any = services.text_embedder  # the adapters' ``dim`` (not part of the port)
        clip: Any = services.image_embedder
        return IndexLayout.from_spec(
            services.spec,
            names,
            text_dim=text.dim,
            clip_dim=clip.dim,
            shards=search.shards,
            replicas=search.replicas,
        )

    return OpenSearchIndex(
        client,
        layout,
        names=names,
        scene_counts=lambda: sql_scene_counts(services.engine),
        max_chunk_bytes=search.max_chunk_bytes,
    )


def http_embedders(settings: Settings, transport: Any = None) -> tuple[Any, Any, Any]:
    """The three remote embedders (``SCENEDEX_EMBEDDER__BACKEND=http``): image, text and face
    adapters of ``scenedex.adapters.http_embedder`` sharing one client of
    ``settings.embedder.url``, signing with ``SCENEDEX_EMBED__HMAC_SECRET``."""
    from scenedex.adapters.http_embedder import (
        EmbedServiceClient,
        HttpFaceEmbedder,
        HttpImageEmbedder,
        HttpTextEmbedder,
    )

    embedder = settings.embedder
    secret = settings.embed.hmac_secret.get_secret_value() if settings.embed.hmac_secret else None
    client = EmbedServiceClient(
        embedder.url,
        secret=secret,
        timeout_s=embedder.timeout_s,
        max_retries=embedder.max_retries,
        backoff_s=embedder.backoff_s,
        transport=transport,
    )
    return (
        HttpImageEmbedder(client, embedder.batch_size),
        HttpTextEmbedder(client, embedder.batch_size),
        HttpFaceEmbedder(client, embedder.batch_size),
    )


def local_embedders(settings: Settings) -> tuple[ImageEmbedder, TextEmbedder, FaceEmbedder]:
    """The in-process model adapters (``SCENEDEX_EMBEDDER__BACKEND=local``, and the embedding
    service's own): open_clip, sentence-transformers and dlib, configured from ``settings``;
    weights load on first use or ``load()``."""
    return _clip(settings), _text(settings), _faces(settings)


def _clip(settings: Settings) -> ImageEmbedder:
    from scenedex.adapters.clip import OpenClipImageEmbedder

    return OpenClipImageEmbedder(
        settings.clip.model,
        settings.clip.pretrained,
        device=settings.clip.device,
        batch_size=settings.clip.batch_size,
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        precision=settings.clip.precision,
    )


def _text(settings: Settings) -> TextEmbedder:
    from scenedex.adapters.text import SentenceTransformerTextEmbedder

    return SentenceTransformerTextEmbedder(
        settings.text.model,
        device=settings.text.device,
        batch_size=settings.text.batch_size,
        precision=settings.text.precision,
    )


def _faces(settings: Settings) -> FaceEmbedder:
    from scenedex.adapters.faces import DlibFaceEmbedder

    faces = settings.faces
    return DlibFaceEmbedder(
        detector=faces.detector,
        detect_side=faces.detect_side or None,
        upsample=faces.upsample,
        min_score=faces.min_score,
        threads=faces.threads or None,
        num_jitters=faces.num_jitters,
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        max_side=faces.max_side,
    )
