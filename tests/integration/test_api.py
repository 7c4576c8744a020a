"""The admin/owner API through FastAPI's TestClient, against real Postgres and Redis.

Jobs run on an in-process dramatiq worker with the fake embedders (``Harness`` from
``test_worker_jobs``), so these tests exercise HTTP, auth, the job endpoints and the broker.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from scenedex.adapters.db import tables as t
from scenedex.api import ApiConfigError, create_app
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.settings import ApiSettings, Settings
from tests.fakes import face_image
from tests.job_harness import OWNER, Harness, library
from tests.problems import problem

pytestmark = pytest.mark.integration

SECRET = "test-secret-for-hs256-at-least-32-bytes-long"
OWNER_A = OWNER
OWNER_B = uuid.UUID("00000000-0000-0000-0000-0000000000b2")
ADMIN = ("admin",)
JOBS = "/v1/admin/reprocess-jobs"
HIT_FIELDS = {
    "scene_id",
    "video_id",
    "external_id",
    "start_s",
    "end_s",
    "score",
    "persons",
    "keyframe_url",
    "appearances",
    "channel",
    "ocr_snippet",
}
REPROCESS = "/v1/admin/reprocess-embeddings"


def make_token(
    owner: uuid.UUID = OWNER_A,
    roles: tuple[str, ...] | str = ADMIN,
    *,
    exp_s: float = 300,
    key: Any = SECRET,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    payload = {
        "sub": "user-1",
        "owner_id": str(owner),
        "roles": roles if isinstance(roles, str) else list(roles),
        "exp": int(time.time() + exp_s),
    }
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm=algorithm)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Api:
    harness: Harness
    client: TestClient

    def admin(self, owner: uuid.UUID = OWNER_A) -> dict[str, str]:
        return bearer(make_token(owner, ADMIN))

    def user(self, owner: uuid.UUID) -> dict[str, str]:
        return bearer(make_token(owner, ()))

    def reprocess(self, **body: Any) -> Any:
        return self.client.post(REPROCESS, json=body, headers=self.admin())

    def job(self, job_id: Any) -> Any:
        return self.client.get(f"{JOBS}/{job_id}", headers=self.admin())

    def action(self, job_id: Any, name: str) -> Any:
        return self.client.post(f"{JOBS}/{job_id}/{name}", headers=self.admin())

    def wait(self, job_id: Any, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.job(job_id).json()
            if body["status"] not in ("queued", "running"):
                return body
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} not finished after {timeout} s: {body}")


def api_settings(harness: Harness, **api: Any) -> Settings:
    return harness.runtime.settings.model_copy(update={"api": ApiSettings(**({"jwt_secret": SECRET} | api))})


@pytest.fixture
def api(harness: Harness) -> Iterator[Api]:
    app = create_app(api_settings(harness), runtime=harness.runtime)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(harness, client)


def owner_b_library(harness: Harness) -> tuple[uuid.UUID, uuid.UUID]:
    """Owner B: one video of two scenes and a person; returns (video id, person id)."""
    person = harness.world.add_person(OWNER_B, "bob", [face_image("bob", salt="pb")])
    video, _ = harness.world.add_video(
        OWNER_B, [face_image("bob", salt="b0"), face_image(salt="b1")], transcripts=["a red bike", "rain"]
    )
    return video.id, person.id


# -- the reprocess-all flow ---------------------------------------------------------------------


def test_reprocess_all_end_to_end_matches_the_inline_run(api: Api) -> None:
    library(api.harness.world, videos=2)
    owner_b_library(api.harness)

    accepted = api.reprocess(scope="all")
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["status"] == "queued" and body["scope"] == "all" and body["video_count"] == 3
    assert body["spec_version"] == api.harness.spec_version and body["job_id"] in body["message"]
    assert accepted.headers["location"] == f"{JOBS}/{body['job_id']}"

    again = api.reprocess(scope="all", force=True)  # the scope is taken while the job is active
    assert again.status_code == 409 and again.json()["active_job_id"] == body["job_id"]

    api.harness.start_worker()
    done = api.wait(body["job_id"])
    assert done["status"] == "succeeded", done["failed_items"]
    assert done["trigger"] == "api" and done["items"] == {
        "total": 5,  # a persons item per owner + 3 videos
        "done": 5,
        "failed": 0,
        "by_status": {"succeeded": 5},
    }
    assert done["eta_s"] is None and done["finished_at"] is not None

    # The inline run of the same scope, forced, computes exactly what the job did.
    inline = api.harness.world.runner().run(ReprocessRequest(ReprocessScope.ALL, force=True))
    expected = {
        step.value: {"planned": c.planned, "computed": c.computed, "skipped": c.skipped, "failed": c.failed}
        for step, c in inline.steps.items()
    }
    assert done["steps"] == expected
    assert expected["scene_clip_embeddings"]["computed"] == 8


def test_enqueue_status_codes(api: Api) -> None:
    [video_a] = library(api.harness.world, videos=1)
    video_b, _ = owner_b_library(api.harness)

    plan = api.reprocess(scope="owner", owner_id=str(OWNER_A), dry_run=True)
    assert plan.status_code == 200, plan.text
    clip = next(s for s in plan.json()["steps"] if s["step"] == "scene_clip_embeddings")
    assert plan.json()["videos"] == 1 and clip == {
        "step": "scene_clip_embeddings",
        "missing": 3,
        "stale": 0,
        "stale_by_reason": {},
        "current": 0,
    }
    nothing = {"jobs": [], "limit": 20, "next_cursor": None}
    assert api.client.get(JOBS, headers=api.admin()).json() == nothing  # dry run: nothing queued

    for body, needle in [
        ({"scope": "video"}, "video id"),
        ({"scope": "owner"}, "owner id"),
        ({"scope": "all", "owner_id": str(OWNER_A)}, "takes no"),
    ]:
        refused = api.reprocess(**body)
        assert refused.status_code == 422 and needle in refused.json()["detail"], refused.text

    assert api.reprocess(scope="video", video_id=str(uuid.uuid4())).status_code == 404
    assert api.reprocess(scope="owner", owner_id=str(uuid.uuid4())).status_code == 404
    assert api.reprocess(scope="video", video_id=str(video_b), owner_id=str(OWNER_A)).status_code == 404
    later = api.reprocess(scope="owner", owner_id=str(OWNER_A), dry_run=True, since="2999-01-01")
    assert later.status_code == 200 and later.json()["videos"] == 0  # naive since: UTC

    first = api.reprocess(scope="video", video_id=str(video_a), since="2020-01-01T00:00:00")
    assert first.status_code == 202 and first.json()["video_count"] == 1
    conflict = api.reprocess(scope="video", video_id=str(video_a), force=True)
    assert conflict.status_code == 409
    assert conflict.json()["active_job_id"] == first.json()["job_id"]
    assert str(first.json()["job_id"]) in conflict.json()["detail"]
    assert api.reprocess(scope="owner", owner_id=str(OWNER_A)).status_code == 202  # another scope


def test_jobs_page_newest_first_by_cursor_through_a_delete(api: Api) -> None:
    """Three jobs (one per video), pages of one: newest first, and a job deleted between two
    pages skips nothing."""
    jobs = [
        api.reprocess(scope="video", video_id=str(v)).json()["job_id"] for v in library(api.harness.world)
    ]
    headers = api.admin()

    def page(**params: Any) -> dict[str, Any]:
        answer = api.client.get(JOBS, params={"limit": 1, **params}, headers=headers)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    first = page()
    assert [j["job_id"] for j in first["jobs"]] == [jobs[2]]
    with api.harness.engine.begin() as connection:  # the one shown goes (offset 1 would skip one)
        connection.execute(sa.delete(t.reprocess_jobs).where(t.reprocess_jobs.c.id == uuid.UUID(jobs[2])))
    second = page(cursor=first["next_cursor"])
    third = page(cursor=second["next_cursor"])
    assert [second["jobs"][0]["job_id"], third["jobs"][0]["job_id"]] == [jobs[1], jobs[0]]
    assert third["next_cursor"] is None


def test_job_endpoints(api: Api) -> None:
    library(api.harness.world, videos=1)
    job_id = api.reprocess(scope="owner", owner_id=str(OWNER_A)).json()["job_id"]
    headers = api.admin()

    listed = api.client.get(
        JOBS, params={"status": "queued", "scope": "owner", "trigger": "api"}, headers=headers
    )
    assert [j["job_id"] for j in listed.json()["jobs"]] == [job_id]
    for params in ({"trigger": "scheduler"}, {"scope": "video"}, {"status": "succeeded"}):
        assert api.client.get(JOBS, params=params, headers=headers).json()["jobs"] == []
    for params in ({"status": "bogus"}, {"limit": 0}, {"limit": 101}, {"scope": "galaxy"}, {"cursor": "x"}):
        assert api.client.get(JOBS, params=params, headers=headers).status_code == 422

    queued = api.job(job_id)
    assert queued.status_code == 200 and queued.json()["status"] == "queued"
    assert queued.json()["items"]["total"] == 0 and not queued.json()["planned"]

    resent = api.action(job_id, "resend")
    assert resent.status_code == 200 and resent.json()["resent"] == 0  # its planner message is held
    api.harness.redis.flushdb()  # Redis lost it
    assert api.action(job_id, "resend").json()["resent"] == 1

    not_paused = api.action(job_id, "resume")
    assert not_paused.status_code == 409 and "cannot resume" in not_paused.json()["detail"]
    paused = api.action(job_id, "pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert api.action(job_id, "pause").status_code == 409
    assert api.action(job_id, "resend").status_code == 409  # a paused job sends nothing
    resumed = api.action(job_id, "resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "queued"  # it never started
    assert resumed.json()["resent"] == 0  # its planner message is still held
    api.action(job_id, "pause")

    nothing_failed = api.action(job_id, "retry-failed")
    assert nothing_failed.status_code == 409 and "no failed" in nothing_failed.json()["detail"]

    cancelled = api.action(job_id, "cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    for name in ("cancel", "pause", "resume", "resend", "retry-failed"):
        assert api.action(job_id, name).status_code == 409, name

    unknown = uuid.uuid4()
    assert api.job(unknown).status_code == 404
    for name in ("cancel", "pause", "resume", "resend", "retry-failed"):
        missing = api.action(unknown, name)
        assert missing.status_code == 404 and str(unknown) in missing.json()["detail"], name


def test_retry_failed_runs_the_failed_items_again(api: Api) -> None:
    library(api.harness.world, videos=1)
    broken, [scene] = api.harness.world.add_video(OWNER_A, [b"CORRUPT keyframe"])
    api.harness.start_worker()
    job_id = api.reprocess(scope="owner", owner_id=str(OWNER_A)).json()["job_id"]
    failed = api.wait(job_id)
    assert failed["status"] == "partially_failed"
    [item] = failed["failed_items"]
    assert item["subject_id"] == str(broken.id) and item["errors"] and item["deliveries"] == 1

    # While another job holds the owner scope, the finished job cannot become active again.
    api.harness.stop_worker()
    other = api.reprocess(scope="owner", owner_id=str(OWNER_A)).json()["job_id"]
    held = api.action(job_id, "retry-failed")
    assert held.status_code == 409 and held.json()["active_job_id"] == other
    assert api.action(other, "cancel").status_code == 200

    api.harness.world.blobs.blobs[scene.keyframe_uri] = face_image(salt="fixed")  # the input is fixed
    retried = api.action(job_id, "retry-failed")
    assert retried.status_code == 200, retried.text
    assert retried.json() == {"job_id": job_id, "status": "running", "resent": None, "retried": 1}
    running = api.job(job_id).json()
    assert running["finished_at"] is None and running["failed_items"] == []

    api.harness.start_worker()
    done = api.wait(job_id)
    assert done["status"] == "succeeded", done["failed_items"]
    assert done["items"]["by_status"] == {"succeeded": 3}
    assert done["steps"]["scene_clip_embeddings"] == {"planned": 4, "computed": 4, "skipped": 0, "failed": 0}
    assert api.action(job_id, "retry-failed").status_code == 409  # nothing failed any more


# -- owners and auth ----------------------------------------------------------------------------


def test_owner_endpoints_only_see_the_tokens_owner(api: Api) -> None:
    videos_a = library(api.harness.world, videos=2)
    video_b, person_b = owner_b_library(api.harness)
    api.harness.world.runner().run(ReprocessRequest(ReprocessScope.ALL))
    as_a, as_b = api.user(OWNER_A), api.user(OWNER_B)

    embedded = api.client.post(f"/v1/videos/{videos_a[0]}/embed", headers=as_a)
    assert embedded.status_code == 202 and embedded.json()["owner_id"] == str(OWNER_A)
    assert embedded.json()["message_id"]
    assert api.harness.redis.llen("dramatiq:embeddings") == 1
    for video in (video_b, uuid.uuid4()):  # another owner's video is as unknown as a missing one
        refused = api.client.post(f"/v1/videos/{video}/embed", headers=as_a)
        assert refused.status_code == 404 and str(OWNER_B) not in refused.json()["detail"]
    assert api.harness.redis.llen("dramatiq:embeddings") == 1

    hits_a = api.client.get("/v1/search", params={"text": "scene 0 words", "k": 50}, headers=as_a).json()
    assert hits_a["results"] and {h["video_id"] for h in hits_a["results"]} <= {str(v) for v in videos_a}
    assert set(hits_a["results"][0]) == HIT_FIELDS
    hits_b = api.client.get("/v1/search", params={"text": "a red bike"}, headers=as_b).json()
    assert {h["video_id"] for h in hits_b["results"]} == {str(video_b)}
    by_person = api.client.get("/v1/search", params={"person_id": str(person_b)}, headers=as_b)
    assert by_person.status_code == 200
    assert by_person.json()["results"][0]["persons"] == [{"person_id": str(person_b), "name": "bob"}]
    assert api.client.get("/v1/search", params={"person_id": str(person_b)}, headers=as_a).status_code == 404
    assert api.client.get("/v1/search", headers=as_a).status_code == 422  # no query
    assert api.client.get("/v1/search", params={"text": "x", "k": 0}, headers=as_a).status_code == 422

    # A non-admin token sees no admin endpoint, not even its own owner's jobs.
    job_id = api.reprocess(scope="owner", owner_id=str(OWNER_B)).json()["job_id"]
    for method, path in [
        ("get", JOBS),
        ("get", f"{JOBS}/{job_id}"),
        ("post", f"{JOBS}/{job_id}/cancel"),
        ("post", f"{JOBS}/{job_id}/resume"),
        ("post", f"{JOBS}/{job_id}/retry-failed"),
    ]:
        assert api.client.request(method, path, headers=as_b).status_code == 403, path
    forbidden = api.client.post(REPROCESS, json={"scope": "owner", "owner_id": str(OWNER_A)}, headers=as_b)
    assert problem(forbidden, 403, "forbidden")["detail"] == "the admin role is required"


def test_missing_expired_and_badly_signed_tokens_get_401(api: Api) -> None:
    def status(headers: dict[str, str]) -> tuple[int, str]:
        response = api.client.get(JOBS, headers=headers)
        assert response.headers.get("www-authenticate") == "Bearer" or response.status_code != 401
        return response.status_code, response.json()["detail"]

    assert status({}) == (401, "missing bearer token")
    assert status({"Authorization": "Basic dXNlcjpwYXNz"})[0] == 401
    assert status(bearer("not.a.token"))[0] == 401
    assert status(bearer(make_token(exp_s=-10))) == (401, "token expired")
    assert status(bearer(make_token(key="another-secret-that-is-32-bytes-or-more")))[0] == 401
    assert status(bearer(make_token(key=None, algorithm="none")))[0] == 401  # unsigned
    assert status(bearer(make_token(exp=None)))[0] == 401  # exp is required
    assert status(bearer(make_token(owner_id=None)))[0] == 401
    assert status(bearer(make_token(owner_id="tenant-7")))[0] == 401
    assert status(bearer(make_token(roles="admin")))[0] == 401
    assert api.client.post("/v1/videos/00000000-0000-0000-0000-000000000001/embed").status_code == 401
    assert api.client.get("/v1/search", params={"text": "x"}).status_code == 401
    assert api.client.get(JOBS, headers=bearer(make_token())).status_code == 200


def test_rs256_public_key_and_insecure_dev_mode(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    (tmp_path / "key.pem").write_text(public_pem)
    for key in (public_pem, str(tmp_path / "key.pem")):
        settings = api_settings(harness, jwt_secret=None, jwt_public_key=key)
        with TestClient(create_app(settings, runtime=harness.runtime)) as client:
            good = make_token(key=private, algorithm="RS256")
            assert client.get(JOBS, headers=bearer(good)).status_code == 200
            confused = make_token(key=SECRET)  # HS256 is accepted only with a secret configured
            assert client.get(JOBS, headers=bearer(confused)).status_code == 401

    with pytest.raises(ApiConfigError, match="SCENEDEX_API__JWT_SECRET"):
        create_app(api_settings(harness, jwt_secret=None), runtime=harness.runtime)
    with pytest.raises(ApiConfigError, match="shorter than 32 bytes"):
        create_app(api_settings(harness, jwt_secret="short"), runtime=harness.runtime)
    with pytest.raises(ApiConfigError, match="PEM"):
        create_app(
            api_settings(harness, jwt_public_key=str(tmp_path / "missing.pem")), runtime=harness.runtime
        )

    with caplog.at_level(logging.WARNING, logger="scenedex.api"):
        insecure = create_app(
            api_settings(harness, jwt_secret=None, allow_insecure_dev=True), harness.runtime
        )
    assert "INSECURE DEVELOPMENT MODE" in caplog.text
    with TestClient(insecure) as client:
        unsigned = make_token(key=None, algorithm="none")
        assert client.get(JOBS, headers=bearer(unsigned)).status_code == 200
        assert client.get(JOBS, headers=bearer(make_token(exp_s=-10))).status_code == 401
        assert client.get(JOBS, headers=bearer(make_token(roles=()))).status_code == 403
        assert client.get(JOBS).status_code == 401


# -- health, readiness and malformed requests ---------------------------------------------------


def test_health_and_ready(api: Api, harness: Harness) -> None:
    assert api.client.get("/health").json() == {"status": "ok"}
    ready = api.client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok", "search_index": "ok"},
    }

    no_redis = api_settings(harness).model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(no_redis, runtime=harness.runtime)) as client:
        down = client.get("/ready")
    assert down.status_code == 503 and down.json()["detail"] == "not ready: redis"
    assert down.json()["checks"]["database"] == "ok" and down.json()["checks"]["redis"].startswith("error")


def test_malformed_requests_get_4xx_json_never_500(api: Api) -> None:
    headers = api.admin()
    json_headers = {**headers, "Content-Type": "application/json"}
    bad_bodies: list[bytes] = [
        b"{not json",
        b"",
        b"[]",
        b"null",
        b'"all"',
        b'{"scope": "everything"}',
        b'{"scope": "all", "bogus": 1}',
        b'{"scope": "video", "video_id": "not-a-uuid"}',
        b'{"scope": "all", "since": "yesterday"}',
        b'{"scope": "all", "force": "maybe"}',
        b'{"scope": "all", "dry_run": {"a": 1}}',
        b"[" * 30_000,  # deep nesting: the JSON parser's recursion limit
        b'{"scope": "all"' + b", " * 10 + b"}",
    ]
    responses = [api.client.post(REPROCESS, content=body, headers=json_headers) for body in bad_bodies]
    responses.append(
        api.client.post(
            REPROCESS, content=b'{"scope": "all"}', headers={**headers, "Content-Type": "text/plain"}
        )
    )

    huge = b'{"scope": "all", "pad": "' + b"x" * 100_000 + b'"}'
    too_large = api.client.post(REPROCESS, content=huge, headers=json_headers)
    assert too_large.status_code == 413 and "larger than 65536" in too_large.json()["detail"]
    streamed = api.client.post(REPROCESS, content=iter([huge[:40_000], huge[40_000:]]), headers=json_headers)
    assert streamed.status_code == 413
    responses += [too_large, streamed]

    for method, path, params in [
        ("get", f"{JOBS}/not-a-uuid", None),
        ("post", f"{JOBS}/123/cancel", None),
        ("post", f"{JOBS}/{'f' * 40}/resume", None),
        ("post", f"{JOBS}/x/retry-failed", None),
        ("post", "/v1/videos/not-a-uuid/embed", None),
        ("get", "/v1/search", {"person_id": "bob"}),
        ("get", "/v1/search", {"text": "x", "k": "many"}),
        ("get", "/v1/search", {"text": "x" * 3000}),
        ("get", "/v1/nowhere", None),
        ("delete", JOBS, None),
    ]:
        responses.append(api.client.request(method, path, params=params, headers=headers))

    for response in responses:
        sent = f"{response.request.method} {response.request.url}"
        assert 400 <= response.status_code < 500, (sent, response.status_code, response.text[:200])
        problem(response)
    assert [r.status_code for r in responses[:2]] == [422, 422]
    assert responses[6].status_code == 422 and "bogus" in responses[6].text  # unknown field named


def test_openapi_documents_the_endpoints_with_examples(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    assert {REPROCESS, f"{JOBS}/{{job_id}}/retry-failed", "/v1/search", "/ready"} <= set(schema["paths"])
    components = schema["components"]["schemas"]
    assert components["ReprocessBody"]["examples"][0] == {"scope": "all"}
    assert components["ReprocessBody"]["discriminator"]["propertyName"] == "scope"
    variants = {ref["$ref"].rsplit("/", 1)[1] for ref in components["ReprocessBody"]["oneOf"]}
    assert variants == {"ReprocessVideoBody", "ReprocessOwnerBody", "ReprocessAllBody"}
    assert all(components[name]["additionalProperties"] is False for name in variants)
    assert components["ReprocessVideoBody"]["required"] == ["scope", "video_id"]
    assert components["ReprocessOwnerBody"]["required"] == ["scope", "owner_id"]
    assert "examples" in components["JobResponse"] and "examples" in components["EnqueueResponse"]
    post = schema["paths"][REPROCESS]["post"]
    assert {"200", "202", "401", "403", "404", "409", "422"} <= set(post["responses"])
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"

    # Every operation: its request body and every response with a JSON (or form) body, 2xx and
    # declared errors alike, shows an example.
    missing = [
        f"{method.upper()} {path} {part}"
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        for part, media in _bodies(operation)
        if not _has_example(media, components)
    ]
    assert not missing, "no example for:\n" + "\n".join(missing)


def test_docs_openapi_json_is_the_served_document(api: Api) -> None:
    """The copy that client generators use is what the API serves, whatever its settings."""
    checked_in = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())
    assert checked_in == api.client.get("/openapi.json").json(), (
        "docs/openapi.json is stale: python -m scenedex.scripts.openapi > docs/openapi.json"
    )


_EXAMPLE_MEDIA = ("application/json", "multipart/form-data", "application/x-www-form-urlencoded")


def _bodies(operation: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(what, media type object)`` for the request body and each response of ``operation``
    that carries a JSON or form body (an image or an empty 304 has nothing to exemplify)."""
    for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
        if media_type in _EXAMPLE_MEDIA:
            yield f"request {media_type}", media
    for status, response in operation["responses"].items():
        for media_type, media in response.get("content", {}).items():
            if media_type in _EXAMPLE_MEDIA:
                yield f"response {status}", media


def _has_example(media: dict[str, Any], components: dict[str, Any]) -> bool:
    """An example on the media type (``example``/``examples``) or on its schema (``$ref``s
    followed, ``anyOf``/``oneOf`` of documented schemas)."""
    if "example" in media or media.get("examples"):
        return True

    def documented(schema: dict[str, Any]) -> bool:
        if "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[1]]
        if schema.get("examples") or "example" in schema:
            return True
        branches = schema.get("anyOf") or schema.get("oneOf") or []
        return bool(branches) and all(documented(b) for b in branches if b.get("type") != "null")

    return documented(media.get("schema", {}))
