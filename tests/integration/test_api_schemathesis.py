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

The number of cases is bounded (``MAX_EXAMPLES`` per operation and phase) to keep the file well
under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from scenedex.api import create_app
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from tests.integration.test_api import OWNER_A, api_settings, bearer, make_token, owner_b_library
from tests.job_harness import Harness, library

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 25
SEED = 20261102  # the same cases every run (change it, or unset it locally, to explore)


@pytest.fixture
def app(harness: Harness) -> Iterator[FastAPI]:
    """The API on a small library, reprocessed (owner A: a person and two videos; owner B: one
    video and a person), so that reads and searches find something."""
    library(harness.world, videos=2)
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


BLOB_ROOT = "memory://blobs"  # the harness's blob store (tests.fakes)


def inside_the_video_rules(body: Any) -> None:
    """``POST /v1/videos`` has rules no JSON Schema can state: its URIs must name objects in
    this deployment's blob store (the document does not depend on the settings), and its scenes
    must be in order without overlapping (``start_s < end_s <= next start_s``). Generated values
    of the right types are moved inside those rules (in place, in every phase: the examples
    phase runs no ``map_body`` hook); values of the wrong type are left alone, so that
    schema-violating bodies stay invalid. Every check still runs on every case."""
    if not isinstance(body, dict):
        return
    for field in ("source_uri", "subtitles_uri"):
        if isinstance(body.get(field), str):
            body[field] = f"{BLOB_ROOT}/uploads/{field}-{len(body[field])}"
    scenes = body.get("scenes")
    if isinstance(scenes, list):
        for i, scene in enumerate(scenes):
            if not isinstance(scene, dict):
                continue
            for key, value in (("start_s", 10.0 * i), ("end_s", 10.0 * i + 5.0)):
                if isinstance(scene.get(key), (int, float)) and not isinstance(scene.get(key), bool):
                    scene[key] = value
            if isinstance(scene.get("keyframe_uri"), str):
                scene["keyframe_uri"] = f"{BLOB_ROOT}/uploads/frame-{i}.jpg"


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
