"""The embedding service's parts without models: request signing, the dynamic batcher, the
SSRF address check and the worker's HTTP client (retries, error mapping) over httpx's mock
transport."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest

from scenedex.adapters.http_embedder import EmbedServiceClient, HttpImageEmbedder, HttpTextEmbedder
from scenedex.adapters.request_signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    SignatureVerifier,
    canonical_request,
    sign,
    signed_headers,
)
from scenedex.adapters.url_fetch import is_public_address
from scenedex.api.embed_batcher import DynamicBatcher
from scenedex.api.embed_fetch import ImageInputError, decode_base64
from scenedex.domain.errors import BadInputError, ModelLoadError, PermanentError, TransientError

SECRET = "unit-test-secret-0123456789abcdef"

# ----------------------------------------------------------------------------- signing


def test_signature_is_hmac_sha256_of_the_documented_string() -> None:
    body = b'{"texts": ["x"]}'
    expected_string = f"POST\n/v1/embed/text\n{hashlib.sha256(body).hexdigest()}\n1700000000"
    assert canonical_request("post", "/v1/embed/text", body, 1700000000) == expected_string
    expected = hmac.new(SECRET.encode(), expected_string.encode(), hashlib.sha256).hexdigest()
    assert sign(SECRET, "POST", "/v1/embed/text", body, 1700000000) == expected
    headers = signed_headers(SECRET, "POST", "/v1/embed/text", body, now=1700000000.7)
    assert headers == {TIMESTAMP_HEADER: "1700000000", SIGNATURE_HEADER: expected}


def test_verifier_window_replay_and_tampering() -> None:
    now = [1_000_000.0]
    verifier = SignatureVerifier(SECRET, window_s=120, clock=lambda: now[0])
    body = b"{}"

    def headers(at: float) -> tuple[str, str]:
        h = signed_headers(SECRET, "POST", "/v1/embed/image", body, now=at)
        return h[TIMESTAMP_HEADER], h[SIGNATURE_HEADER]

    timestamp, signature = headers(now[0] - 60)
    verifier.verify("POST", "/v1/embed/image", body, timestamp, signature)
    with pytest.raises(SignatureError, match="replayed"):
        verifier.verify("POST", "/v1/embed/image", body, timestamp, signature)
    with pytest.raises(SignatureError, match="window"):
        verifier.verify("POST", "/v1/embed/image", body, *headers(now[0] - 121))
    with pytest.raises(SignatureError, match="window"):
        verifier.verify("POST", "/v1/embed/image", body, *headers(now[0] + 121))
    with pytest.raises(SignatureError, match="does not match"):
        verifier.verify("POST", "/v1/embed/image", b"{ }", *headers(now[0]))
    with pytest.raises(SignatureError, match="missing"):
        verifier.verify("POST", "/v1/embed/image", body, None, "ab")
    with pytest.raises(SignatureError, match="integer"):
        verifier.verify("POST", "/v1/embed/image", body, "soon", "ab")
    # Remembered signatures are forgotten once they can no longer be valid.
    now[0] += 1000
    verifier.verify("POST", "/v1/embed/image", body, *headers(now[0]))
    assert len(verifier._seen) == 1


# ----------------------------------------------------------------------------- batcher


def run_batcher(enabled: bool, clients: int = 8, max_wait_s: float = 0.05) -> list[int]:
    sizes: list[int] = []

    def double(items: list[int]) -> list[int]:
        time.sleep(0.01)
        return [2 * i for i in items]

    async def main() -> list[list[int]]:
        batcher = DynamicBatcher(
            double,
            executor=ThreadPoolExecutor(1),
            max_batch=4,
            max_wait_s=max_wait_s,
            enabled=enabled,
            observe=lambda size, waits: sizes.append(size),
        )
        try:
            return list(await asyncio.gather(*(batcher.submit([i]) for i in range(clients))))
        finally:
            await batcher.close()

    results = asyncio.run(main())
    assert results == [[2 * i] for i in range(clients)]  # each caller gets its own result, in order
    return sizes


def test_batcher_coalesces_concurrent_single_items_up_to_max_batch() -> None:
    sizes = run_batcher(enabled=True)
    assert sum(sizes) == 8 and max(sizes) == 4 and len(sizes) == 2


def test_batcher_off_runs_each_request_alone() -> None:
    assert run_batcher(enabled=False) == [1] * 8


def test_batcher_failure_fails_every_item_of_the_batch_only() -> None:
    calls: list[list[int]] = []

    def flaky(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory")
        return items

    async def main() -> tuple[list[Any], list[int]]:
        batcher = DynamicBatcher(flaky, executor=ThreadPoolExecutor(1), max_batch=8, max_wait_s=0.02)
        first = await asyncio.gather(batcher.submit([1]), batcher.submit([2]), return_exceptions=True)
        second = await batcher.submit([3, 4])
        await batcher.close()
        return first, second

    first, second = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in first)
    assert second == [3, 4]


# ----------------------------------------------------------------------------- SSRF and input


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", True),
    ],
)
def test_only_global_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_base64_images_are_bounded_before_decoding() -> None:
    assert decode_base64("aGVs\nbG8=", max_bytes=5) == b"hello"
    with pytest.raises(ImageInputError) as too_large:
        decode_base64("aGVsbG8h", max_bytes=5)
    assert (too_large.value.code, too_large.value.status) == ("too_large", 413)
    with pytest.raises(ImageInputError) as bad:
        decode_base64("not base64!", max_bytes=100)
    assert (bad.value.code, bad.value.status) == ("bad_image", 422)


# ----------------------------------------------------------------------------- the HTTP client

HEALTH = {
    "status": "ok",
    "max_batch_size": 2,
    "models": {
        "clip": {"model_id": "open_clip:ViT-B-32:tag", "preprocessing_id": "pre|fp16", "dim": 3},
        "text": {"model_id": "st:minilm", "dim": 2},
        "faces": {"model_id": "dlib:x", "detection_id": "hog", "dim": 128},
    },
}


class Service:
    """A scripted embedding service: answers ``script`` in order for POSTs, records requests."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=HEALTH)
        with self.lock:
            self.requests.append(request)
            step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        status, body = step
        return httpx.Response(status, json=body)

    def client(self, retries: int = 3) -> EmbedServiceClient:
        return EmbedServiceClient(
            "http://embed.test",
            secret=SECRET,
            max_retries=retries,
            backoff_s=0.001,
            transport=httpx.MockTransport(self),
        )


def batch_answer(
    *items: dict[str, Any], model_id: str = "open_clip:ViT-B-32:tag"
) -> tuple[int, dict[str, Any]]:
    return 200, {"model_id": model_id, "results": list(items)}


def test_client_signs_each_attempt_afresh_and_retries_transient_failures() -> None:
    service = Service(
        httpx.ConnectError("refused"),
        (503, {"detail": "model unavailable"}),
        batch_answer(
            {"index": 0, "embedding": [1, 0, 0]}, {"index": 1, "error": {"code": "bad_image", "message": "x"}}
        ),
    )
    image = HttpImageEmbedder(service.client(), batch_size=32)
    results = image.embed_images([b"a", b"b"])
    np.testing.assert_array_equal(results[0], np.array([1, 0, 0], dtype=np.float32))
    assert isinstance(results[1], BadInputError) and "bad_image" in str(results[1])
    assert len(service.requests) == 3
    ids = set()
    verifier = SignatureVerifier(SECRET)
    for request in service.requests:
        body = request.read()
        ids.add(json.loads(body)["request_id"])
        verifier.verify(
            "POST",
            request.url.path,
            body,
            request.headers[TIMESTAMP_HEADER],
            request.headers[SIGNATURE_HEADER],
        )
    assert len(ids) == 3  # no attempt is a replay of another


def test_client_gives_up_with_a_transient_error_and_maps_4xx() -> None:
    image = HttpImageEmbedder(
        Service(*[(502, {"detail": "bad gateway"})] * 3).client(retries=2), batch_size=8
    )
    with pytest.raises(TransientError, match="after 3 attempts"):
        image.embed_images([b"a"])
    unauthorised = HttpTextEmbedder(Service((401, {"detail": "unauthorised: replayed"})).client(), 8)
    with pytest.raises(ModelLoadError, match="HMAC_SECRET"):
        unauthorised.embed_texts(["x"])
    refused = HttpTextEmbedder(Service((400, {"detail": "nope"})).client(), 8)
    with pytest.raises(PermanentError, match="400"):
        refused.embed_texts(["x"])


def test_client_batches_by_the_service_limit_and_keeps_order() -> None:
    service = Service(
        batch_answer({"index": 1, "embedding": [0, 1, 0]}, {"index": 0, "embedding": [1, 0, 0]}),
        batch_answer({"index": 0, "embedding": [0, 0, 1]}),
    )
    image = HttpImageEmbedder(service.client(), batch_size=32)
    results = image.embed_images([b"a", b"b", b"c"])
    assert [json.loads(r.read())["images"].__len__() for r in service.requests] == [2, 1]  # max_batch_size 2
    assert [int(np.argmax(v)) for v in results] == [0, 1, 2]  # type: ignore[arg-type]
    assert (image.model_id, image.preprocessing_id, image.dim) == ("open_clip:ViT-B-32:tag", "pre|fp16", 3)


def test_client_refuses_answers_from_another_model() -> None:
    service = Service(batch_answer({"index": 0, "embedding": [1, 0, 0]}, model_id="open_clip:ViT-L-14:other"))
    with pytest.raises(ModelLoadError, match="restart the worker"):
        HttpImageEmbedder(service.client(), batch_size=8).embed_images([b"a"])


def test_unreachable_service_is_a_model_load_error_at_boot() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    client = EmbedServiceClient(
        "http://embed.test",
        secret=SECRET,
        max_retries=1,
        backoff_s=0.001,
        transport=httpx.MockTransport(down),
    )
    with pytest.raises(ModelLoadError, match="unusable"):
        HttpTextEmbedder(client, 8).load()
