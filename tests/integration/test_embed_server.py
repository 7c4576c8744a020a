"""The embedding service as clients see it: a real uvicorn server on loopback with the real
models (CLIP ViT-B-32 with explicitly untrained weights, all-MiniLM-L6-v2, dlib), requests
signed as documented, and the worker's http embedder backend against it."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from scenedex.adapters.request_signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, signed_headers
from scenedex.api import ApiConfigError
from scenedex.api.embed_app import EmbedModels, create_embed_app
from scenedex.api.serve import serve_in_thread
from scenedex.application.wiring import http_embedders
from scenedex.domain.errors import BadInputError
from scenedex.settings import Settings
from tests.conftest import REAL_MEDIA

pytestmark = [pytest.mark.integration, pytest.mark.models]

SECRET = "test-secret-of-at-least-32-bytes!!"
MAX_IMAGE_BYTES = 1_000_000


def real_or_sample(name: str) -> bytes:
    path = REAL_MEDIA / name
    if path.is_file():
        return path.read_bytes()
    pytest.skip(f"real sample media not found at {path}")


def png(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def bomb_png() -> bytes:
    """A 12000x12000 (144 Mpx) 1-bit PNG of a few kB: over the 50 Mpx pixel limit."""
    buffer = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def settings_for(**embed: Any) -> Settings:
    return Settings(
        clip={"pretrained": "none", "precision": "fp32"},
        text={"precision": "fp32"},
        embed={
            "hmac_secret": SECRET,
            "max_batch_size": 4,
            "max_image_size_bytes": MAX_IMAGE_BYTES,
            "allowed_hosts": ["127.0.0.1", "localhost"],
            **embed,
        },
    )


@pytest.fixture(scope="module")
def models() -> EmbedModels:
    built = EmbedModels.from_settings(settings_for())
    built.load()
    return built


@pytest.fixture(scope="module")
def storage_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("storage")
    (root / "cat.png").write_bytes(real_or_sample("chelsea.png"))
    return root


@pytest.fixture(scope="module")
def server(models: EmbedModels, storage_root: Path) -> Iterator[tuple[str, Any]]:
    settings = settings_for(allowed_storage_roots=[storage_root.as_uri()])
    app = create_embed_app(settings, models)
    with serve_in_thread(app) as url:
        yield url, app


class Signed:
    """A client signing as the README documents (not through the adapter's code path)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=120)

    def post(self, path: str, payload: dict[str, Any], **headers: str) -> httpx.Response:
        # A fresh request_id per call: the same body signed in the same second is a replay.
        body = json.dumps({"request_id": uuid.uuid4().hex, **payload}).encode()
        timestamp = str(int(time.time()))
        auth = {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(SECRET, "POST", path, body, timestamp)}
        return self.http.post(
            path, content=body, headers={"Content-Type": "application/json", **auth, **headers}
        )


@pytest.fixture(scope="module")
def client(server: tuple[str, Any]) -> Signed:
    return Signed(server[0])


# ----------------------------------------------------------------------------- endpoints


def test_health_reports_models_ids_dims_device_dtype_and_limits(server: tuple[str, Any]) -> None:
    health = httpx.get(f"{server[0]}/health").json()
    assert health["status"] == "ok"
    assert health["max_batch_size"] == 4
    clip, text, faces = (health["models"][role] for role in ("clip", "text", "faces"))
    assert clip["name"] == "ViT-B-32" and clip["model_id"] == "open_clip:ViT-B-32:untrained"
    assert clip["dim"] == 512 and clip["device"] == "cpu" and clip["dtype"] == "fp32"
    assert clip["preprocessing_id"].endswith("|fp32")
    assert (
        text["model_id"].startswith("sentence-transformers:all-MiniLM-L6-v2:sha256-") and text["dim"] == 384
    )
    assert (
        faces["model_id"].startswith("dlib:")
        and faces["detection_id"].startswith("hog-")
        and faces["dim"] == 128
    )


def test_image_by_base64_matches_the_local_adapter(client: Signed, models: EmbedModels) -> None:
    data = real_or_sample("astronaut.png")
    answer = client.post("/v1/embed/image", {"image": {"data": b64(data)}, "request_id": "req-1"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["request_id"] == "req-1" and body["model_id"] == "open_clip:ViT-B-32:untrained"
    vector = np.asarray(body["embedding"], dtype=np.float32)
    local = models.clip.embed_images([data])[0]
    assert vector.shape == (512,)
    np.testing.assert_allclose(vector, local, atol=1e-6)
    raw = client.post("/v1/embed/image", {"image": {"data": b64(data)}, "normalize": False}).json()
    assert abs(np.linalg.norm(raw["embedding"]) - 1) > 1e-3  # not normalised


def test_batch_with_one_bad_item_fails_only_that_item(client: Signed) -> None:
    good = [real_or_sample("coffee.png"), real_or_sample("rocket.jpg")]
    images = [{"data": b64(good[0])}, {"data": b64(b"not an image at all")}, {"data": b64(good[1])}]
    answer = client.post("/v1/embed/image-batch", {"images": images, "request_id": "b"})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert results[1]["error"]["code"] == "bad_image" and "embedding" not in results[1]
    single = client.post("/v1/embed/image", {"image": {"data": b64(good[1])}}).json()["embedding"]
    np.testing.assert_allclose(results[2]["embedding"], single, atol=1e-5)
    assert len(results[0]["embedding"]) == 512


def test_batch_over_max_batch_size_is_refused(client: Signed) -> None:
    images = [{"data": b64(png(8, 8))}] * 5
    answer = client.post("/v1/embed/image-batch", {"images": images})
    assert answer.status_code == 422 and "at most 4" in answer.json()["detail"]


def test_text_through_both_models_normalised_or_not(client: Signed, models: EmbedModels) -> None:
    texts = ["a cat on a sofa", "cyclists riding down a busy street"]
    answer = client.post("/v1/embed/text", {"texts": texts, "models": ["clip", "text"]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    clip = np.asarray(body["embeddings"]["clip"], dtype=np.float32)
    text = np.asarray(body["embeddings"]["text"], dtype=np.float32)
    assert clip.shape == (2, 512) and text.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(text, models.text.embed_texts(texts), atol=1e-6)
    assert body["model_ids"] == {"clip": models.clip.model_id, "text": models.text.model_id}
    only_text = client.post("/v1/embed/text", {"texts": "one text"}).json()
    assert list(only_text["embeddings"]) == ["text"] and len(only_text["embeddings"]["text"]) == 1
    # all-MiniLM-L6-v2's own pipeline ends in a Normalize layer; CLIP's text tower does not.
    raw = client.post("/v1/embed/text", {"texts": "one text", "models": ["clip"], "normalize": False}).json()
    assert abs(np.linalg.norm(raw["embeddings"]["clip"][0]) - 1) > 1e-3
    assert client.post("/v1/embed/text", {"texts": ["ok", "  "]}).status_code == 422
    assert client.post("/v1/embed/text", {"texts": ["a"], "models": ["gpt"]}).status_code == 422


def test_faces_of_one_image(client: Signed) -> None:
    answer = client.post("/v1/embed/faces", {"image": {"data": b64(real_or_sample("astronaut.png"))}})
    assert answer.status_code == 200, answer.text
    faces = answer.json()["faces"]
    assert len(faces) == 1
    left, top, right, bottom = faces[0]["bbox"]
    assert 0 <= left < right and 0 <= top < bottom
    assert len(faces[0]["descriptor"]) == 128
    assert np.linalg.norm(faces[0]["descriptor"]) > 1.2  # raw dlib descriptor (norm ~1.45)
    assert client.post("/v1/embed/faces", {"image": {"data": b64(png(64, 64))}}).json()["faces"] == []
    bad = client.post("/v1/embed/faces", {"image": {"data": b64(b"\x89PNG broken")}})
    assert bad.status_code == 422 and bad.json()["detail"]["code"] == "bad_image"


def test_oversize_and_bomb_images_are_refused(client: Signed) -> None:
    oversize = client.post("/v1/embed/image", {"image": {"data": b64(b"\xff" * (MAX_IMAGE_BYTES + 1))}})
    assert oversize.status_code == 413 and oversize.json()["detail"]["code"] == "too_large"
    bomb = bomb_png()
    assert len(bomb) < MAX_IMAGE_BYTES
    refused = client.post("/v1/embed/image", {"image": {"data": b64(bomb)}})
    assert refused.status_code == 422 and "pixels" in refused.json()["detail"]["message"]
    batch = client.post(
        "/v1/embed/image-batch", {"images": [{"data": b64(bomb)}, {"data": b64(png(32, 32))}]}
    )
    codes = [r.get("error", {}).get("code") for r in batch.json()["results"]]
    assert codes == ["bad_image", None]


def test_invalid_bodies_are_422_without_echoing_the_image(client: Signed) -> None:
    both = client.post("/v1/embed/image", {"image": {"data": "AAAA", "url": "http://x/y.png"}})
    assert both.status_code == 422 and "exactly one" in json.dumps(both.json())
    not_b64 = client.post("/v1/embed/image", {"image": {"data": "%%% not base64 %%%"}})
    assert not_b64.status_code == 422 and not_b64.json()["detail"]["code"] == "bad_image"
    unknown = client.post("/v1/embed/image", {"image": {"data": "QUJD"}, "colour": "red"})
    assert unknown.status_code == 422 and "QUJD" not in unknown.text


# ----------------------------------------------------------------------------- URLs and SSRF


@pytest.fixture(scope="module")
def image_host() -> Iterator[str]:
    """A plain HTTP server on loopback serving one PNG at /cat.png (and 404 elsewhere)."""
    data = real_or_sample("chelsea.png")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/cat.png":
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.end_headers()
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_url_to_a_private_address_is_refused(client: Signed, image_host: str) -> None:
    answer = client.post("/v1/embed/image", {"image": {"url": f"{image_host}/cat.png"}})
    assert answer.status_code == 422
    assert (
        answer.json()["detail"]["code"] == "url_not_allowed"
        and "private" in answer.json()["detail"]["message"]
    )
    metadata = client.post("/v1/embed/image", {"image": {"url": "http://169.254.169.254/latest/meta-data/"}})
    assert metadata.status_code == 422 and metadata.json()["detail"]["code"] == "url_not_allowed"
    for url in ("file:///etc/passwd", "gopher://127.0.0.1/", "http://example.invalid/cat.png"):
        refused = client.post("/v1/embed/image", {"image": {"url": url}})
        assert refused.status_code == 422 and refused.json()["detail"]["code"] == "url_not_allowed", url


def test_url_on_an_allowed_host_is_fetched_when_private_addresses_are_allowed(
    client: Signed, server: tuple[str, Any], image_host: str
) -> None:
    fetcher = server[1].state.embed.fetcher
    policy = fetcher.policy
    fetcher.policy = replace(policy, allow_private_addresses=True)
    try:
        by_url = client.post("/v1/embed/image", {"image": {"url": f"{image_host}/cat.png"}})
        missing = client.post("/v1/embed/image", {"image": {"url": f"{image_host}/nothing.png"}})
        redirect = client.post("/v1/embed/image", {"image": {"url": f"{image_host}/redirect"}})
    finally:
        fetcher.policy = policy
    by_data = client.post("/v1/embed/image", {"image": {"data": b64(real_or_sample("chelsea.png"))}})
    assert by_url.status_code == 200, by_url.text
    np.testing.assert_allclose(by_url.json()["embedding"], by_data.json()["embedding"], atol=1e-5)
    assert missing.status_code == 422 and missing.json()["detail"]["code"] == "not_found"
    assert redirect.status_code == 502 and "redirect" in redirect.json()["detail"]["message"]


def test_storage_root_uris_are_read_and_others_refused(client: Signed, storage_root: Path) -> None:
    inside = client.post("/v1/embed/image", {"image": {"url": (storage_root / "cat.png").as_uri()}})
    assert inside.status_code == 200, inside.text
    escape = client.post("/v1/embed/image", {"image": {"url": storage_root.as_uri() + "/../cat.png"}})
    assert escape.status_code == 422 and escape.json()["detail"]["code"] == "url_not_allowed"
    absent = client.post("/v1/embed/image", {"image": {"url": (storage_root / "none.png").as_uri()}})
    assert absent.status_code == 422 and absent.json()["detail"]["code"] == "not_found"


# ----------------------------------------------------------------------------- auth


def test_signature_missing_wrong_expired_and_replayed_are_401(server: tuple[str, Any]) -> None:
    http_client = httpx.Client(base_url=server[0], timeout=60)
    path = "/v1/embed/text"
    body = json.dumps({"texts": ["signed"], "request_id": uuid.uuid4().hex}).encode()
    plain = {"Content-Type": "application/json"}

    missing = http_client.post(path, content=body, headers=plain)
    assert missing.status_code == 401 and "missing" in missing.json()["detail"]

    wrong = signed_headers("another-secret-of-32-bytes-length", "POST", path, body)
    assert http_client.post(path, content=body, headers={**plain, **wrong}).status_code == 401

    other_path = signed_headers(SECRET, "POST", "/v1/embed/image", body)
    assert http_client.post(path, content=body, headers={**plain, **other_path}).status_code == 401

    expired = signed_headers(SECRET, "POST", path, body, now=time.time() - 121)
    answer = http_client.post(path, content=body, headers={**plain, **expired})
    assert answer.status_code == 401 and "window" in answer.json()["detail"]

    fresh = signed_headers(SECRET, "POST", path, body)
    assert http_client.post(path, content=body, headers={**plain, **fresh}).status_code == 200
    replay = http_client.post(path, content=body, headers={**plain, **fresh})
    assert replay.status_code == 401 and "replayed" in replay.json()["detail"]

    tampered = http_client.post(path, content=body.replace(b"signed", b"SIGNED"), headers={**plain, **fresh})
    assert tampered.status_code == 401

    assert httpx.get(f"{server[0]}/health").status_code == 200  # health and metrics are open


def test_missing_secret_is_a_startup_error_unless_insecure_is_explicit(models: EmbedModels) -> None:
    settings = settings_for(hmac_secret=None)
    with pytest.raises(ApiConfigError, match="HMAC_SECRET"):
        create_embed_app(settings, models)
    insecure = settings_for(hmac_secret=None, allow_insecure_auth=True)
    with serve_in_thread(create_embed_app(insecure, models)) as url:
        answer = httpx.post(f"{url}/v1/embed/text", json={"texts": ["unsigned"]}, timeout=60)
        assert answer.status_code == 200
        assert httpx.get(f"{url}/health").json()["auth"] == "none (insecure)"


def test_request_body_over_the_limit_is_413(models: EmbedModels) -> None:
    settings = settings_for(max_request_bytes=4096)
    with serve_in_thread(create_embed_app(settings, models)) as url:
        body = json.dumps({"image": {"data": b64(b"\xff" * 8000)}}).encode()
        headers = {
            "Content-Type": "application/json",
            **signed_headers(SECRET, "POST", "/v1/embed/image", body),
        }
        assert httpx.post(f"{url}/v1/embed/image", content=body, headers=headers).status_code == 413


def test_metrics_count_requests_batches_and_errors(client: Signed, server: tuple[str, Any]) -> None:
    client.post("/v1/embed/image", {"image": {"data": b64(png(16, 16))}})
    client.post("/v1/embed/image", {"image": {"data": b64(b"junk")}})
    text = httpx.get(f"{server[0]}/metrics").text
    assert 'scenedex_embed_requests_total{endpoint="/v1/embed/image",status="200"}' in text
    assert 'scenedex_embed_item_errors_total{code="bad_image",endpoint="/v1/embed/image"}' in text
    assert "scenedex_embed_batch_size_count" in text and "scenedex_embed_queue_wait_seconds_bucket" in text
    assert 'scenedex_embed_request_seconds_count{endpoint="/v1/embed/image"}' in text


# ----------------------------------------------------------------------------- the worker's client


def test_http_embedders_report_the_service_ids_and_map_item_errors(
    server: tuple[str, Any], models: EmbedModels
) -> None:
    settings = settings_for()
    settings = settings.model_copy(
        update={"embedder": settings.embedder.model_copy(update={"backend": "http", "url": server[0]})}
    )
    image, text, faces = http_embedders(settings)
    assert (image.model_id, image.preprocessing_id) == (models.clip.model_id, models.clip.preprocessing_id)
    assert (text.model_id, faces.model_id, faces.detection_id) == (
        models.text.model_id,
        models.faces.model_id,
        models.faces.detection_id,
    )
    data = [real_or_sample("coffee.png"), b"corrupt", real_or_sample("rocket.jpg")] * 2  # 6 > max batch 4
    results = image.embed_images(data)
    assert [type(r).__name__ for r in results] == ["ndarray", "BadInputError"] * 1 + ["ndarray"] + [
        "ndarray",
        "BadInputError",
        "ndarray",
    ]
    local = models.clip.embed_images(data)
    for remote_vector, local_vector in zip(results, local, strict=True):
        if isinstance(local_vector, BadInputError):
            assert isinstance(remote_vector, BadInputError)
        else:
            np.testing.assert_allclose(remote_vector, local_vector, atol=1e-5)
    found = faces.detect_faces([real_or_sample("astronaut.png"), b"corrupt"])
    assert isinstance(found[1], BadInputError) and not isinstance(found[0], BadInputError)
    np.testing.assert_allclose(
        found[0][0].descriptor,
        models.faces.detect_faces([real_or_sample("astronaut.png")])[0][0].descriptor,
        atol=1e-6,
    )
    np.testing.assert_allclose(image.encode_text(["a dog"]), models.clip.encode_text(["a dog"]), atol=1e-6)


# ----------------------------------------------------------------------------- http vs local reprocess

KEYFRAMES = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")


def seed_owner(engine: Any, blobs: Any, tmp_path: Path) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """One owner: a video of four scenes (real keyframes, transcripts) and a person with two
    photos (astronaut and its mirror)."""
    from PIL import ImageOps

    from scenedex.adapters.db.repositories import SqlUnitOfWorkFactory
    from scenedex.domain.model import Scene, Video, new_id
    from scenedex.services.ingest import keyframe_key
    from scenedex.services.persons import Persons, PhotoUpload

    owner, video_id = new_id(), new_id()
    uow_factory = SqlUnitOfWorkFactory(engine)
    scenes = []
    for ordinal, name in enumerate(KEYFRAMES):
        data = real_or_sample(name)
        scenes.append(
            Scene(
                id=new_id(),
                video_id=video_id,
                owner_id=owner,
                ordinal=ordinal,
                start_s=2.0 * ordinal,
                end_s=2.0 * ordinal + 2,
                keyframe_uri=blobs.write(keyframe_key(owner, video_id, ordinal), data),
                keyframe_sha256=hashlib.sha256(data).hexdigest(),
                transcript=f"scene {ordinal}: {name.split('.')[0]} on screen",
                summary="a short clip" if ordinal % 2 else "",
            )
        )
    with uow_factory() as uow:
        uow.videos.add(
            Video(id=video_id, owner_id=owner, title="clip", source_uri="file:///x.mp4", duration_s=8.0)
        )
        uow.scenes.add_many(scenes)
        uow.commit()
    photo = tmp_path / "astronaut.png"
    photo.write_bytes(real_or_sample("astronaut.png"))
    mirrored = tmp_path / "astronaut-mirrored.png"
    ImageOps.mirror(Image.open(photo)).save(mirrored)
    persons = Persons(
        uow_factory=uow_factory, blobs=blobs, max_image_bytes=2**25, max_image_pixels=50_000_000
    )
    persons.create(owner, "Eileen", [PhotoUpload.from_file(photo), PhotoUpload.from_file(mirrored)])
    return owner, [scene.id for scene in scenes]


def snapshot(services: Any, owner: uuid.UUID) -> dict[tuple[str, str, str], Any]:
    """Every derived record of ``owner``: (step, subject, key) -> record."""
    from scenedex.domain.spec import EmbeddingStepType

    records = {}
    with services.uow_factory() as uow:
        persons = uow.persons.list(owner)
        photos = uow.persons.list_photos(owner)
        scenes = [s for v in uow.videos.list(owner) for s in uow.scenes.list_for_video(owner, v.id)]
        subjects = {
            EmbeddingStepType.PERSON_PHOTO_EMBEDDINGS: [p.id for p in photos],
            EmbeddingStepType.PERSON_QUERY_EMBEDDINGS: [p.id for p in persons],
            EmbeddingStepType.SCENE_TEXT_EMBEDDINGS: [s.id for s in scenes],
            EmbeddingStepType.SCENE_CLIP_EMBEDDINGS: [s.id for s in scenes],
            EmbeddingStepType.SCENE_PERSON_EMBEDDINGS: [s.id for s in scenes],
        }
        for step, ids in subjects.items():
            for (subject, key), record in uow.records.get(step, owner, ids).items():
                records[(step.value, str(subject), key)] = record
    return records


def local_services(settings: Settings, models: EmbedModels, engine: Any, blobs: Any) -> Any:
    """Services on ``engine`` and ``blobs`` with the in-process model adapters of ``models``."""
    from scenedex.application import build_services

    return build_services(
        settings,
        engine=engine,
        blobs=blobs,
        image_embedder=models.clip,
        text_embedder=models.text,
        face_embedder=models.faces,
    )


def with_backend(settings: Settings, url: str) -> Settings:
    return settings.model_copy(
        update={"embedder": settings.embedder.model_copy(update={"backend": "http", "url": url})}
    )


def test_reprocess_through_http_and_local_writes_identical_embeddings_and_fingerprints(
    server: tuple[str, Any], models: EmbedModels, postgres_engine: Any, tmp_path: Path
) -> None:
    from scenedex.adapters.storage import FsspecBlobStore
    from scenedex.application import build_services
    from scenedex.domain.request import ReprocessRequest, ReprocessScope
    from tests.conftest import truncate_all

    truncate_all(postgres_engine)
    blobs = FsspecBlobStore(str(tmp_path / "media"))
    owner, _ = seed_owner(postgres_engine, blobs, tmp_path)
    request = ReprocessRequest(scope=ReprocessScope.OWNER, owner_id=owner)
    settings = settings_for()
    local = local_services(settings, models, postgres_engine, blobs)
    remote = build_services(with_backend(settings, server[0]), engine=postgres_engine, blobs=blobs)
    assert type(remote.image_embedder).__name__ == "HttpImageEmbedder"
    assert remote.spec == local.spec and remote.spec.version == local.spec.version

    first = local.runner().run(request)
    assert first.ok, first.errors
    local_records = snapshot(local, owner)
    assert len(local_records) >= 4 + 4 + 4 + 2 + 1  # clip, person, >= 1 text channel per scene, photos, query

    current = remote.runner().plan(request).to_dict()
    assert all(step["missing"] == 0 and step["stale"] == 0 for step in current["steps"]), current

    forced = remote.runner().run(ReprocessRequest(scope=ReprocessScope.OWNER, owner_id=owner, force=True))
    assert forced.ok, forced.errors
    assert sum(c.computed for c in forced.steps.values()) >= len(local_records)
    remote_records = snapshot(remote, owner)
    assert remote_records.keys() == local_records.keys()
    for key, record in remote_records.items():
        before = local_records[key]
        assert (record.fingerprint, record.input_hash, record.model_id) == (
            before.fingerprint,
            before.input_hash,
            before.model_id,
        ), key
        if before.vector is None:
            assert record.vector is None, key
        else:
            np.testing.assert_allclose(record.vector, before.vector, atol=1e-5, err_msg=str(key))
        assert record.payload.keys() == before.payload.keys(), key
    face_boxes = [
        r.payload.get("faces") for k, r in remote_records.items() if k[0] == "scene_person_embeddings"
    ]
    assert face_boxes == [
        local_records[k].payload.get("faces") for k in remote_records if k[0] == "scene_person_embeddings"
    ]


def test_a_model_change_on_the_service_makes_exactly_its_records_stale(
    models: EmbedModels, postgres_engine: Any, tmp_path: Path
) -> None:
    """The service now runs CLIP in bf16: its preprocessing id changes, so the worker's spec
    marks the CLIP step (and the index documents built from it) stale, and nothing else."""
    from scenedex.adapters.clip import OpenClipImageEmbedder
    from scenedex.adapters.storage import FsspecBlobStore
    from scenedex.application import build_services
    from scenedex.domain.request import ReprocessRequest, ReprocessScope
    from tests.conftest import truncate_all

    truncate_all(postgres_engine)
    blobs = FsspecBlobStore(str(tmp_path / "media"))
    owner, scene_ids = seed_owner(postgres_engine, blobs, tmp_path)
    request = ReprocessRequest(scope=ReprocessScope.OWNER, owner_id=owner)
    settings = settings_for()
    local = local_services(settings, models, postgres_engine, blobs)
    assert local.runner().run(request).ok
    bf16 = OpenClipImageEmbedder(
        "ViT-B-32", "none", device="cpu", precision="bf16", max_bytes=MAX_IMAGE_BYTES
    )
    changed = replace(models, clip=bf16)
    with serve_in_thread(create_embed_app(settings, changed)) as url:
        remote = build_services(with_backend(settings, url), engine=postgres_engine, blobs=blobs)
        plan = {s["step"]: s for s in remote.runner().plan(request).to_dict()["steps"]}
        assert plan["scene_clip_embeddings"]["stale"] == len(scene_ids)
        assert plan["search_reindex"]["stale"] == len(scene_ids)
        for step in ("person_photo_embeddings", "person_query_embeddings", "scene_text_embeddings"):
            assert plan[step]["stale"] == 0 and plan[step]["missing"] == 0, plan[step]
        rerun = remote.runner().run(request)
    assert rerun.ok, rerun.errors
    counts = {step.value: c.computed for step, c in rerun.steps.items()}
    assert counts["scene_clip_embeddings"] == len(scene_ids) and counts["scene_text_embeddings"] == 0


class RecordingFaces:
    """The real face embedder, recording how many images each ``detect_faces`` call got."""

    def __init__(self, faces: Any) -> None:
        self.faces = faces
        self.model_id, self.detection_id = faces.model_id, faces.detection_id
        self.calls: list[int] = []

    def detect_faces(self, images: Any) -> Any:
        self.calls.append(len(images))
        time.sleep(0.05)  # a slower device: requests arrive while a call runs
        return self.faces.detect_faces(images)


@pytest.mark.parametrize("batched", [True, False])
def test_concurrent_face_requests_share_one_detection_call(models: EmbedModels, batched: bool) -> None:
    """Eight concurrent ``/v1/embed/faces`` requests: with the batcher on they are answered by
    fewer ``detect_faces`` calls of several images each (dlib's threads, or the torch runtime's
    batched networks, see the whole batch), with the same faces as a lone request; off, one
    image per call."""
    recording = RecordingFaces(models.faces)
    app = create_embed_app(
        settings_for(batcher_enabled=batched, batcher_max_wait_ms=50), replace(models, faces=recording)
    )
    image = real_or_sample("astronaut.png")
    with serve_in_thread(app) as url:
        signed = Signed(url)
        lone = signed.post("/v1/embed/faces", {"image": {"data": b64(image)}}).json()["faces"]
        recording.calls.clear()
        barrier = threading.Barrier(8)
        answers: list[httpx.Response] = []

        def one() -> None:
            client = Signed(url)
            barrier.wait()
            answers.append(client.post("/v1/embed/faces", {"image": {"data": b64(image)}}))

        threads = [threading.Thread(target=one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [a.status_code for a in answers] == [200] * 8
    assert all(a.json()["faces"] == lone for a in answers) and len(lone) == 1
    assert sum(recording.calls) == 8
    if batched:
        assert len(recording.calls) < 8 and max(recording.calls) > 1, recording.calls
    else:
        assert recording.calls == [1] * 8
