"""A property-based run of the admin/owner API: schemathesis generates requests from the app's
own ``/openapi.json`` and checks every response, against real Postgres and Redis with the fake
embedders (``tests.job_harness``).

The schema is loaded from the running app when the test runs (``from_fixture``), so every route
that exists then is exercised, new ones included. Admin operations (``/v1/admin``) are called
with an admin token, every other operation with an owner token without the admin role. Each
case must pass every built-in check, among them:

- ``not_a_server_error``: no 5xx;
- ``response_schema_conformance`` / ``status_code_conformance`` / ``content_type_conformance``:
  every response is documented and matches its schema;
- ``positive_data_acceptance``: a request the schema allows is not refused with 400 or 422 (the
  schema is not looser than the validation; 401/403/404/409 are answers about state, not shape,
  and 415 about an upload's bytes, which no schema describes);
- ``ignored_auth``: the operation answers 401 without (or with a bad) token.

Schema-violating requests are generated too (``mode: all``: they must get a documented 4xx,
never a 5xx), but ``negative_data_rejection`` (the schema forbids it, so the API must refuse it)
is off: the API accepts what pydantic's lax mode coerces (``"dry_run": 0``) and ignores unknown
query parameters, as it always did; tightening that would refuse inputs accepted today.

Two more runs over the same document (issue 25):

- every operation that takes a JSON body gets each generated body again with one value (and
  then the whole body) replaced by JSON the API must refuse (``INVALID_JSON``: non-finite
  numbers, a NUL, a lone surrogate, deep nesting): a 4xx in the error shape each time, and
  nothing logged as an error or with a traceback;
- every operation runs as owner B with owner A's ids in its path, A's person in its query and
  A's ids and blob URIs in its body (``OwnerA.inject``): what names A's data answers 4xx (404
  for ids and URIs: no existence oracle), and no 2xx answer holds any of A's ids or URIs.

The number of cases is bounded (``MAX_EXAMPLES`` per operation and phase) to keep the file well
under a minute.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from scenedex.api import create_app
from scenedex.domain.events import EventType
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.settings import WebhookSettings
from tests.conftest import truncate_all
from tests.fakes import face_png
from tests.integration.test_api import OWNER_A, OWNER_B, api_settings, bearer, make_token, owner_b_library
from tests.job_harness import Harness, library
from tests.problems import problem

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 25
SEED = 20261102  # the same cases every run (change it, or unset it locally, to explore)


@pytest.fixture
def harness(postgres_engine: sa.Engine, redis_url: str) -> Iterator[Harness]:
    """The conftest's harness with webhook URLs allowed on private addresses (and http): a
    generated endpoint is pointed at 127.0.0.1 (``reachable_webhook_urls``), as nothing public
    resolves on these machines."""
    truncate_all(postgres_engine)
    h = Harness(postgres_engine, redis_url, webhooks=WebhookSettings(allow_private_addresses=True))
    h.redis.flushdb()
    yield h
    h.close()
    h.redis.flushdb()


@pytest.fixture
def app(harness: Harness) -> Iterator[FastAPI]:
    """The API on a small library, reprocessed (owner A: a person and two videos; owner B: one
    video and a person), so that reads and searches find something."""
    library(harness.world, videos=2)
    # three scenes of an unknown face: owner A has a suggestion (and its face ids) for owner B to try
    harness.world.add_video(OWNER_A, [face_png("carol", salt=str(i), size=64) for i in range(3)])
    owner_b_library(harness)
    harness.world.runner().run(ReprocessRequest(ReprocessScope.ALL))
    app = create_app(api_settings(harness), runtime=harness.runtime)
    with TestClient(app):  # runs the lifespan (closes the app's Redis client at the end)
        yield app


@pytest.fixture
def api_schema(app: FastAPI) -> Any:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # No example database: the seed alone decides the cases.
            "generation": {"max-examples": MAX_EXAMPLES, "mode": "all", "database": "none"},
            "checks": {
                # Not 400/422: a schema-valid request refused is a schema looser than the validation.
                # 415 is allowed: an upload's bytes (format: binary) are not described by a schema,
                # and random bytes that are not an image get 415 by design.
                "positive_data_acceptance": {
                    "enabled": True,
                    "expected-statuses": ["2xx", "3xx", 401, 403, 404, 409, 415],
                },
                "negative_data_rejection": {"enabled": False},
            },
        }
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's lazy schemas read and rename ``node._nodeid``, which pytest 9 no
    longer has (its node ids are structured); give it one to work with."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


ADMIN_ONLY_TYPES = {t.value for t in EventType if t.admin_only}
BLOB_ROOT = "memory://blobs"  # the harness's blob store (tests.fakes)


def inside_the_video_rules(body: Any) -> None:
    """``POST /v1/videos`` has rules no JSON Schema can state: its URIs must name objects under
    the caller's prefix of this deployment's blob store (the document does not depend on the
    settings; owner A's, as ``headers_for`` signs), and its scenes
    must be in order without overlapping (``start_s < end_s <= next start_s``). Generated values
    of the right types are moved inside those rules (in place, in every phase: the examples
    phase runs no ``map_body`` hook); values of the wrong type are left alone, so that
    schema-violating bodies stay invalid. Every check still runs on every case."""
    if not isinstance(body, dict):
        return
    for field in ("source_uri", "subtitles_uri"):
        if isinstance(body.get(field), str):
            body[field] = f"{BLOB_ROOT}/owners/{OWNER_A}/uploads/{field}-{len(body[field])}"
    scenes = body.get("scenes")
    if isinstance(scenes, list):
        for i, scene in enumerate(scenes):
            if not isinstance(scene, dict):
                continue
            for key, value in (("start_s", 10.0 * i), ("end_s", 10.0 * i + 5.0)):
                if isinstance(scene.get(key), (int, float)) and not isinstance(scene.get(key), bool):
                    scene[key] = value
            if isinstance(scene.get("keyframe_uri"), str):
                scene["keyframe_uri"] = f"{BLOB_ROOT}/owners/{OWNER_A}/uploads/frame-{i}.jpg"


def exactly_one_of_text_or_person(case: schemathesis.Case) -> None:
    """``GET /v1/search`` takes exactly one of its optional ``text`` and ``person_id`` (422
    otherwise), which no parameter schema can state: a generated query with both loses
    ``person_id``, one with neither gets a ``text`` (in place; every check still runs)."""
    if case.method != "GET" or case.path != "/v1/search":
        return
    if case.query is None:
        case.query = {}
    if not isinstance(case.query, dict):
        return
    if "text" in case.query and "person_id" in case.query:
        del case.query["person_id"]
    elif "text" not in case.query and "person_id" not in case.query:
        case.query["text"] = "a red bike"


def only_cursors_the_api_gave(case: schemathesis.Case) -> None:
    """A ``cursor`` is a token the API gave (``api.paging``; any other is 422 by design), which
    no schema can state: a generated one is dropped (in place; every check still runs)."""
    if isinstance(case.query, dict):
        case.query.pop("cursor", None)


def one_key_per_request(case: schemathesis.Case) -> None:
    """An ``Idempotency-Key`` names one request: the same key with another body is 422 by
    design (``api.idempotency``), which no schema can state. A generated key is made unique to
    the case (in place; every check still runs)."""
    key = case.headers.get("Idempotency-Key") if case.headers is not None else None
    if isinstance(key, str) and case.headers is not None:
        case.headers["Idempotency-Key"] = f"{key[:200]}-{uuid.uuid4().hex}"


def reachable_webhook_urls(case: schemathesis.Case) -> None:
    """A webhook ``url`` must resolve to an address the guard allows, and an owner's endpoint may
    not ask for an admin-only event type (422 otherwise, by design; one body schema serves owners
    and admins), which no schema can state: a generated URL becomes ``http://127.0.0.1:9/...``
    and an owner's admin-only types are dropped (in place; every check still runs)."""
    if case.method not in ("POST", "PATCH") or "/webhooks" not in case.path:
        return
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("url"), str):
        body["url"] = f"http://127.0.0.1:9/hook/{len(body['url'])}"
    types = body.get("event_types") if isinstance(body, dict) else None
    if isinstance(types, list) and not case.path.startswith("/v1/admin"):  # admin-only types: 422
        body["event_types"] = [v for v in types if not (isinstance(v, str) and v in ADMIN_ONLY_TYPES)]


def feed_queries(case: schemathesis.Case) -> None:
    """The event feed's ``wait_s`` holds the request up to that long when nothing is new (a long
    poll, by design; the check is of the answer): a generated one becomes 0. Its ``after`` is a
    cursor the API gave and its ``types`` a comma-separated list of known types (an owner's
    without the admin-only ones), which no schema can state: a generated ``after`` is dropped and
    ``types`` becomes ``video.ready`` (in place; every check still runs)."""
    if not case.path.endswith("/events") or not isinstance(case.query, dict):
        return
    if "wait_s" in case.query:
        case.query["wait_s"] = 0
    case.query.pop("after", None)
    if "types" in case.query:
        case.query["types"] = "video.ready"


def headers_for(case: schemathesis.Case) -> dict[str, str]:
    """An admin token for the admin operations; an owner token (no role) for the rest."""
    if case.path.startswith("/v1/admin"):
        return bearer(make_token(OWNER_A, ("admin",)))
    return bearer(make_token(OWNER_A, ()))


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    if case.method == "POST" and case.path == "/v1/videos":
        inside_the_video_rules(case.body)
    exactly_one_of_text_or_person(case)
    one_key_per_request(case)
    only_cursors_the_api_gave(case)
    reachable_webhook_urls(case)
    feed_queries(case)
    case.call_and_validate(headers=headers_for(case))


def test_since_at_the_ends_of_the_calendar_is_not_a_server_error(app: FastAPI) -> None:
    """Found by the run above: a ``since`` whose UTC time falls outside the years 1..9999 was
    stored as given and every read of the job failed (500); it is clamped now."""
    admin = bearer(make_token(OWNER_A, ("admin",)))
    with TestClient(app) as client:
        for since in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):
            body = {"scope": "owner", "owner_id": str(OWNER_A), "since": since}
            accepted = client.post("/v1/admin/reprocess-embeddings", json=body, headers=admin)
            assert accepted.status_code == 202, accepted.text
            job = client.get(accepted.headers["location"], headers=admin)
            assert job.status_code == 200 and job.json()["since"] is not None, job.text
            assert client.post(f"{accepted.headers['location']}/cancel", headers=admin).status_code == 200
        assert client.get("/v1/admin/reprocess-jobs", headers=admin).status_code == 200


# -- invalid JSON on every operation that takes a JSON body (issue 25) ---------------------------

INVALID_JSON = (
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    '"a\\u0000b"',
    '"\\ud800"',
    "[" * 900 + "]" * 900,
    "[" * 30_000,
)
"""Raw JSON the API refuses wherever it stands in a body: non-finite numbers (``1e999`` parses
as infinity), a NUL (no Postgres text holds one), a lone surrogate (no UTF-8 encodes one),
nesting Python's parser reads but no request needs, and nesting past its recursion limit."""
_HOLE = "\u2063scenedex-invalid-json\u2063"  # a placeholder no generated value holds


def takes_json(ctx: Any) -> bool:
    """An operation with an ``application/json`` request body (read from its definition: the
    operation's parsed bodies are not there yet when filters run)."""
    definition = ctx.operation.definition
    raw = getattr(definition, "raw", definition)
    return "application/json" in raw.get("requestBody", {}).get("content", {})


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The paths (keys and indexes) to every scalar and empty container in ``value``."""
    if isinstance(value, dict) and value:
        return [p for key, item in value.items() for p in leaf_paths(item, (*path, key))]
    if isinstance(value, list) and value:
        return [p for i, item in enumerate(value) for p in leaf_paths(item, (*path, i))]
    return [path]


def with_invalid(body: Any, path: tuple[Any, ...], token: str) -> bytes:
    """``body`` as JSON with the value at ``path`` (``()``: the whole body) replaced by the raw
    ``token``, which ``json.dumps`` could not write."""
    if not path:
        return token.encode()
    copy = json.loads(json.dumps(body))
    holder = copy
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = _HOLE
    return json.dumps(copy).replace(json.dumps(_HOLE), token).encode()


@schema.include(takes_json).parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=10)
def test_invalid_json_in_any_body_is_a_4xx_without_a_traceback(
    case: schemathesis.Case, app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    if case.method == "POST" and case.path == "/v1/videos":
        inside_the_video_rules(case.body)
    body = case.body if case.media_type == "application/json" else {}
    paths = leaf_paths(body) if isinstance(body, (dict, list)) else []
    headers = {**headers_for(case), "Content-Type": "application/json"}
    caplog.clear()
    with caplog.at_level(logging.INFO), TestClient(app, raise_server_exceptions=False) as client:
        for n, token in enumerate(INVALID_JSON):
            for path in ((), *paths[n % len(paths) : n % len(paths) + 1]) if paths else ((),):
                content = with_invalid(body, path, token)
                response = client.request(
                    case.method, case.formatted_path, content=content, headers=headers, params=case.query
                )
                sent = f"{case.method} {case.formatted_path} {content[:100]!r}"
                assert 400 <= response.status_code < 500, (sent, response.status_code, response.text[:300])
                problem(response)
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert logged == [], [f"{r.name}: {r.getMessage()[:200]}" for r in logged]


# -- owner B with owner A's ids and URIs (issue 25) ----------------------------------------------


@dataclass(frozen=True)
class OwnerA:
    """Owner A's ids (by the path parameter or body field that takes them) and blob URIs, which
    owner B puts in its requests."""

    ids: dict[str, str]
    uris: dict[str, str]

    def secrets(self) -> set[str]:
        """What no answer to owner B may hold (ids both as given and as bare scene ids)."""
        return {*self.ids.values(), *(v.split(":")[0] for v in self.ids.values()), *self.uris.values()}

    def inject(self, case: schemathesis.Case) -> bool:
        """Put A's ids and URIs where ``case`` takes them (in place); whether it took any."""
        taken = False
        for name in list(case.path_parameters or {}):
            if name in self.ids:
                case.path_parameters[name] = self.ids[name]
                taken = True
        if isinstance(case.query, dict) and "person_id" in case.query:
            case.query["person_id"] = self.ids["person_id"]
            taken = True
        body = case.body
        if isinstance(body, dict):
            for field, uri in self.uris.items():
                if isinstance(body.get(field), str):
                    body[field] = uri
                    taken = True
            if isinstance(body.get("person_id"), str):
                body["person_id"] = self.ids["person_id"]
                taken = True
            if isinstance(body.get("face_ids"), list) and body["face_ids"]:
                body["face_ids"] = [self.ids["face_id"]]
                taken = True
            scenes = body.get("scenes")  # a generated body may hold another type there
            for scene in scenes if isinstance(scenes, list) else []:
                if isinstance(scene, dict) and isinstance(scene.get("keyframe_uri"), str):
                    scene["keyframe_uri"] = self.uris["keyframe_uri"]
                    taken = True
        return taken


@pytest.fixture
def owner_a(app: FastAPI, harness: Harness) -> OwnerA:
    """Owner A's first video, scene, person, photo, suggestion and face, its upload (a blob that
    exists under A's prefix), a keyframe and a photo."""
    world = harness.world
    assert harness.runtime.services is not None  # the services' runner clusters (the world's does not)
    assert harness.runtime.services.runner().run(ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER_A)).ok
    upload = world.blobs.write(f"owners/{OWNER_A}/uploads/a.mp4", b"\x00\x00\x00\x18ftypmp42")
    with world.uow_factory() as uow:
        person = uow.persons.list(OWNER_A)[0]
        photo = next(p for p in uow.persons.list_photos(OWNER_A) if p.person_id == person.id)
    a = bearer(make_token(OWNER_A, ()))
    with TestClient(app) as client:
        videos = client.get("/v1/videos", headers=a).json()["videos"]
        scene = client.get(f"/v1/videos/{videos[0]['video_id']}", headers=a).json()["scenes"][0]
        person_out = client.get(f"/v1/persons/{person.id}", headers=a).json()
        suggestion = client.get("/v1/face-clusters", headers=a).json()["suggestions"][0]
    with world.uow_factory() as uow:
        stored = uow.scenes.get(OWNER_A, uuid.UUID(scene["scene_id"]))
    assert stored is not None and stored.keyframe_uri is not None
    return OwnerA(
        ids={
            "video_id": videos[0]["video_id"],
            "scene_id": scene["scene_id"],
            "person_id": str(person.id),
            "photo_id": person_out["photos"][0]["photo_id"],
            "cluster_id": suggestion["cluster_id"],
            "face_id": suggestion["faces"][0]["face_id"],
        },
        uris={
            "source_uri": upload,
            "subtitles_uri": upload,
            "keyframe_uri": stored.keyframe_uri,
            "photo_uri": photo.image_uri,
        },
    )


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=10)
def test_owner_b_with_owner_a_ids_and_uris_gets_nothing_of_a(
    case: schemathesis.Case, owner_a: OwnerA
) -> None:
    if case.method == "POST" and case.path == "/v1/videos":
        inside_the_video_rules(case.body)  # scenes in order (the URIs are A's below)
    exactly_one_of_text_or_person(case)
    took = owner_a.inject(case)
    one_key_per_request(case)
    only_cursors_the_api_gave(case)
    reachable_webhook_urls(case)
    feed_queries(case)
    response = case.call_and_validate(headers=bearer(make_token(OWNER_B, ())))
    sent = f"{case.method} {case.formatted_path} {case.query} {str(case.body)[:200]}"
    if took:  # refused for its shape, its method or its token, or 404 (never an existence oracle)
        assert response.status_code in (400, 401, 403, 404, 405, 413, 415, 422), (
            sent,
            response.status_code,
            response.text[:300],
        )
    if 200 <= response.status_code < 300:
        leaked = [secret for secret in owner_a.secrets() if secret in response.text]
        assert leaked == [], (sent, leaked)
