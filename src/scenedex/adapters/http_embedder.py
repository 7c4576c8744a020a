"""The worker's embedders on the embedding service (``SCENEDEX_EMBEDDER__BACKEND=http``).

``HttpImageEmbedder``, ``HttpTextEmbedder`` and ``HttpFaceEmbedder`` implement the same ports as
the local adapters (``ImageEmbedder``, ``TextEmbedder``, ``FaceEmbedder``) over one
``EmbedServiceClient`` (httpx). Their ``model_id`` / ``preprocessing_id`` / ``detection_id`` are
the ones the service reports in ``GET /health``, so the step fingerprints name the service's
models: a model change on the service makes records stale exactly as a local change does.
Every answer carries the model id it was computed with; an answer from another model than the
spec was built from (the service was redeployed under a running worker) raises
``ModelLoadError`` instead of writing records under the wrong fingerprint.

Requests are signed (``scenedex.adapters.request_signing``) with ``SCENEDEX_EMBED__HMAC_SECRET``;
every attempt carries a fresh ``request_id``, so a retried body is never a replay. Transient
failures (connection errors, timeouts, 429, 500, 502, 503, 504) are retried with exponential
backoff and full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter", 2015), then
raise ``DependencyUnavailableError`` (``embedding``: the item is held while the service's
circuit breaker is open, see ``scenedex.tasks.holds``). Per-image errors of the
service become the item's ``BadInputError``: a bad keyframe fails its scene, not the batch.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from scenedex.adapters.request_signing import signed_headers
from scenedex.domain.errors import (
    EMBEDDING,
    BadInputError,
    DependencyUnavailableError,
    ModelLoadError,
    PermanentError,
    TransientError,
)
from scenedex.domain.model import DetectedFace

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_REQUEST_PAYLOAD_BYTES = 24 * 1024 * 1024
"""Largest sum of base64 image sizes put in one request (the service's default body limit is
64 MiB)."""


class EmbedServiceClient:
    """Signed JSON requests to the embedding service at ``url``.

    - ``secret``: the shared HMAC secret (``None``: unsigned, for a service run with
      ``ALLOW_INSECURE_AUTH``).
    - ``timeout_s``: per request; ``max_retries``: retries of a transient failure;
      ``backoff_s``: first retry delay (seconds), doubled per retry, full jitter.
    - ``transport``: an httpx transport (tests pass ``httpx.ASGITransport`` of the app).
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str | None,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._secret = secret
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport, trust_env=False)
        self._health: dict[str, Any] | None = None

    def close(self) -> None:
        self._http.close()

    def health(self, *, refresh: bool = False) -> dict[str, Any]:
        """``GET /health`` (cached after the first success). Raises ``ModelLoadError`` when the
        service is unreachable or not ok after the retries: the worker cannot know its models."""
        if self._health is None or refresh:
            try:
                answer = self._send("GET", "/health", None)
            except (TransientError, PermanentError) as error:
                raise ModelLoadError(f"embedding service at {self.url} is unusable: {error}") from error
            if answer.get("status") != "ok":
                raise ModelLoadError(f"embedding service at {self.url} is not ready: {answer}")
            self._health = answer
        return self._health

    def model(self, role: str) -> dict[str, Any]:
        """The service's description of model ``role`` (``clip``, ``text`` or ``faces``)."""
        return dict(self.health()["models"][role])

    @property
    def max_batch_size(self) -> int:
        return int(self.health()["max_batch_size"])

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST ``payload`` (plus a fresh ``request_id`` per attempt) and return the JSON answer.

        Raises ``DependencyUnavailableError`` (a ``TransientError``) after the retries,
        ``ModelLoadError`` on 401 (wrong secret or clock), ``BadInputError`` on 413/422 (the
        request's input is at fault) and ``PermanentError`` for other 4xx."""
        return self._send("POST", path, payload)

    def _send(self, method: str, path: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        attempt = 0
        while True:
            body = b""
            if payload is not None:
                body = json.dumps({**payload, "request_id": uuid.uuid4().hex}).encode()
            headers = {"Content-Type": "application/json"}
            if self._secret and method != "GET":
                headers.update(signed_headers(self._secret, method, path, body))
            try:
                response = self._http.request(method, path, content=body or None, headers=headers)
            except httpx.TransportError as error:
                failure: str = f"{type(error).__name__}: {error}"
            else:
                if response.status_code < 300:
                    result: dict[str, Any] = response.json()
                    return result
                detail = _detail(response)
                if response.status_code not in RETRY_STATUSES:
                    if response.status_code == 401:
                        raise ModelLoadError(
                            f"embedding service refused the signature ({detail}): check that "
                            "SCENEDEX_EMBED__HMAC_SECRET matches the service's and that the clocks agree"
                        )
                    if response.status_code in (413, 422):
                        raise BadInputError(f"embedding service: {detail}")
                    raise PermanentError(
                        f"embedding service {method} {path}: {response.status_code} {detail}"
                    )
                failure = f"{response.status_code} {detail}"
            if attempt >= self._max_retries:
                raise DependencyUnavailableError(
                    EMBEDDING,
                    f"embedding service {method} {path} failed after {attempt + 1} attempts: {failure}",
                )
            delay = random.uniform(0, self._backoff_s * 2**attempt)
            log.warning("embedding service %s %s: %s; retry in %.2f s", method, path, failure, delay)
            time.sleep(delay)
            attempt += 1


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:200]
    if isinstance(detail, dict):
        return f"{detail.get('code')}: {detail.get('message')}"
    return str(detail)[:500]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _vector(values: Sequence[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


class _Remote:
    """Shared identity plumbing: the service's description of one model role."""

    role = ""

    def __init__(self, client: EmbedServiceClient, batch_size: int) -> None:
        self.client = client
        self._batch_size = batch_size

    @property
    def model_id(self) -> str:
        """The service's model id for this role (``GET /health``; ``ModelLoadError`` when the
        service is unreachable)."""
        return str(self.client.model(self.role)["model_id"])

    @property
    def dim(self) -> int:
        return int(self.client.model(self.role)["dim"])

    def load(self) -> None:
        """Check the service answers and describes this role (worker boot): ``ModelLoadError``."""
        self.client.model(self.role)

    @property
    def batch_size(self) -> int:
        return min(self._batch_size, self.client.max_batch_size)

    def _same_model(self, answered: str | None) -> None:
        if answered is not None and answered != self.model_id:
            raise ModelLoadError(
                f"the embedding service now runs {answered}, not {self.model_id} which this worker's spec "
                "was built from; restart the worker to pick up the new spec"
            )


class HttpImageEmbedder(_Remote):
    """``ImageEmbedder`` on ``/v1/embed/image-batch`` and ``/v1/embed/text`` (``clip``).

    Returns what the local adapter returns: ``(d,)`` float32 L2-normalised vectors per image
    (or the item's ``BadInputError``), ``(n, d)`` float32 for texts."""

    role = "clip"

    @property
    def preprocessing_id(self) -> str:
        return str(self.client.model("clip")["preprocessing_id"])

    def embed_images(self, images: Sequence[bytes]) -> list[np.ndarray | BadInputError]:
        results: list[np.ndarray | BadInputError] = []
        for chunk in _chunks([_b64(data) for data in images], self.batch_size):
            answer = self.client.post(
                "/v1/embed/image-batch", {"images": [{"data": data} for data in chunk], "normalize": True}
            )
            self._same_model(answer.get("model_id"))
            for item in sorted(answer["results"], key=lambda r: r["index"]):
                if "error" in item:
                    error = item["error"]
                    results.append(BadInputError(f"{error['code']}: {error['message']}"))
                else:
                    results.append(_vector(item["embedding"]))
        return results

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        return _embed_texts(self, texts, "clip")


class HttpTextEmbedder(_Remote):
    """``TextEmbedder`` on ``/v1/embed/text`` (``text``): ``(n, d)`` float32, L2-normalised."""

    role = "text"

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return _embed_texts(self, texts, "text")


class HttpFaceEmbedder(_Remote):
    """``FaceEmbedder`` on ``/v1/embed/faces``, one request per image: per image the faces
    (``bbox``, ``(128,)`` float32 raw dlib descriptor) or the item's ``BadInputError``."""

    role = "faces"

    @property
    def detection_id(self) -> str:
        return str(self.client.model("faces")["detection_id"])

    def detect_faces(self, images: Sequence[bytes]) -> list[list[DetectedFace] | BadInputError]:
        results: list[list[DetectedFace] | BadInputError] = []
        for data in images:
            try:
                answer = self.client.post(
                    "/v1/embed/faces", {"image": {"data": _b64(data)}, "normalize": False}
                )
            except BadInputError as error:
                results.append(error)
                continue
            self._same_model(answer.get("model_id"))
            results.append(
                [
                    DetectedFace(bbox=tuple(face["bbox"]), descriptor=_vector(face["descriptor"]))
                    for face in answer["faces"]
                ]
            )
        return results


def _embed_texts(remote: _Remote, texts: Sequence[str], role: str) -> np.ndarray:
    if not texts:
        return np.zeros((0, remote.dim), dtype=np.float32)
    rows: list[np.ndarray] = []
    for start in range(0, len(texts), remote.batch_size):
        chunk = list(texts[start : start + remote.batch_size])
        answer = remote.client.post("/v1/embed/text", {"texts": chunk, "models": [role], "normalize": True})
        remote._same_model(answer.get("model_ids", {}).get(role))
        rows.append(np.asarray(answer["embeddings"][role], dtype=np.float32).reshape(len(chunk), -1))
    return np.concatenate(rows, axis=0)


def _chunks(encoded: list[str], batch_size: int) -> list[list[str]]:
    """Split base64 images into requests of at most ``batch_size`` images and about
    ``MAX_REQUEST_PAYLOAD_BYTES`` (a single larger image still goes alone)."""
    chunks: list[list[str]] = []
    current: list[str] = []
    size = 0
    for data in encoded:
        if current and (len(current) >= batch_size or size + len(data) > MAX_REQUEST_PAYLOAD_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(data)
        size += len(data)
    if current:
        chunks.append(current)
    return chunks
