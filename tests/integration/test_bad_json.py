"""JSON bodies the API must refuse without a 500 (issue 25): non-finite numbers (``NaN``,
``Infinity``, ``-Infinity``, ``1e999``), strings Postgres or UTF-8 cannot hold (a NUL, a lone
surrogate) and nesting deeper than any request needs, anywhere in the body of every operation
that takes JSON.

The API is served by uvicorn in this process (``serve_in_thread``) on the job harness, and each
request goes over one kept-alive HTTP/1.1 connection: every bad body must get a 4xx in the API's
error shape (an RFC 9457 problem, ``tests.problems``), the connection must answer the next
request, and nothing may be logged as an error or with a traceback (before issue 25, the 422
handler echoed the non-finite input, ``json.dumps`` refused it, and uvicorn logged the traceback
and closed the connection).
"""

from __future__ import annotations

import http.client
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from scenedex.api import create_app
from scenedex.api.serve import serve_in_thread
from tests.integration.test_api import OWNER_A, api_settings, bearer, make_token, owner_b_library
from tests.job_harness import Harness, library
from tests.problems import problem_of

pytestmark = pytest.mark.integration

NON_FINITE = ("NaN", "Infinity", "-Infinity", "1e999", "-1e999")
INVALID_STRINGS = ('"a\\u0000b"', '"\\ud800"', '"x\\udfffy"')
DEEP = 900  # parsed by Python's json (under its recursion limit), deeper than any request
DEEPER = 30_000  # over the parser's recursion limit
BAD_VALUES = (*NON_FINITE, *INVALID_STRINGS, "[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP)


@dataclass
class Served:
    host: str
    port: int
    admin: dict[str, str]
    owner: dict[str, str]
    video_id: uuid.UUID
    person_id: uuid.UUID


@pytest.fixture
def served(harness: Harness) -> Iterator[Served]:
    (video_id,) = library(harness.world, videos=1)
    with harness.world.uow_factory() as uow:
        person_id = uow.persons.list(OWNER_A)[0].id
    owner_b_library(harness)
    app = create_app(api_settings(harness), runtime=harness.runtime)
    with serve_in_thread(app) as url:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        yield Served(
            parts.hostname,
            parts.port,
            bearer(make_token(OWNER_A, ("admin",))),
            bearer(make_token(OWNER_A, ())),
            video_id,
            person_id,
        )


def operations(site: Served) -> list[tuple[str, str, str, dict[str, str]]]:
    """``(method, path, body template, headers)``: ``%s`` in the template is where the bad
    value goes (a field each operation reads, an unknown field, or the whole body)."""
    source = f"memory://blobs/owners/{OWNER_A}/uploads/a.mp4"
    scene = f"{uuid.uuid4()}:0"
    return [
        ("POST", "/v1/admin/reprocess-embeddings", '{"scope": "all", "since": %s}', site.admin),
        ("POST", "/v1/admin/reprocess-embeddings", '{"scope": %s}', site.admin),
        ("POST", "/v1/admin/reprocess-embeddings", '{"scope": "all", "bogus": %s}', site.admin),
        ("POST", "/v1/admin/reprocess-embeddings", "%s", site.admin),
        ("POST", "/v1/videos", '{"source_uri": "' + source + '", "title": %s}', site.owner),
        ("POST", "/v1/videos", '{"source_uri": "' + source + '", "external_id": %s}', site.owner),
        ("POST", "/v1/videos", '{"source_uri": %s}', site.owner),
        (
            "POST",
            "/v1/videos",
            '{"source_uri": "' + source + '", "scenes": [{"start_s": 0, "end_s": %s}]}',
            site.owner,
        ),
        (
            "POST",
            "/v1/videos",
            '{"source_uri": "' + source + '", "scenes": [{"start_s": 0, "end_s": 2, "transcript": %s}]}',
            site.owner,
        ),
        ("PUT", f"/v1/videos/{site.video_id}/scenes/0/texts", '{"summary": %s}', site.owner),
        ("PUT", f"/v1/videos/{site.video_id}/scenes/0/texts", '{"transcript": %s}', site.owner),
        ("POST", "/v1/search/image-by-uri", '{"keyframe_uri": %s}', site.owner),
        ("PATCH", f"/v1/persons/{site.person_id}", '{"name": %s}', site.owner),
        ("POST", f"/v1/faces/{scene}/reject", '{"person_id": %s}', site.owner),
        ("POST", "/v1/face-clusters/fc-0123456789abcdef/confirm", '{"name": %s}', site.owner),
        ("POST", "/v1/face-clusters/fc-0123456789abcdef/split", '{"face_ids": [%s]}', site.owner),
    ]


class Connection:
    """One kept-alive HTTP/1.1 connection; ``request`` fails if the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.http = http.client.HTTPConnection(host, port, timeout=30)
        self.http.connect()
        assert self.http.sock is not None
        self.local = self.http.sock.getsockname()

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        self.http.request(method, path, body=body, headers=headers or {})
        response = self.http.getresponse()
        data = response.read()
        assert self.http.sock is not None, f"{method} {path}: the server closed the connection"
        assert self.http.sock.getsockname() == self.local, f"{method} {path}: a new connection"
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def close(self) -> None:
        self.http.close()


def test_bad_json_gets_4xx_keeps_the_connection_and_logs_no_traceback(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    connection = Connection(served.host, served.port)
    seen: list[str] = []
    try:
        with caplog.at_level(logging.INFO):
            for method, path, template, headers in operations(served):
                for value in BAD_VALUES:
                    body = (template % value).encode()
                    sent = f"{method} {path} {(template % value)[:120]!r}"
                    status, response_headers, data = connection.request(
                        method, path, body, {**headers, "Content-Type": "application/json"}
                    )
                    assert status in (400, 422), (sent, status, data[:300])
                    assert problem_of(status, response_headers, data)["code"] in (
                        "json_invalid",
                        "validation_failed",
                    )
                    status, _, data = connection.request("GET", "/health")
                    assert status == 200, (sent, "then /health", status, data[:300])
                    seen.append(sent)
            # over the parser's recursion limit, and a body with no content type (parsed as JSON)
            for body, content_type in (
                (b"[" * DEEPER, {"Content-Type": "application/json"}),
                (b'{"scope": "all", "since": NaN}', {}),
                (b'{"scope": "all", "since": NaN}', {"Content-Type": "application/merge-patch+json"}),
            ):
                status, answer_headers, data = connection.request(
                    "POST", "/v1/admin/reprocess-embeddings", body, {**served.admin, **content_type}
                )
                assert status in (400, 422), (body[:40], content_type, status, data[:300])
                problem_of(status, answer_headers, data)
    finally:
        connection.close()
    assert len(seen) == len(operations(served)) * len(BAD_VALUES)
    problems = [
        f"{record.name} {record.levelname}: {record.getMessage()[:200]}"
        for record in caplog.records
        if record.levelno >= logging.ERROR or record.exc_info
    ]
    assert problems == []
    assert "Traceback" not in caplog.text


def test_a_nul_or_non_finite_number_never_reaches_the_database(served: Served) -> None:
    """The same refusals, as the one number of a request that used to be stored: a scene time
    of ``1e999`` and a title with a NUL create no video."""
    connection = Connection(served.host, served.port)
    source = f"memory://blobs/owners/{OWNER_A}/uploads/a.mp4"
    try:
        before = connection.request("GET", "/v1/videos", headers=served.owner)
        for body in (
            {"source_uri": source, "title": "a\x00b"},
            {"source_uri": source, "external_id": "x\x00"},
            {"source_uri": source + "\x00"},
        ):
            status, _, data = connection.request(
                "POST",
                "/v1/videos",
                json.dumps(body).encode(),
                {**served.owner, "Content-Type": "application/json"},
            )
            assert status == 422, (body, status, data[:300])
        after = connection.request("GET", "/v1/videos", headers=served.owner)
        assert json.loads(after[2])["videos"] == json.loads(before[2])["videos"]
    finally:
        connection.close()


def test_every_page_limit_and_cursor_is_bounded(served: Served) -> None:
    """A ``limit`` over 100 (or past Postgres' ``bigint``) and a cursor the API did not give
    are a 422 on every list, never a 500 (an offset past ``bigint`` was a 500 on the
    suggestions, when they paged by offset)."""
    connection = Connection(served.host, served.port)
    cursors = ("x", "bm90IGEgY3Vyc29y", "MjAyNi0xMS0wMXxub3QtYS11dWlk", "OTk5OTk5OTk5OTk5OTk5OTk5OTl8ZmMteA")
    try:
        for path in ("/v1/persons", "/v1/face-clusters", "/v1/videos"):
            for query in ("limit=101", "limit=99999999999999999999", *(f"cursor={c}" for c in cursors)):
                status, _, data = connection.request("GET", f"{path}?{query}", headers=served.owner)
                assert status == 422, (path, query, status, data[:300])
    finally:
        connection.close()
