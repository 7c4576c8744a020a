"""The embedding service (``scenedex embed-server``): the worker's model adapters behind HTTP,
so the GPU runs in one always-on process, scaled and versioned apart from the workers.

Endpoints (JSON; ``/v1/*`` signed, see ``scenedex.adapters.request_signing``):

- ``GET /health``: status, models (name, ``model_id``, preprocessing or detection id, ``dim``,
  device, dtype) and limits. Unsigned.
- ``GET /metrics``: Prometheus text exposition. Unsigned.
- ``POST /v1/embed/image``: ``{"image", "normalize"?, "request_id"?}`` ->
  ``{"embedding": [d floats], "model_id", "preprocessing_id", "dim", "request_id"}``.
- ``POST /v1/embed/image-batch``: ``{"images": [...]}`` (at most ``max_batch_size``) ->
  ``{"results": [{"index", "embedding"} | {"index", "error": {"code", "message"}}], ...}``.
- ``POST /v1/embed/text``: ``{"texts": str | [str], "models": ["clip", "text"]}`` ->
  ``{"embeddings": {"clip": [[...]], "text": [[...]]}, "model_ids": {...}}``.
- ``POST /v1/embed/faces``: ``{"image", "normalize"? (default false)}`` ->
  ``{"faces": [{"bbox": [left, top, right, bottom], "descriptor": [128 floats]}], "model_id",
  "detection_id"}``.

An image is ``{"url": "https://..."}`` (allowed hosts or storage roots only) or ``{"data":
"<base64>"}``. ``normalize`` (default true; false for faces, whose dlib descriptors live in
Euclidean space) L2-normalises vectors. ``request_id`` is echoed. Errors are ``{"detail": ...}``:
401 bad signature, 413 body or image too large, 422 invalid request or image (``code`` in the
per-item table of ``ImageInputError``), 502/504 fetch failures, 503 model failure.

Two phases per request: its images are fetched and decoded concurrently (at most
``download_concurrency`` at once), then embedded; concurrent requests' images share model
batches through ``DynamicBatcher``. Inference runs on one model thread (faces on their own).
Concurrent ``/v1/embed/faces`` requests share one ``detect_faces`` call the same way (at most
``faces_batcher_max_batch`` images): dlib's runtime spreads a call's images over its threads,
the torch runtime runs their frames through the detector and their chips through the
descriptor together, on its device.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field, model_validator

from scenedex.adapters.request_signing import (
    SignatureVerifier,
)
from scenedex.api.app import BodySizeLimit
from scenedex.api.auth import ApiConfigError
from scenedex.api.embed_batcher import DynamicBatcher
from scenedex.api.embed_fetch import FetchPolicy, ImageFetcher, ImageInputError, decode_base64
from scenedex.api.embed_models import EmbedModels
from scenedex.api.embed_signing import SignedRequests
from scenedex.domain.errors import BadInputError, ModelLoadError
from scenedex.domain.model import l2_normalise
from scenedex.settings import Settings

log = logging.getLogger("scenedex.embed")

ENDPOINTS = (
    "/health",
    "/v1/embed/image",
    "/v1/embed/image-batch",
    "/v1/embed/text",
    "/v1/embed/faces",
)

REQUESTS = Counter(
    "scenedex_embed_requests_total",
    "Embedding service requests by endpoint and HTTP status",
    ["endpoint", "status"],
)
LATENCY = Histogram(
    "scenedex_embed_request_seconds",
    "Embedding service request latency (seconds), auth to response",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
BATCH_SIZE = Histogram(
    "scenedex_embed_batch_size",
    "Images per model forward pass (dynamic batches)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
FACES_BATCH_SIZE = Histogram(
    "scenedex_embed_faces_batch_size",
    "Images per face detection call (dynamic batches of /v1/embed/faces requests)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
QUEUE_WAIT = Histogram(
    "scenedex_embed_queue_wait_seconds",
    "Time an image waited for its model batch to start (seconds)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ITEM_ERRORS = Counter(
    "scenedex_embed_item_errors_total",
    "Images or texts refused or failed, by endpoint and error code",
    ["endpoint", "code"],
)


# ----------------------------------------------------------------------------- request bodies


class ImageInput(BaseModel):
    """One image: exactly one of ``url`` (http(s) URL or storage URI) and ``data`` (base64)."""

    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, min_length=1, max_length=4096)
    data: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageInput:
        if (self.url is None) == (self.data is None):
            raise ValueError("give exactly one of 'url' and 'data' (base64)")
        return self


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str | None = Field(None, max_length=256)


class ImageRequest(_Request):
    image: ImageInput
    normalize: bool = True


class ImageBatchRequest(_Request):
    images: list[ImageInput] = Field(min_length=1)
    normalize: bool = True


class TextRequest(_Request):
    texts: str | list[str]
    models: list[Literal["clip", "text"]] = Field(["text"], min_length=1)
    normalize: bool = True


class FacesRequest(_Request):
    image: ImageInput
    normalize: bool = False


# ----------------------------------------------------------------------------- the service


class EmbedService:
    """Per-app state: models, executors, the batcher, the fetcher and the verifier."""

    def __init__(self, settings: Settings, models: EmbedModels) -> None:
        embed = settings.embed
        self.settings = embed
        self.models = models
        self.verifier: SignatureVerifier | None = None
        if embed.hmac_secret is not None and embed.hmac_secret.get_secret_value():
            self.verifier = SignatureVerifier(
                embed.hmac_secret.get_secret_value(), window_s=embed.auth_time_window_seconds
            )
        elif not embed.allow_insecure_auth:
            raise ApiConfigError(
                "the embedding service needs SCENEDEX_EMBED__HMAC_SECRET (a shared secret of 32+ bytes); "
                "set SCENEDEX_EMBED__ALLOW_INSECURE_AUTH=1 to run unsigned (development only)"
            )
        self.policy = FetchPolicy(
            max_bytes=embed.max_image_size_bytes,
            timeout_s=embed.download_timeout_s,
            allowed_hosts=tuple(h.lower() for h in embed.allowed_hosts),
            allowed_storage_roots=embed.allowed_storage_roots,
            allow_private_addresses=embed.allow_private_addresses,
        )
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="embed-model")
        self.face_thread = ThreadPoolExecutor(1, thread_name_prefix="embed-faces")
        self.decode_threads = ThreadPoolExecutor(
            embed.download_concurrency, thread_name_prefix="embed-decode"
        )
        self.fetcher: ImageFetcher | None = None
        self.batcher: DynamicBatcher[Any, np.ndarray] | None = None
        self.face_batcher: DynamicBatcher[bytes, Any] | None = None
        self.downloads: asyncio.Semaphore | None = None

    async def start(self) -> None:
        """Load the models (``ModelLoadError`` stops the service) and start the batcher."""
        await asyncio.get_running_loop().run_in_executor(self.model_thread, self.models.load)
        self.fetcher = ImageFetcher(self.policy)
        self.downloads = asyncio.Semaphore(self.settings.download_concurrency)
        self.batcher = DynamicBatcher(
            self._embed_batch,
            executor=self.model_thread,
            max_batch=self.settings.batcher_max_batch,
            max_wait_s=self.settings.batcher_max_wait_ms / 1000,
            enabled=self.settings.batcher_enabled,
            observe=_observe_batch,
        )
        self.face_batcher = DynamicBatcher(
            self.models.faces.detect_faces,
            executor=self.face_thread,
            max_batch=self.settings.faces_batcher_max_batch,
            max_wait_s=self.settings.batcher_max_wait_ms / 1000,
            enabled=self.settings.batcher_enabled,
            observe=_observe_faces_batch,
        )
        if self.verifier is None:
            log.warning("embedding service running WITHOUT request signatures (ALLOW_INSECURE_AUTH)")

    async def stop(self) -> None:
        for batcher in (self.batcher, self.face_batcher):
            if batcher is not None:
                await batcher.close()
        if self.fetcher is not None:
            await self.fetcher.close()
        for pool in (self.model_thread, self.face_thread, self.decode_threads):
            pool.shutdown(wait=False, cancel_futures=True)

    def _embed_batch(self, tensors: list[Any]) -> list[np.ndarray]:
        """One forward pass (model thread): raw ``(d,)`` float32 rows, normalised per request."""
        return list(self.models.clip.embed_prepared(tensors, normalize=False))

    async def image_bytes(self, image: ImageInput) -> bytes:
        """Phase 1a: the encoded bytes of ``image`` (``ImageInputError``)."""
        if image.data is not None:
            return decode_base64(image.data, self.policy.max_bytes)
        assert self.fetcher is not None and self.downloads is not None and image.url is not None
        async with self.downloads:
            return await self.fetcher.fetch(image.url)

    async def prepared(self, image: ImageInput) -> Any:
        """Phase 1: fetch and decode one image into the model's input tensor."""
        data = await self.image_bytes(image)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.decode_threads, self.models.clip.prepare_image, data)
        except BadInputError as error:
            raise ImageInputError("bad_image", str(error)) from None

    async def embed_images(
        self, images: Sequence[ImageInput], normalize: bool
    ) -> list[np.ndarray | ImageInputError]:
        """Both phases for a request's images: per image a ``(d,)`` float32 vector or its error."""
        outcomes = await asyncio.gather(*(self.prepared(image) for image in images), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, ImageInputError):
                raise outcome
        ready = [o for o in outcomes if not isinstance(o, ImageInputError)]
        assert self.batcher is not None
        vectors = iter(await self.batcher.submit(ready))
        results: list[np.ndarray | ImageInputError] = []
        for outcome in outcomes:
            if isinstance(outcome, ImageInputError):
                results.append(outcome)
            else:
                vector = next(vectors)
                results.append(l2_normalise(vector[None, :])[0] if normalize else vector)
        return results


def _observe_batch(size: int, waits: Sequence[float]) -> None:
    BATCH_SIZE.observe(size)
    for wait in waits:
        QUEUE_WAIT.observe(wait)


def _observe_faces_batch(size: int, waits: Sequence[float]) -> None:
    FACES_BATCH_SIZE.observe(size)


def _floats(vector: np.ndarray) -> list[float]:
    """A float32 vector as JSON numbers (float32 -> float64 is exact, so the round trip is too)."""
    return [float(x) for x in np.asarray(vector, dtype=np.float32)]


# ----------------------------------------------------------------------------- routes

router = APIRouter(prefix="/v1/embed")


def _service(request: Request) -> EmbedService:
    service: EmbedService = request.app.state.embed
    return service


def _check_batch(service: EmbedService, count: int, what: str) -> None:
    if count > service.settings.max_batch_size:
        raise HTTPException(
            422, f"{count} {what} in one request; at most {service.settings.max_batch_size} (MAX_BATCH_SIZE)"
        )


def _clip_ids(service: EmbedService) -> dict[str, Any]:
    clip = service.models.clip
    return {"model_id": clip.model_id, "preprocessing_id": clip.preprocessing_id, "dim": int(clip.dim)}


@router.post("/image")
async def embed_image(body: ImageRequest, request: Request) -> dict[str, Any]:
    """One image's CLIP embedding; a bad image is this request's 413/422/502/504."""
    service = _service(request)
    [result] = await service.embed_images([body.image], body.normalize)
    if isinstance(result, ImageInputError):
        ITEM_ERRORS.labels("/v1/embed/image", result.code).inc()
        raise HTTPException(result.status, {"code": result.code, "message": str(result)})
    return {"request_id": body.request_id, **_clip_ids(service), "embedding": _floats(result)}


@router.post("/image-batch")
async def embed_image_batch(body: ImageBatchRequest, request: Request) -> dict[str, Any]:
    """Many images' CLIP embeddings; each bad image is its own item error, the others succeed."""
    service = _service(request)
    _check_batch(service, len(body.images), "images")
    results = await service.embed_images(body.images, body.normalize)
    items: list[dict[str, Any]] = []
    for index, result in enumerate(results):
        if isinstance(result, ImageInputError):
            ITEM_ERRORS.labels("/v1/embed/image-batch", result.code).inc()
            items.append({"index": index, "error": {"code": result.code, "message": str(result)}})
        else:
            items.append({"index": index, "embedding": _floats(result)})
    return {"request_id": body.request_id, **_clip_ids(service), "results": items}


@router.post("/text")
async def embed_text(body: TextRequest, request: Request) -> dict[str, Any]:
    """Texts through the CLIP text tower (``clip``) and/or the sentence model (``text``)."""
    service = _service(request)
    texts = [body.texts] if isinstance(body.texts, str) else body.texts
    if not texts:
        raise HTTPException(422, "texts is empty")
    _check_batch(service, len(texts), "texts")
    if any(not text.strip() for text in texts):
        raise HTTPException(422, "texts must not be empty or blank")
    loop = asyncio.get_running_loop()
    embeddings: dict[str, list[list[float]]] = {}
    model_ids: dict[str, str] = {}
    for name in dict.fromkeys(body.models):
        if name == "clip":
            run = service.models.clip.encode_text
            model_ids["clip"] = service.models.clip.model_id
        else:
            run = service.models.text.embed_texts
            model_ids["text"] = service.models.text.model_id
        rows = await loop.run_in_executor(
            service.model_thread, functools.partial(run, texts, normalize=body.normalize)
        )
        embeddings[name] = [_floats(row) for row in rows]
    return {"request_id": body.request_id, "model_ids": model_ids, "embeddings": embeddings}


@router.post("/faces")
async def embed_faces(body: FacesRequest, request: Request) -> dict[str, Any]:
    """Faces of one image: ``bbox`` (left, top, right, bottom; pixels of the upright image)
    and the ``(128,)`` dlib descriptor (raw unless ``normalize``)."""
    service = _service(request)
    try:
        data = await service.image_bytes(body.image)
    except ImageInputError as error:
        ITEM_ERRORS.labels("/v1/embed/faces", error.code).inc()
        raise HTTPException(error.status, {"code": error.code, "message": str(error)}) from None
    assert service.face_batcher is not None
    [found] = await service.face_batcher.submit([data])  # concurrent requests share one call
    if isinstance(found, BadInputError):
        ITEM_ERRORS.labels("/v1/embed/faces", "bad_image").inc()
        raise HTTPException(422, {"code": "bad_image", "message": str(found)})
    faces = [
        {
            "bbox": [int(v) for v in face.bbox],
            "descriptor": _floats(
                l2_normalise(face.descriptor[None, :])[0] if body.normalize else face.descriptor
            ),
        }
        for face in found
    ]
    return {
        "request_id": body.request_id,
        "model_id": service.models.faces.model_id,
        "detection_id": service.models.faces.detection_id,
        "faces": faces,
    }


# ----------------------------------------------------------------------------- app


def create_embed_app(settings: Settings, models: EmbedModels | None = None) -> FastAPI:
    """The embedding service on ``settings.embed``. ``models`` defaults to the local adapters
    built from ``settings`` (loaded when the app starts; a load failure stops it).

    Raises ``ApiConfigError`` when no HMAC secret is configured and insecure auth is not
    explicitly allowed."""
    service = EmbedService(settings, models or EmbedModels.from_settings(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="scenedex embedding service",
        version="1",
        summary="CLIP image and text, sentence-text and face embeddings over HTTP.",
        lifespan=lifespan,
    )
    app.state.embed = service

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Status, models (ids feed the worker's step fingerprints) and limits; unsigned."""
        return {
            "status": "ok",
            "models": service.models.describe(),
            "max_batch_size": service.settings.max_batch_size,
            "max_image_size_bytes": service.settings.max_image_size_bytes,
            "batcher": {
                "enabled": service.settings.batcher_enabled,
                "max_batch": service.settings.batcher_max_batch,
                "max_wait_ms": service.settings.batcher_max_wait_ms,
            },
            "auth": "hmac-sha256" if service.verifier else "none (insecure)",
        }

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text exposition of this process's registry; unsigned."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)

    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _plain(error.errors())}, status_code=422)

    async def model_failed(request: Request, error: Exception) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path, error)
        return JSONResponse({"detail": f"model unavailable: {error}"}, status_code=503)

    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    app.add_exception_handler(RequestValidationError, invalid)  # type: ignore[arg-type]
    app.add_exception_handler(ModelLoadError, model_failed)
    app.add_exception_handler(Exception, unexpected)
    app.add_middleware(SignedRequests, verifier=service.verifier)
    app.add_middleware(BodySizeLimit, max_bytes=service.settings.max_request_bytes)
    app.add_middleware(RequestMetrics)
    return app


def _plain(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Validation errors without the (possibly huge, base64) input values."""
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors
    ]


class RequestMetrics:
    """ASGI middleware: counts requests by endpoint and status and times them."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
        status = 500
        started = time.perf_counter()

        async def recording_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            if scope["path"] != "/metrics":
                REQUESTS.labels(endpoint, str(status)).inc()
                LATENCY.labels(endpoint).observe(time.perf_counter() - started)
