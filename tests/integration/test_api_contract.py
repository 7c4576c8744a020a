"""What every answer of the API carries (issue 28): errors as RFC 9457 problem details, an
``X-Request-ID`` (the caller's when valid, else a new one) that also tags the request's log
lines, and ``Location`` + ``Retry-After`` on every 202; and the OpenAPI document says so."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from scenedex.adapters.db import tables as t
from scenedex.api import create_app
from scenedex.api.contract import ACCEPTED_RETRY_AFTER_S
from scenedex.api.problems import PROBLEM_TITLES
from scenedex.worker.logs import ContextFilter, JsonFormatter
from tests.fakes import face_png
from tests.integration.test_api import JOBS, OWNER_A, OWNER_B, REPROCESS, Api, api_settings
from tests.job_harness import Harness
from tests.problems import problem

pytestmark = pytest.mark.integration


@pytest.fixture
def api(harness: Harness) -> Iterator[Api]:
    with TestClient(
        create_app(api_settings(harness), runtime=harness.runtime), raise_server_exceptions=False
    ) as client:
        yield Api(harness, client)


def test_every_kind_of_error_is_a_problem_document(api: Api) -> None:
    as_a = api.user(OWNER_A)
    unknown = uuid.uuid4()
    cases: list[tuple[Any, int, str]] = [
        (api.client.get(JOBS), 401, "unauthorized"),
        (api.client.get(JOBS, headers=as_a), 403, "forbidden"),
        (api.client.get(f"/v1/videos/{unknown}", headers=as_a), 404, "not_found"),
        (api.client.put("/v1/search", headers=as_a), 405, "method_not_allowed"),
        (api.client.get("/v1/search", params={"text": "x", "k": 0}, headers=as_a), 422, "validation_failed"),
        (api.client.get("/v1/search", headers=as_a), 422, "invalid_request"),
        (
            api.client.post(REPROCESS, content=b'{"scope": NaN}', headers=api.admin()),
            422,
            "json_invalid",
        ),
        (
            api.client.post(
                REPROCESS,
                content=b"{}",
                headers={**api.admin(), "Content-Length": "x", "Content-Type": "a/b"},
            ),
            400,
            "bad_request",
        ),
    ]
    for response, status, code in cases:
        document = problem(response, status, code)
        assert document["instance"] == response.request.url.path, document
    validation = problem(cases[4][0])
    assert validation["errors"] == [
        {
            "field": "query.k",
            "message": "Input should be greater than or equal to 1",
            "type": "greater_than_equal",
        }
    ]
    assert validation["detail"] == "query.k: Input should be greater than or equal to 1"
    assert cases[3][0].headers["allow"] == "GET"
    assert cases[0][0].headers["www-authenticate"] == "Bearer"
    first = api.reprocess(scope="all")
    conflict = problem(api.reprocess(scope="all"), 409, "active_job")
    assert conflict["active_job_id"] == first.json()["job_id"]
    assert set(PROBLEM_TITLES) >= {"unauthorized", "active_job", "database_unavailable"}


def test_the_request_id_is_echoed_or_made_and_tags_the_log_lines(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    as_a = api.user(OWNER_A)
    mine = api.client.get("/health", headers={"X-Request-ID": "client-42:a/b"})
    assert mine.headers["x-request-id"] == "client-42:a/b"
    made = {api.client.get("/health").headers["x-request-id"] for _ in range(3)}
    assert len(made) == 3 and all(len(made_id) == 32 for made_id in made)
    for bad in ("x" * 129, "two words", b"caf\xe9", "a\tb", ""):
        replaced = api.client.get("/health", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert replaced != bad and len(replaced) == 32, bad
    refused = api.client.get(f"/v1/videos/{uuid.uuid4()}", headers={**as_a, "X-Request-ID": "r-404"})
    assert refused.status_code == 404 and refused.headers["x-request-id"] == "r-404"

    def logs_a_line() -> dict[str, str]:  # a route of this test: what any route logs carries the id
        logging.getLogger("scenedex.api").info("a line of the request")
        return {}

    api.client.app.add_api_route("/probe-log", logs_a_line)  # type: ignore[attr-defined]
    caplog.handler.addFilter(ContextFilter())
    with caplog.at_level(logging.INFO, logger="scenedex.api"):
        answered = api.client.get("/probe-log", headers={"X-Request-ID": "r-log"})
    assert answered.status_code == 200 and answered.headers["x-request-id"] == "r-log"
    lines = [JsonFormatter().format(record) for record in caplog.records if record.name == "scenedex.api"]
    assert len(lines) == 1 and '"request_id": "r-log"' in lines[0], lines


def test_every_202_says_where_to_poll_and_when(api: Api) -> None:
    enqueued = api.reprocess(scope="all")
    assert enqueued.status_code == 202
    assert enqueued.headers["location"] == f"{JOBS}/{enqueued.json()['job_id']}"
    assert enqueued.headers["retry-after"] == str(ACCEPTED_RETRY_AFTER_S)
    assert api.client.get(enqueued.headers["location"], headers=api.admin()).status_code == 200


def test_the_document_declares_problems_503_202_headers_and_the_request_id(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    assert "Problem" in document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            for status, response in operation["responses"].items():
                assert "X-Request-ID" in response["headers"], (where, status)
                if status >= "400":
                    assert list(response["content"]) == ["application/problem+json"], (where, status)
                if status == "202":
                    assert {"Location", "Retry-After"} <= set(response["headers"]), where
                if status in ("200", "304") and operation["operationId"] in (
                    "getVideo",
                    "getPerson",
                    "getKeyframe",
                ):
                    assert {"ETag", "Cache-Control"} <= set(response["headers"]), where
            if path.startswith("/v1/"):
                assert "Retry-After" in operation["responses"]["503"]["headers"], where
                assert {"401", "422"} <= set(operation["responses"]), where


def test_persons_and_videos_have_etags_304_and_if_match(api: Api) -> None:
    as_a = api.user(OWNER_A)
    person = api.client.post(
        "/v1/persons",
        data={"name": "Eileen"},
        files=[("photos", ("p.png", face_png("eileen", salt="1"), "image/png"))],
        headers=as_a,
    ).json()
    url = f"/v1/persons/{person['person_id']}"
    got = api.client.get(url, headers=as_a)
    etag = got.headers["etag"]
    assert (
        got.status_code == 200
        and etag.startswith('"')
        and got.headers["cache-control"] == "private, no-cache"
    )
    unchanged = api.client.get(url, headers={**as_a, "If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == etag
    assert api.client.get(url, headers={**as_a, "If-None-Match": '"old"'}).status_code == 200

    stale = api.client.patch(url, json={"name": "E. Collins"}, headers={**as_a, "If-Match": '"old"'})
    problem(stale, 412, "precondition_failed")
    assert api.client.get(url, headers=as_a).json()["name"] == "Eileen"
    renamed = api.client.patch(url, json={"name": "E. Collins"}, headers={**as_a, "If-Match": etag})
    assert renamed.status_code == 200 and renamed.json()["name"] == "E. Collins"
    again = api.client.patch(url, json={"name": "Eileen"}, headers={**as_a, "If-Match": etag})
    problem(again, 412, "precondition_failed")  # the rename changed the ETag
    new_etag = api.client.get(url, headers=as_a).headers["etag"]
    assert new_etag != etag
    assert (
        api.client.patch(url, json={"name": "Eileen"}, headers={**as_a, "If-Match": "*"}).status_code == 200
    )
    assert (
        api.client.patch(url, json={"name": "X"}, headers=as_a).status_code == 200
    )  # no If-Match: as before

    video, _ = api.harness.world.add_video(OWNER_A, [face_png(salt="v0")], transcripts=["a red bike"])
    video_url = f"/v1/videos/{video.id}"
    tag = api.client.get(video_url, headers=as_a).headers["etag"]
    assert api.client.get(video_url, headers={**as_a, "If-None-Match": tag}).status_code == 304
    texts = f"{video_url}/scenes/0/texts"
    problem(api.client.put(texts, json={"transcript": "x"}, headers={**as_a, "If-Match": '"old"'}), 412)
    put = api.client.put(texts, json={"transcript": "a blue bike"}, headers={**as_a, "If-Match": tag})
    assert put.status_code == 202, put.text
    assert api.client.get(video_url, headers=as_a).headers["etag"] != tag
    problem(api.client.get(video_url, headers=api.user(OWNER_B)), 404)  # no ETag oracle for others


def test_video_pages_by_cursor_skip_nothing_when_a_video_is_deleted_between_pages(api: Api) -> None:
    as_a = api.user(OWNER_A)
    made = {str(api.harness.world.add_video(OWNER_A, [face_png(salt=f"p{i}")])[0].id) for i in range(3)}

    def page(**params: Any) -> dict[str, Any]:
        answer = api.client.get("/v1/videos", params={"limit": 1, **params}, headers=as_a)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    first = page()
    shown = first["videos"][0]["video_id"]
    with api.harness.engine.begin() as connection:  # deleted between two pages (offset paging skipped one)
        connection.execute(sa.delete(t.videos).where(t.videos.c.id == uuid.UUID(shown)))
    second = page(cursor=first["next_cursor"])
    third = page(cursor=second["next_cursor"])
    assert {second["videos"][0]["video_id"], third["videos"][0]["video_id"]} == made - {shown}
    assert third["next_cursor"] is None
    assert api.client.get("/v1/videos", params={"limit": 101}, headers=as_a).status_code == 422

    old, new = sorted(made - {shown})
    with api.harness.engine.begin() as connection:  # one changed long ago, one now
        connection.execute(
            sa.update(t.videos)
            .where(t.videos.c.id == uuid.UUID(old))
            .values(updated_at=datetime(2026, 1, 1, tzinfo=UTC))
        )
    recent = page(limit=100, updated_since="2026-06-01T00:00:00+02:00")
    assert [v["video_id"] for v in recent["videos"]] == [new]
    assert (
        len(page(limit=100, updated_since="2025-12-31T23:00:00-01:00")["videos"]) == 2
    )  # the instant itself
    for bad in ("soon", "2026-06-01T00:00:00", "2026-13-01T00:00:00Z"):
        problem(api.client.get("/v1/videos", params={"updated_since": bad}, headers=as_a), 422)
    problem(api.client.get("/v1/videos", params={"cursor": "bm90IGEgY3Vyc29y"}, headers=as_a), 422)
