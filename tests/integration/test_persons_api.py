"""The person endpoints (``/v1/persons``) through FastAPI's TestClient, against real Postgres and
Redis, with the jobs they enqueue run by an in-process worker on the fake embedders.

Photos are real images (``../shared/data/real``) or real PNGs carrying the fake face marker
(``face_png``), since the endpoints decode every photo they store.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from scenedex.adapters.db import tables as t
from scenedex.api import create_app
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.spec import EmbeddingStepType as Step
from tests.conftest import REAL_MEDIA
from tests.fakes import face_image, face_png
from tests.integration.test_api import OWNER_A, OWNER_B, Api, api_settings, bearer, make_token
from tests.job_harness import Harness

pytestmark = pytest.mark.integration

PERSONS = "/v1/persons"
ASTRONAUT = (REAL_MEDIA / "astronaut.png").read_bytes()


@pytest.fixture
def api(harness: Harness) -> Iterator[Api]:
    with TestClient(
        create_app(api_settings(harness), runtime=harness.runtime), raise_server_exceptions=False
    ) as client:
        yield Api(harness, client)


def photo(
    data: bytes, name: str = "photo.png", media_type: str = "image/png"
) -> tuple[str, tuple[str, bytes, str]]:
    return ("photos", (name, data, media_type))


def create(api: Api, owner: uuid.UUID, name: str, *photos: bytes) -> Any:
    return api.client.post(
        PERSONS,
        data={"name": name},
        files=[photo(p, f"p{i}.png") for i, p in enumerate(photos)],
        headers=api.user(owner),
    )


def wait_job(api: Api, job_id: str, timeout: float = 30.0) -> Any:
    summary = api.harness.wait(uuid.UUID(job_id), timeout)
    assert summary.job.status.value == "succeeded", summary.to_dict()
    return summary


def persons_in_documents(api: Api) -> dict[uuid.UUID, list[str]]:
    """Per scene, the person ids its search document lists."""
    with api.harness.engine.connect() as connection:
        rows = connection.execute(sa.select(t.search_documents.c.scene_id, t.search_documents.c.document))
        return {row.scene_id: row.document.get("person_ids", []) for row in rows}


def count_rows(api: Api, table: sa.Table, **where: Any) -> int:
    with api.harness.engine.connect() as connection:
        query = sa.select(sa.func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        return int(connection.scalar(query) or 0)


def test_person_lifecycle_over_http(api: Api) -> None:
    world = api.harness.world
    video, scenes = world.add_video(OWNER_A, [face_image("carol", salt="s0"), face_image(salt="s1")])
    world.runner().run(ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER_A))
    keyframes = {world.blobs.blobs[s.keyframe_uri] for s in scenes}
    world.faces.images.clear()
    api.harness.start_worker()
    as_a = api.user(OWNER_A)

    created = create(api, OWNER_A, "  Carol  ", face_png("carol", salt="1"), ASTRONAUT)
    assert created.status_code == 201, created.text
    body = created.json()
    person_id = body["person_id"]
    assert body["name"] == "Carol" and [p["status"] for p in body["photos"]] == ["pending", "pending"]
    assert body["reprocess"]["created"] is True
    wait_job(api, body["reprocess"]["job_id"])

    # The person steps ran; the scene faces were matched again without detecting them again.
    assert not keyframes & set(world.faces.images)
    shown = api.client.get(f"{PERSONS}/{person_id}", headers=as_a)
    assert shown.status_code == 200
    statuses = {p["photo_id"]: (p["status"], p["error"]) for p in shown.json()["photos"]}
    assert sorted(s for s, _ in statuses.values()) == ["no_face", "ok"]  # the astronaut has no fake face
    assert any(error and "no face" in error for _, error in statuses.values())
    assert persons_in_documents(api)[scenes[0].id] == [person_id]
    assert persons_in_documents(api)[scenes[1].id] == []

    listed = api.client.get(PERSONS, headers=as_a).json()
    assert listed["total"] == 1 and [p["person_id"] for p in listed["persons"]] == [person_id]
    assert listed["next_cursor"] is None and listed["persons"][0]["photos"] == shown.json()["photos"]

    renamed = api.client.patch(f"{PERSONS}/{person_id}", json={"name": "Carol Shaw"}, headers=as_a)
    assert renamed.status_code == 200 and renamed.json()["name"] == "Carol Shaw"
    assert "reprocess" not in renamed.json()  # a name feeds no embedding

    added = api.client.post(
        f"{PERSONS}/{person_id}/photos", files=[photo(face_png("carol", salt="2"), "c.jpg")], headers=as_a
    )
    assert added.status_code == 201, added.text
    assert len(added.json()["photos"]) == 3
    wait_job(api, added.json()["reprocess"]["job_id"])
    new_photo = next(p for p in added.json()["photos"] if p["photo_id"] not in statuses)
    removed = api.client.delete(f"{PERSONS}/{person_id}/photos/{new_photo['photo_id']}", headers=as_a)
    assert removed.status_code == 200 and len(removed.json()["photos"]) == 2
    assert count_rows(api, t.person_photos, id=uuid.UUID(new_photo["photo_id"])) == 0
    wait_job(api, removed.json()["reprocess"]["job_id"])
    assert not keyframes & set(world.faces.images)

    # Delete: rows, records and blobs go now; after the workers ran no scene lists the person.
    uris = [u for u in world.blobs.blobs if f"/persons/{person_id}/" in u]
    assert len(uris) == 2
    deleted = api.client.delete(f"{PERSONS}/{person_id}", headers=as_a)
    assert deleted.status_code == 200, deleted.text
    assert not [u for u in world.blobs.blobs if f"/persons/{person_id}/" in u]
    pid = uuid.UUID(person_id)
    assert count_rows(api, t.persons, id=pid) == 0
    assert count_rows(api, t.person_photos, person_id=pid) == 0
    assert count_rows(api, t.RECORD_TABLES[Step.PERSON_PHOTO_EMBEDDINGS], owner_id=OWNER_A) == 0
    assert count_rows(api, t.RECORD_TABLES[Step.PERSON_QUERY_EMBEDDINGS], person_id=pid) == 0
    wait_job(api, deleted.json()["reprocess"]["job_id"])
    assert all(person_id not in persons for persons in persons_in_documents(api).values())
    assert not keyframes & set(world.faces.images)
    assert api.client.get(f"{PERSONS}/{person_id}", headers=as_a).status_code == 404
    assert api.client.delete(f"{PERSONS}/{person_id}", headers=as_a).status_code == 404
    assert video.id


def test_a_change_while_the_owners_job_is_active(api: Api) -> None:
    """No worker: the first change's job stays queued and covers the next change; once it
    runs, a change gets a follow-up message that enqueues the owner's reprocess later."""
    first = create(api, OWNER_A, "dora", face_png("dora")).json()
    job_id = first["reprocess"]["job_id"]
    second = create(api, OWNER_A, "ed", face_png("ed")).json()
    assert second["reprocess"] == {"job_id": job_id, "created": False, "follow_up_message_id": None}

    api.harness.store.start(uuid.UUID(job_id))  # the planner took it: it may have run the person steps
    third = create(api, OWNER_A, "fay", face_png("fay")).json()
    assert third["reprocess"]["job_id"] == job_id and third["reprocess"]["created"] is False
    assert third["reprocess"]["follow_up_message_id"]
    assert api.harness.redis.llen("dramatiq:reprocessing.DQ") == 1  # delayed

    # The follow-up: retried while the owner's job runs, then it enqueues the owner's reprocess.
    from scenedex.domain.jobs import JobStatus
    from scenedex.tasks.actors import OwnerBusyRetry, refresh_owner

    with pytest.raises(OwnerBusyRetry):
        refresh_owner.fn(str(OWNER_A), "api")
    api.harness.store.cancel(uuid.UUID(job_id))
    refresh_owner.fn(str(OWNER_A), "api")
    [queued] = api.harness.store.list(status=JobStatus.QUEUED)
    assert str(queued.id) != job_id and queued.request.owner_id == OWNER_A


def test_other_owners_ids_are_unknown_and_lists_are_the_owners(api: Api) -> None:
    mine = create(api, OWNER_A, "gus", face_png("gus")).json()["person_id"]
    photo_id = api.client.get(f"{PERSONS}/{mine}", headers=api.user(OWNER_A)).json()["photos"][0]["photo_id"]
    theirs = create(api, OWNER_B, "hal", face_png("hal")).json()["person_id"]
    as_b = api.user(OWNER_B)
    for method, path, kwargs in [
        ("get", f"{PERSONS}/{mine}", {}),
        ("patch", f"{PERSONS}/{mine}", {"json": {"name": "x"}}),
        ("delete", f"{PERSONS}/{mine}", {}),
        ("post", f"{PERSONS}/{mine}/photos", {"files": [photo(face_png("x"))]}),
        ("delete", f"{PERSONS}/{mine}/photos/{photo_id}", {}),
        ("delete", f"{PERSONS}/{theirs}/photos/{photo_id}", {}),  # B's person, A's photo
        ("get", f"{PERSONS}/{uuid.uuid4()}", {}),
    ]:
        response = api.client.request(method, path, headers=as_b, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
        assert str(OWNER_A) not in response.text
    assert [p["person_id"] for p in api.client.get(PERSONS, headers=as_b).json()["persons"]] == [theirs]
    assert [p["person_id"] for p in api.client.get(PERSONS, headers=api.user(OWNER_A)).json()["persons"]] == [
        mine
    ]
    assert count_rows(api, t.person_photos, person_id=uuid.UUID(mine)) == 1  # B's attempts changed nothing


def test_persons_page_newest_first_by_cursor_through_a_delete_and_by_updated_since(api: Api) -> None:
    """Five persons of A (and one of B) stored at known times: pages of two, newest first, skip
    nothing and repeat nothing when a person of the next page is deleted between two pages;
    ``updated_since`` keeps those changed since (a rename moves ``updated_at``); B sees only B's."""
    start = datetime(2026, 11, 1, 12, tzinfo=UTC)
    ids = [uuid.uuid4() for _ in range(5)]
    rows = [
        {"id": pid, "owner_id": OWNER_A, "name": f"p{i}", "created_at": start + timedelta(minutes=i)}
        for i, pid in enumerate(ids)
    ]
    theirs = {"id": uuid.uuid4(), "owner_id": OWNER_B, "name": "b", "created_at": start}
    with api.harness.engine.begin() as connection:
        connection.execute(
            sa.insert(t.persons),
            [{**r, "changed_at": r["created_at"], "updated_at": r["created_at"]} for r in [*rows, theirs]],
        )
    as_a = api.user(OWNER_A)

    def page(**params: Any) -> dict[str, Any]:
        answer = api.client.get(PERSONS, params={"limit": 2, **params}, headers=as_a)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    first = page()
    assert [p["person_id"] for p in first["persons"]] == [str(ids[4]), str(ids[3])] and first["total"] == 5
    with api.harness.engine.begin() as connection:  # the newest of the next page goes meanwhile
        connection.execute(sa.delete(t.persons).where(t.persons.c.id == ids[2]))
    second = page(cursor=first["next_cursor"])
    assert [p["person_id"] for p in second["persons"]] == [str(ids[1]), str(ids[0])]
    assert second["next_cursor"] is None and second["total"] == 4
    assert [p["person_id"] for p in api.client.get(PERSONS, headers=api.user(OWNER_B)).json()["persons"]] == [
        str(theirs["id"])
    ]

    renamed = api.client.patch(f"{PERSONS}/{ids[0]}", json={"name": "p0 again"}, headers=as_a)
    assert renamed.status_code == 200, renamed.text
    since = page(updated_since=(datetime.now(UTC) - timedelta(minutes=1)).isoformat())
    assert [p["person_id"] for p in since["persons"]] == [str(ids[0])] and since["total"] == 1
    assert page(updated_since="2026-11-01T12:03:00Z")["total"] == 3  # p3, p4 and p0 (renamed now)
    assert page(updated_since="2026-11-01T13:04:00+01:00")["total"] == 2  # 12:04Z: p4 and p0
    assert page(updated_since="2099-01-01T00:00:00Z")["persons"] == []
    assert page(updated_since="9999-12-31T23:59:59-05:00")["persons"] == []  # past year 9999 in UTC
    assert page(updated_since="0001-01-01T00:00:00+05:00")["total"] == 4  # before year 1 in UTC
    for bad in ({"updated_since": "yesterday"}, {"updated_since": "2026-11-01T12:00:00"}, {"cursor": "x"}):
        answer = api.client.get(PERSONS, params=bad, headers=as_a)
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")


def test_auth_size_type_and_body_errors_are_4xx_never_500(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    services = api.harness.runtime.services
    assert services is not None
    monkeypatch.setattr(
        services, "settings", services.settings.model_copy(update={"max_image_bytes": 50_000})
    )
    mine = create(api, OWNER_A, "ivy", face_png("ivy")).json()["person_id"]
    as_a = api.user(OWNER_A)
    responses = []

    for method, path in [
        ("post", PERSONS),
        ("get", PERSONS),
        ("get", f"{PERSONS}/{mine}"),
        ("patch", f"{PERSONS}/{mine}"),
        ("delete", f"{PERSONS}/{mine}"),
        ("post", f"{PERSONS}/{mine}/photos"),
        ("delete", f"{PERSONS}/{mine}/photos/{uuid.uuid4()}"),
    ]:
        response = api.client.request(method, path)
        assert response.status_code == 401, (method, path)
        responses.append(response)
    bad_token = api.client.get(
        PERSONS, headers=bearer(make_token(OWNER_A, (), key="another-secret-that-is-32-bytes-or-more"))
    )
    assert bad_token.status_code == 401

    too_large = create(api, OWNER_A, "big", ASTRONAUT)  # astronaut.png is ~ 790 kB > 50 kB
    assert (
        too_large.status_code == 413 and "larger than the limit of 50000 bytes" in too_large.json()["detail"]
    )
    responses.append(too_large)
    for data, name in [
        (b"plain text, not an image", "notes.txt"),
        (face_png("x")[:60], "cut.png"),
        (b"", "empty.png"),
    ]:
        refused = create(api, OWNER_A, "bad", data)
        assert refused.status_code == 415, (name, refused.text)
        responses.append(refused)
    added = api.client.post(f"{PERSONS}/{mine}/photos", files=[photo(b"GIF89a-not-really")], headers=as_a)
    assert added.status_code == 415
    responses.append(added)
    assert count_rows(api, t.persons, owner_id=OWNER_A) == 1  # nothing of the refused creates stored

    unprocessable = [
        api.client.post(PERSONS, data={"name": "no photos"}, headers=as_a),
        api.client.post(PERSONS, files=[photo(face_png("x"))], headers=as_a),  # no name
        api.client.post(PERSONS, data={"name": "   "}, files=[photo(face_png("x"))], headers=as_a),
        api.client.post(PERSONS, data={"name": "x" * 201}, files=[photo(face_png("x"))], headers=as_a),
        api.client.post(PERSONS, data={"name": "x", "photos": "not a file"}, headers=as_a),
        api.client.post(PERSONS, json={"name": "x"}, headers=as_a),
        api.client.post(PERSONS, data={"name": "many"}, files=[photo(face_png("x"))] * 9, headers=as_a),
        api.client.patch(f"{PERSONS}/{mine}", json={"name": ""}, headers=as_a),
        api.client.patch(f"{PERSONS}/{mine}", json={"name": "   "}, headers=as_a),
        api.client.patch(f"{PERSONS}/{mine}", json={"name": "x", "extra": 1}, headers=as_a),
        api.client.patch(
            f"{PERSONS}/{mine}", content=b"{not json", headers={**as_a, "Content-Type": "application/json"}
        ),
        api.client.get(f"{PERSONS}/not-a-uuid", headers=as_a),
        api.client.delete(f"{PERSONS}/{mine}/photos/123", headers=as_a),
        api.client.get(PERSONS, params={"limit": 0}, headers=as_a),
        api.client.get(PERSONS, params={"limit": 101}, headers=as_a),
        api.client.get(PERSONS, params={"cursor": "bm90IGEgY3Vyc29y"}, headers=as_a),
        api.client.get(PERSONS, params={"updated_since": "yesterday"}, headers=as_a),
        api.client.get(PERSONS, params={"updated_since": "2026-11-01T12:00:00"}, headers=as_a),
    ]
    for response in unprocessable:
        assert response.status_code == 422, (response.request.method, response.request.url, response.text)
    responses += unprocessable

    big_json = api.client.patch(f"{PERSONS}/{mine}", json={"name": "x" * 100_000}, headers=as_a)
    assert big_json.status_code == 413  # JSON bodies keep the small limit
    responses.append(big_json)
    for response in responses:
        assert 400 <= response.status_code < 500 and "detail" in response.json()
