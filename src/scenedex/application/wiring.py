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
