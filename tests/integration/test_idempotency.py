"""``Idempotency-Key`` on the creates (issue 28), against real Postgres and Redis: the same
request with the same key gets the first answer again and does nothing twice (one person, one
photo set, one reprocess job); the key with another request is a 422 problem; an error answer
is not kept; keys are per owner and expire."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.idempotency import SqlIdempotencyStore
from scenedex.api import create_app
from scenedex.domain.idempotency import IdempotencyKeyReusedError, StoredAnswer
from scenedex.domain.model import utcnow
from scenedex.services.idempotency import Idempotency, fingerprint
from tests.fakes import face_png
from tests.integration.test_api import OWNER_A, OWNER_B, REPROCESS, Api, api_settings
from tests.job_harness import Harness
from tests.problems import problem

pytestmark = pytest.mark.integration

PERSONS = "/v1/persons"


@pytest.fixture
def api(harness: Harness) -> Iterator[Api]:
    app = create_app(api_settings(harness), runtime=harness.runtime)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(harness, client)


def count(api: Api, table: sa.Table, **where: Any) -> int:
    with api.harness.engine.connect() as connection:
        query = sa.select(sa.func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        return int(connection.scalar(query) or 0)


def create(api: Api, key: str | None, name: str, *photos: bytes, owner: uuid.UUID = OWNER_A) -> Any:
    headers = {**api.user(owner), **({"Idempotency-Key": key} if key else {})}
    files = [("photos", (f"p{i}.png", data, "image/png")) for i, data in enumerate(photos)]
    return api.client.post(PERSONS, data={"name": name}, files=files, headers=headers)


def test_a_person_created_twice_with_one_key_is_created_once(api: Api) -> None:
    face = face_png("eileen", salt="1")
    first = create(api, "k-1", "Eileen", face)
    assert first.status_code == 201, first.text
    assert first.json()["reprocess"] is not None and "idempotent-replayed" not in first.headers
    again = create(api, "k-1", "Eileen", face)  # another multipart boundary, the same request
    assert again.status_code == 201 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert count(api, t.persons, owner_id=OWNER_A) == 1
    assert count(api, t.person_photos, owner_id=OWNER_A) == 1
    assert count(api, t.reprocess_jobs) == 1

    # The key with another request: 422, nothing created.
    other_name = problem(create(api, "k-1", "Someone else", face), 422, "idempotency_key_reused")
    assert "Idempotency-Key 'k-1'" in other_name["detail"]
    problem(create(api, "k-1", "Eileen", face_png("eileen", salt="2")), 422, "idempotency_key_reused")
    person_id = first.json()["person_id"]
    photos = f"{PERSONS}/{person_id}/photos"
    add = api.client.post(
        photos,
        files=[("photos", ("p.png", face, "image/png"))],
        headers={**api.user(OWNER_A), "Idempotency-Key": "k-1"},
    )
    problem(add, 422, "idempotency_key_reused")
    assert count(api, t.persons, owner_id=OWNER_A) == 1 and count(api, t.person_photos) == 1

    # Another owner's key space is its own; no key: every request creates.
    assert create(api, "k-1", "Eileen", face, owner=OWNER_B).json()["person_id"] != person_id
    assert (
        create(api, None, "Eileen", face).json()["person_id"]
        != create(api, None, "Eileen", face).json()["person_id"]
    )
    assert count(api, t.persons, owner_id=OWNER_A) == 3 and count(api, t.persons, owner_id=OWNER_B) == 1


def test_photos_added_twice_with_one_key_are_added_once(api: Api) -> None:
    person_id = create(api, None, "Eileen", face_png("eileen", salt="1")).json()["person_id"]
    jobs_before = count(api, t.reprocess_jobs)
    files = [("photos", ("p.png", face_png("eileen", salt="2"), "image/png"))]
    headers = {**api.user(OWNER_A), "Idempotency-Key": "add-1"}
    first = api.client.post(f"{PERSONS}/{person_id}/photos", files=files, headers=headers)
    again = api.client.post(f"{PERSONS}/{person_id}/photos", files=files, headers=headers)
    assert first.status_code == again.status_code == 201 and again.content == first.content
    assert len(again.json()["photos"]) == 2 and count(api, t.person_photos, owner_id=OWNER_A) == 2
    assert count(api, t.reprocess_jobs) <= jobs_before + 1


def test_an_error_answer_is_not_kept_and_a_key_can_be_used_then(api: Api) -> None:
    refused = create(api, "k-err", "Eileen", b"not an image")
    problem(refused, 415, "unsupported_media_type")
    created = create(api, "k-err", "Eileen", face_png("eileen", salt="1"))  # another body: not a reuse
    assert created.status_code == 201, created.text
    assert count(api, t.persons, owner_id=OWNER_A) == 1


def test_a_reprocess_enqueued_twice_with_one_key_is_one_job(api: Api) -> None:
    headers = {**api.admin(), "Idempotency-Key": "nightly-2026-12-07"}
    first = api.client.post(REPROCESS, json={"scope": "all"}, headers=headers)
    again = api.client.post(REPROCESS, json={"force": False, "scope": "all"}, headers=headers)  # key order
    assert first.status_code == again.status_code == 202, again.text
    assert again.json() == first.json() and again.headers["location"] == first.headers["location"]
    assert again.headers["retry-after"] == first.headers["retry-after"]
    assert count(api, t.reprocess_jobs) == 1
    problem(api.client.post(REPROCESS, json={"scope": "all", "force": True}, headers=headers), 422)
    bad_key = api.client.post(
        REPROCESS, json={"scope": "all"}, headers={**api.admin(), "Idempotency-Key": "a b"}
    )
    problem(bad_key, 422, "validation_failed")


def test_a_key_in_use_is_409_and_an_expired_key_is_free(api: Api) -> None:
    store = SqlIdempotencyStore(api.harness.engine)
    now = utcnow()
    face = face_png("eileen", salt="1")
    running = fingerprint({"name": "Eileen", "photos": [hashlib.sha256(face).hexdigest()]})
    assert store.claim(OWNER_A, "busy", "createPerson", running, now, now + timedelta(hours=1)).new
    problem(create(api, "busy", "Eileen", face), 409, "conflict")  # the first one has not answered
    assert count(api, t.persons) == 0

    clock = [now]
    once = Idempotency(store, ttl_s=60, clock=lambda: clock[0])
    runs: list[int] = []

    def run() -> StoredAnswer:
        runs.append(1)
        return StoredAnswer(201, f'{{"n": {len(runs)}}}', {"Location": "/x"})

    assert once.once(OWNER_B, "exp", "r", "a" * 64, run).body == '{"n": 1}'
    assert once.once(OWNER_B, "exp", "r", "a" * 64, run) == StoredAnswer(201, '{"n": 1}', {"Location": "/x"})
    with pytest.raises(IdempotencyKeyReusedError):
        once.once(OWNER_B, "exp", "r", "b" * 64, run)
    clock[0] = now + timedelta(seconds=61)
    assert once.once(OWNER_B, "exp", "r", "b" * 64, run).body == '{"n": 2}'  # expired: free again
    clock[0] = now + timedelta(seconds=200)
    assert once.purge() >= 1 and len(runs) == 2
