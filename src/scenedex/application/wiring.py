"""How each adapter is built from settings: the model adapters (local or the embedding
service's clients), the OpenSearch client and index, the token deny-list. The composition root
(``application.root.build_services``) and the health checks (``application.health``) use them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scenedex.adapters.token_denylist import RedisTokenDenylist
from scenedex.domain.ports import FaceEmbedder, ImageEmbedder, OcrReader, SearchIndex, TextEmbedder
from scenedex.settings import SearchSettings, Settings

if TYPE_CHECKING:
    from scenedex.application.root import Services


def token_denylist(settings: Settings) -> RedisTokenDenylist:
    """The deny-list of revoked bearer tokens on ``SCENEDEX_REDIS_URL`` (the API's verifier,
    the console's sign-out, ``scenedex token revoke``), with 2 s timeouts: an unreachable Redis
    is an error at once, not a hung request. Opens no connection."""
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2.0, socket_timeout=2.0)
    return RedisTokenDenylist(client)


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


def http_embedders(settings: Settings, transport: Any = None, store: Any = None) -> tuple[Any, Any, Any]:
    """The three remote embedders (a role on ``http``: ``SCENEDEX_EMBEDDER__BACKEND`` or the
    role's own setting): image, text and face adapters of ``scenedex.adapters.http_embedder``,
    each on the pool (``adapters.embed_pool``) of its role's URLs (``urls_of``; roles with the
    same list share one pool), signing with ``SCENEDEX_EMBED__HMAC_SECRET``. The instance
    breakers live in ``store`` (default: Redis at ``SCENEDEX_REDIS_URL``, 2 s timeouts)."""
    from scenedex.adapters.http_embedder import HttpFaceEmbedder, HttpImageEmbedder, HttpTextEmbedder

    embedder = settings.embedder
    pools: dict[tuple[str, ...], Any] = {}

    def pool(role: str) -> Any:
        urls = embedder.urls_of(role)
        if urls not in pools:
            pools[urls] = embed_pool(settings, urls, transport=transport, store=store)
        return pools[urls]

    return (
        HttpImageEmbedder(pool("clip"), embedder.batch_size),
        HttpTextEmbedder(pool("text"), embedder.batch_size),
        HttpFaceEmbedder(pool("faces"), embedder.batch_size),
    )


def embed_pool(settings: Settings, urls: tuple[str, ...], *, transport: Any = None, store: Any = None) -> Any:
    """An ``EmbedServicePool`` over ``urls``: one ``EmbedServiceClient`` per URL without retries
    of its own (the pool fails over, then retries ``SCENEDEX_EMBEDDER__MAX_RETRIES`` rounds),
    per-instance breakers with ``SCENEDEX_BREAKERS__*``."""
    from scenedex.adapters.breakers import BreakerConfig
    from scenedex.adapters.embed_pool import EmbedServicePool
    from scenedex.adapters.http_embedder import EmbedServiceClient

    embedder, breakers = settings.embedder, settings.breakers
    secret = settings.embed.hmac_secret.get_secret_value() if settings.embed.hmac_secret else None
    if store is None:
        import redis

        store = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2.0, socket_timeout=2.0)

    def client(url: str) -> EmbedServiceClient:
        return EmbedServiceClient(
            url, secret=secret, timeout_s=embedder.timeout_s, max_retries=0, transport=transport
        )

    return EmbedServicePool(
        urls,
        client_factory=client,
        store=store,
        breaker_config=BreakerConfig(
            failure_threshold=breakers.failure_threshold,
            failure_window_s=breakers.failure_window_s,
            open_s=breakers.open_s,
            max_open_s=breakers.max_open_s,
            probe_timeout_s=breakers.probe_timeout_s,
        ),
        balance=embedder.balance,
        max_retries=embedder.max_retries,
        backoff_s=embedder.backoff_s,
    )


def local_embedders(settings: Settings) -> tuple[ImageEmbedder, TextEmbedder, FaceEmbedder]:
    """The in-process model adapters (``SCENEDEX_EMBEDDER__BACKEND=local``, and the embedding
    service's own): open_clip, sentence-transformers and dlib, configured from ``settings``;
    weights load on first use or ``load()``."""
    return _clip(settings), _text(settings), _faces(settings)


def _clip(settings: Settings) -> ImageEmbedder:
    from scenedex.adapters.clip import OpenClipImageEmbedder
    from scenedex.application.health_models import pinned_clip_file

    return OpenClipImageEmbedder(
        settings.clip.model,
        settings.clip.pretrained,
        device=settings.clip.device,
        batch_size=settings.clip.batch_size,
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        precision=settings.clip.precision,
        weights_file=pinned_clip_file(settings),
    )


def _text(settings: Settings) -> TextEmbedder:
    from scenedex.adapters.text import SentenceTransformerTextEmbedder

    return SentenceTransformerTextEmbedder(
        settings.text.model,
        device=settings.text.device,
        batch_size=settings.text.batch_size,
        precision=settings.text.precision,
    )


def _ocr(settings: Settings) -> OcrReader | None:
    """The OCR reader (``SCENEDEX_OCR__ENABLED``; None when off): PP-OCRv5 on ONNX Runtime, in
    this process whatever the embedder backend (the embedding service does not host it yet)."""
    if not settings.ocr.enabled:
        return None
    from scenedex.adapters.ocr import OnnxOcrReader

    return OnnxOcrReader(max_image_bytes=settings.max_image_bytes, max_image_pixels=settings.max_image_pixels)


def _faces(settings: Settings) -> FaceEmbedder:
    from scenedex.adapters.face_embedders import build_face_embedder

    return build_face_embedder(settings)  # SCENEDEX_FACES__RUNTIME=dlib|torch (issue 30)
