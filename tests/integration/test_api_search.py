"""The search endpoints (text, person, image) and the keyframes of their hits, through FastAPI's
TestClient against real Postgres and Redis, with the fake embedders of ``tests.job_harness``
(the fake CLIP hashes the image bytes: the same image is the nearest scene, cosine 1).
Also the token rules on ``exp``. Every refusal is a 4xx JSON answer, never a 500."""

from __future__ import annotations

import hashlib
import io
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image

from scenedex.adapters.db import tables as t
from scenedex.api import create_app
from scenedex.domain.model import Scene
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.settings import Settings
from tests.fakes import face_image
from tests.integration.test_api import HIT_FIELDS, JOBS, OWNER_A, OWNER_B, api_settings, bearer, make_token
from tests.job_harness import Harness
from tests.problems import problem

pytestmark = pytest.mark.integration

IMAGE_SEARCH = "/v1/search/image"
IMAGE_BY_URI = "/v1/search/image-by-uri"
EXTERNAL_ID = "catalog-4711"


def jpeg(color: tuple[int, int, int], size: tuple[int, int] = (32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that announces ``width x height`` pixels and holds none (a decompression bomb's
    header: refused before any pixel is decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@dataclass
class SearchApi:
    harness: Harness
    client: TestClient
    frames: list[bytes]
    scenes: list[Scene]
    video_b: uuid.UUID

    def user(self, owner: uuid.UUID = OWNER_A) -> dict[str, str]:
        return bearer(make_token(owner, ()))

    def upload(self, data: bytes, owner: uuid.UUID = OWNER_A, **params: Any) -> Any:
        return self.client.post(
            IMAGE_SEARCH,
            params=params,
            files={"image": ("query.jpg", data, "image/jpeg")},
            headers=self.user(owner),
        )


def jpeg_library(harness: Harness) -> tuple[list[bytes], list[Scene], uuid.UUID]:
    """Owner A: a video (with an ``external_id``) of three scenes with real JPEG keyframes, and
    a video with a person; owner B: one video. Everything reprocessed (indexed)."""
    world = harness.world
    frames = [jpeg((200, 30, 30)), jpeg((30, 200, 30)), jpeg((30, 30, 200))]
    video, scenes = world.add_video(OWNER_A, frames, transcripts=["red", "green", "blue"])
    with harness.engine.begin() as connection:
        connection.execute(
            sa.update(t.videos).where(t.videos.c.id == video.id).values(external_id=EXTERNAL_ID)
        )
    world.add_person(OWNER_A, "alice", [face_image("alice", salt="p")])
    world.add_video(OWNER_A, [face_image("alice", salt="s")], transcripts=["alice speaks"])
    video_b, _ = world.add_video(OWNER_B, [jpeg((30, 200, 30))], transcripts=["green too"])
    world.runner().run(ReprocessRequest(ReprocessScope.ALL))
    return frames, scenes, video_b.id


@pytest.fixture
def api(harness: Harness) -> Iterator[SearchApi]:
    app = create_app(api_settings(harness), runtime=harness.runtime)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield SearchApi(harness, client, *jpeg_library(harness))


def assert_hit(hit: dict[str, Any], scene: Scene, external_id: str | None = EXTERNAL_ID) -> None:
    assert set(hit) == HIT_FIELDS
    assert hit["scene_id"] == str(scene.id) and hit["video_id"] == str(scene.video_id)
    assert (hit["start_s"], hit["end_s"], hit["external_id"]) == (scene.start_s, scene.end_s, external_id)
    assert hit["keyframe_url"] == f"/v1/scenes/{scene.id}/keyframe"


# -- image search ---------------------------------------------------------------------------------


def test_image_search_by_upload_and_by_the_owners_keyframe_uri(api: SearchApi) -> None:
    uploaded = api.upload(api.frames[1], k=2)
    assert uploaded.status_code == 200, uploaded.text
    hits = uploaded.json()["results"]
    assert len(hits) == 2
    assert_hit(hits[0], api.scenes[1])
    assert hits[0]["score"] == pytest.approx(1.0) and hits[0]["persons"] == []
    assert hits[0]["score"] > hits[1]["score"]

    # A part without a filename (Starlette hands it over as text) is the same image.
    no_filename = api.client.post(
        IMAGE_SEARCH, params={"k": 1}, files={"image": (None, api.frames[1])}, headers=api.user()
    )
    assert no_filename.status_code == 200, no_filename.text
    assert no_filename.json()["results"][0]["score"] == pytest.approx(1.0)

    by_uri = api.scenes[2].keyframe_uri
    as_json = api.client.post(IMAGE_BY_URI, json={"keyframe_uri": by_uri}, headers=api.user())
    assert as_json.status_code == 200, as_json.text
    assert_hit(as_json.json()["results"][0], api.scenes[2])
    one = api.client.post(IMAGE_BY_URI, params={"k": 1}, json={"keyframe_uri": by_uri}, headers=api.user())
    assert [h["scene_id"] for h in one.json()["results"]] == [str(api.scenes[2].id)]
    # One media type per operation: a keyframe_uri on the upload path is 415 (it names the other).
    elsewhere = api.client.post(IMAGE_SEARCH, json={"keyframe_uri": by_uri}, headers=api.user())
    assert elsewhere.status_code == 415 and "image-by-uri" in elsewhere.json()["detail"]

    # Owner B's search sees only B's scenes, and A's blobs are as unknown to B as missing ones.
    as_b = api.upload(api.frames[1], owner=OWNER_B, k=50)
    assert as_b.status_code == 200
    assert [(h["video_id"], h["external_id"]) for h in as_b.json()["results"]] == [(str(api.video_b), None)]
    climbing = by_uri.replace(f"owners/{OWNER_A}/", f"owners/{OWNER_B}/../{OWNER_A}/")
    for uri in (
        by_uri,  # A's keyframe
        climbing,  # B's prefix on its face, A's blob once resolved
        f"memory://blobs/owners/{OWNER_B}/videos/none.jpg",  # B's prefix, nothing there
        "memory://elsewhere/x.jpg",  # outside the store
        "file:///etc/passwd",
    ):
        refused = api.client.post(IMAGE_BY_URI, json={"keyframe_uri": uri}, headers=api.user(OWNER_B))
        assert refused.status_code == 404, (uri, refused.text)


def test_every_search_hit_has_the_results_page_fields(api: SearchApi) -> None:
    as_a = api.user()
    for params in ({}, {"text": "blue", "person_id": str(uuid.uuid4())}, {"text": " "}, {"person_id": "bob"}):
        refused = api.client.get("/v1/search", params=params, headers=as_a)
        assert problem(refused, 422)["code"] in ("validation_failed", "invalid_request"), params
    by_text = api.client.get("/v1/search", params={"text": "blue", "k": 1}, headers=as_a)
    assert by_text.status_code == 200, by_text.text
    assert_hit(by_text.json()["results"][0], api.scenes[2])
    assert by_text.json()["results"][0]["appearances"] == []  # a person search's only

    with api.harness.world.uow_factory() as uow:
        [person] = uow.persons.list(OWNER_A)
    by_person = api.client.get("/v1/search", params={"person_id": str(person.id), "k": 1}, headers=as_a)
    [hit] = by_person.json()["results"]
    assert set(hit) == HIT_FIELDS and hit["external_id"] is None
    assert hit["persons"] == [{"person_id": str(person.id), "name": "alice"}]
    # the fakes' faces come from the keyframe alone: seen at the scene's middle (0-1 s), once
    assert hit["appearances"] == [{"start_s": 0.5, "end_s": 0.5}]


def test_keyframe_url_serves_the_jpeg_with_etag_and_cache_headers(api: SearchApi) -> None:
    hit = api.upload(api.frames[0], k=1).json()["results"][0]
    url = hit["keyframe_url"]
    served = api.client.get(url, headers=api.user())
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/jpeg" and served.content == api.frames[0]
    etag = served.headers["etag"]
    assert etag == f'"{hashlib.sha256(api.frames[0]).hexdigest()}"'
    assert served.headers["cache-control"].startswith("private, max-age=")

    for if_none_match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = api.client.get(url, headers={**api.user(), "If-None-Match": if_none_match})
        assert cached.status_code == 304 and cached.content == b"", if_none_match
        assert cached.headers["etag"] == etag
    stale = api.client.get(url, headers={**api.user(), "If-None-Match": '"an-older-keyframe"'})
    assert stale.status_code == 200 and stale.content == api.frames[0]

    # Owner isolation: B gets 404 for A's keyframe, exactly as for an unknown scene.
    for path, headers in [(url, api.user(OWNER_B)), (f"/v1/scenes/{uuid.uuid4()}/keyframe", api.user())]:
        refused = api.client.get(path, headers=headers)
        problem(refused, 404, "not_found")
        assert "etag" not in refused.headers
    assert api.client.get(url, headers={**api.user(OWNER_B), "If-None-Match": etag}).status_code == 404
    assert api.client.get(url).status_code == 401
    assert api.client.get("/v1/scenes/not-a-uuid/keyframe", headers=api.user()).status_code == 422

    # A keyframe whose blob is gone answers 404, not 500.
    del api.harness.world.blobs.blobs[api.scenes[0].keyframe_uri]
    assert api.client.get(url, headers=api.user()).status_code == 404


def test_image_search_refusals_are_4xx_json(api: SearchApi, harness: Harness) -> None:
    user = api.user()
    over = harness.runtime.settings.max_image_bytes + 1
    responses: dict[str, tuple[int, Any]] = {
        "no token": (401, api.client.post(IMAGE_SEARCH, files={"image": ("q.jpg", api.frames[0])})),
        "bad token": (
            401,
            api.client.post(IMAGE_BY_URI, json={"keyframe_uri": "x"}, headers=bearer("not.a.token")),
        ),
        "image over max_image_bytes": (413, api.upload(b"\xff\xd8\xff" + b"\0" * over)),
        "not an image": (415, api.upload(b"GIF89a but not really")),
        "empty image": (415, api.upload(b"")),
        "pixel bomb header": (413, api.upload(png_header_only(60_000, 60_000))),
        "over max_image_pixels": (413, api.upload(png_header_only(10_000, 6_000))),
        "text/plain": (
            415,
            api.client.post(IMAGE_SEARCH, content=b"x", headers={**user, "Content-Type": "text/plain"}),
        ),
        "no body": (415, api.client.post(IMAGE_SEARCH, headers=user)),
        "urlencoded keyframe_uri": (
            415,
            api.client.post(IMAGE_SEARCH, data={"keyframe_uri": api.scenes[0].keyframe_uri}, headers=user),
        ),
        "json on the upload path": (415, api.client.post(IMAGE_SEARCH, json={}, headers=user)),
        "image and keyframe_uri": (
            422,
            api.client.post(
                IMAGE_SEARCH,
                data={"keyframe_uri": api.scenes[0].keyframe_uri},
                files={"image": ("q.jpg", api.frames[0])},
                headers=user,
            ),
        ),
        "no image part": (
            422,
            api.client.post(IMAGE_SEARCH, files={"k": (None, "3")}, headers=user),
        ),
        "multipart keyframe_uri": (
            422,
            api.client.post(
                IMAGE_SEARCH, files={"keyframe_uri": (None, api.scenes[0].keyframe_uri)}, headers=user
            ),
        ),
        "urlencoded image": (415, api.client.post(IMAGE_SEARCH, data={"image": "abc"}, headers=user)),
        "json {}": (422, api.client.post(IMAGE_BY_URI, json={}, headers=user)),
        "json unknown field": (
            422,
            api.client.post(IMAGE_BY_URI, json={"keyframe_uri": "memory://x", "k": 3}, headers=user),
        ),
        "json not an object": (422, api.client.post(IMAGE_BY_URI, json=["x"], headers=user)),
        "broken json": (
            422,
            api.client.post(
                IMAGE_BY_URI, content=b"{nope", headers={**user, "Content-Type": "application/json"}
            ),
        ),
        "k=0": (422, api.upload(api.frames[0], k=0)),
        "k=many": (422, api.upload(api.frames[0], k="many")),
        "keyframe_uri to nothing": (
            404,
            api.client.post(IMAGE_BY_URI, json={"keyframe_uri": "memory://blobs/x.jpg"}, headers=user),
        ),
        "broken multipart": (
            400,
            api.client.post(
                IMAGE_SEARCH,
                content=b"--b\r\nContent-Disposition: form-data\r\n\r\nx",
                headers={**user, "Content-Type": "multipart/form-data; boundary=b"},
            ),
        ),
    }
    for case, (expected, response) in responses.items():
        assert response.status_code == expected, (case, response.status_code, response.text[:300])
        problem(response)
    assert "larger than" in responses["image over max_image_bytes"][1].json()["detail"]
    assert "extra_forbidden" in responses["json unknown field"][1].text

    # A multipart body over SCENEDEX_API__MAX_UPLOAD_BYTES is refused before it is parsed.
    small = api_settings(harness, max_upload_bytes=50_000)
    with TestClient(create_app(small, runtime=harness.runtime)) as client:
        too_big = client.post(IMAGE_SEARCH, files={"image": ("q.jpg", b"\0" * 60_000)}, headers=user)
        assert too_big.status_code == 413 and "larger than 50000" in too_big.json()["detail"]
        fits = client.post(IMAGE_SEARCH, files={"image": ("q.jpg", api.frames[0])}, headers=user)
        assert fits.status_code == 200
        # JSON bodies keep the 64 KiB limit.
        json_body = client.post(IMAGE_BY_URI, json={"keyframe_uri": "x" * 70_000}, headers=user)
        assert json_body.status_code == 413


def test_openapi_documents_the_search_endpoints(api: SearchApi) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    image = paths[IMAGE_SEARCH]["post"]
    assert list(image["requestBody"]["content"]) == ["multipart/form-data"]  # one media type each
    assert {"200", "401", "413", "415", "422"} <= set(image["responses"])
    by_uri = paths[IMAGE_BY_URI]["post"]
    assert list(by_uri["requestBody"]["content"]) == ["application/json"]
    assert {"200", "401", "404", "413", "422"} <= set(by_uri["responses"])
    # Scalar query parameters (no object-valued parameter, which generated clients send wrong).
    search = paths["/v1/search"]["get"]
    assert {p["name"]: p["schema"]["type"] for p in search["parameters"]} == {
        "text": "string",
        "person_id": "string",
        "k": "integer",
    }
    keyframe = paths["/v1/scenes/{scene_id}/keyframe"]["get"]
    assert "image/jpeg" in keyframe["responses"]["200"]["content"] and "304" in keyframe["responses"]


# -- tokens -----------------------------------------------------------------------------------


def test_token_exp_must_be_a_number_and_not_too_far_ahead(harness: Harness) -> None:
    settings: Settings = api_settings(harness, max_token_lifetime_s=3600)
    with TestClient(create_app(settings, runtime=harness.runtime), raise_server_exceptions=False) as client:

        def status(**claims: Any) -> tuple[int, str]:
            response = client.get(JOBS, headers=bearer(make_token(**claims)))
            return response.status_code, response.json().get(
                "detail", ""
            ) if response.status_code != 200 else ""

        now = int(time.time())
        assert status() == (200, "")
        assert status(exp_s=3000) == (200, "")
        assert status(exp=now + 3000.5) == (200, "")  # a JSON number need not be an integer
        code, reason = status(exp=str(now + 300))
        assert code == 401 and "'exp' must be a number" in reason
        for far in (now + 7200, 10**30, 10**400, 1e300):
            code, reason = status(exp=far)
            assert code == 401 and "more than 3600 s ahead" in reason, far
        assert status(exp="soon")[0] == 401
        assert status(exp=True)[0] == 401

    default = api_settings(harness)
    assert default.api.max_token_lifetime_s == 24 * 3600
    with TestClient(create_app(default, runtime=harness.runtime)) as client:
        assert client.get(JOBS, headers=bearer(make_token(exp_s=23 * 3600))).status_code == 200
        assert client.get(JOBS, headers=bearer(make_token(exp_s=25 * 3600))).status_code == 401
        assert client.get(JOBS, headers=bearer(make_token(exp=10**30))).status_code == 401


def test_image_search_is_409_unavailable_while_clip_is_off(api: SearchApi) -> None:
    """``SCENEDEX_EMBEDDER__CLIP=off``: image searches are refused with a problem type saying
    the kind is unavailable; text search still answers (issue 31)."""
    api.harness.runtime.services.settings.embedder.clip = "off"
    refused = api.upload(api.frames[0])
    assert refused.status_code == 409, refused.text
    assert problem(refused, 409, "search_kind_unavailable")["kind"] == "image"
    assert "SCENEDEX_EMBEDDER__CLIP=off" in refused.json()["detail"]
    text = api.client.get("/v1/search", params={"text": "red", "k": 1}, headers=api.user())
    assert text.status_code == 200 and text.json()["results"]
