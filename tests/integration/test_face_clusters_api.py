"""Suggested persons over HTTP (``/v1/face-clusters``, ``/v1/faces/{id}/reject``) and on the
command line (``scenedex faces``), against real Postgres and Redis with the fake embedders; the
jobs the decisions enqueue run on an in-process worker.

The library is the one of tests/unit/test_face_decisions.py, as real PNGs (``face_png``) so that
the thumbnails are real JPEGs: owner A's unknown faces "bob" (4 scenes) and "carol" (3 scenes),
and a person "alice" with her own scene.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from scenedex.adapters.db import tables as t
from scenedex.api import create_app
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from tests.fakes import face_png
from tests.integration.test_api import OWNER_A, OWNER_B, Api, api_settings
from tests.job_harness import Harness
from tests.problems import problem

pytestmark = pytest.mark.integration

CLUSTERS = "/v1/face-clusters"
BOB_SCENES = (0, 2, 4, 7)
CAROL_SCENES = (1, 3, 5)
UNKNOWN_CLUSTER = "fc-0000000000000000"
EXACTLY_ONE = "give exactly one of person_id (an existing person) or name (a new one)"


@pytest.fixture
def api(harness: Harness) -> Iterator[Api]:
    with TestClient(
        create_app(api_settings(harness), runtime=harness.runtime), raise_server_exceptions=False
    ) as client:
        yield Api(harness, client)


@pytest.fixture
def scenes(api: Api) -> dict[int, uuid.UUID]:
    """Owner A's library, reprocessed (so clustered): scene ordinal -> scene id."""
    world = api.harness.world
    keyframes = [face_png(salt=str(i), size=64) for i in range(9)]
    for i in BOB_SCENES:
        keyframes[i] = face_png("bob", salt=str(i), size=64)
    for i in CAROL_SCENES:
        keyframes[i] = face_png("carol", salt=str(i), size=64)
    keyframes[6] = face_png("alice", salt="6", size=64)
    world.add_person(OWNER_A, "alice", [face_png("alice", salt="photo")])
    _, added = world.add_video(OWNER_A, keyframes)
    run(api, OWNER_A)
    return {s.ordinal: s.id for s in added}


def run(api: Api, owner: uuid.UUID) -> None:
    services = api.harness.runtime.services
    assert services is not None
    assert services.runner().run(ReprocessRequest(ReprocessScope.OWNER, owner_id=owner)).ok


def listed(api: Api, owner: uuid.UUID = OWNER_A, **params: Any) -> dict[str, Any]:
    response = api.client.get(CLUSTERS, params=params, headers=api.user(owner))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def suggestion(api: Api, scenes: dict[int, uuid.UUID], ordinals: tuple[int, ...]) -> dict[str, Any]:
    """Owner A's suggestion whose scenes are exactly ``ordinals``."""
    wanted = {str(scenes[i]) for i in ordinals}
    return next(s for s in listed(api)["suggestions"] if set(s["scene_ids"]) == wanted)


def alice(api: Api) -> str:
    persons = api.client.get("/v1/persons", headers=api.user(OWNER_A)).json()["persons"]
    return str(next(p["person_id"] for p in persons if p["name"] == "alice"))


def wait_job(api: Api, body: dict[str, Any]) -> None:
    """Until the decision's job is over and the worker idle: the owner's faces are clustered
    again by the worker that finished the job, after it is marked finished."""
    summary = api.harness.wait(uuid.UUID(body["reprocess"]["job_id"]), 30.0)
    assert summary.job.status.value == "succeeded", summary.to_dict()
    assert api.harness.worker is not None
    api.harness.worker.join()


def persons_of(api: Api, scenes: dict[int, uuid.UUID]) -> dict[int, list[str]]:
    """Per scene ordinal, the person ids its search document lists."""
    ordinal = {scene_id: i for i, scene_id in scenes.items()}
    with api.harness.engine.connect() as connection:
        rows = connection.execute(sa.select(t.search_documents.c.scene_id, t.search_documents.c.document))
        return {ordinal[r.scene_id]: r.document.get("person_ids", []) for r in rows if r.scene_id in ordinal}


def test_list_pages_largest_first_with_thumbnails_and_get(api: Api, scenes: dict[int, uuid.UUID]) -> None:
    page = listed(api)
    assert page["total"] == 2 and page["limit"] == 20 and page["next_cursor"] is None
    assert page["unknown_faces"] == 7 and page["waiting_faces"] == 0 and page["computed_at"]
    bob, carol = page["suggestions"]
    assert (bob["size"], bob["scene_count"], carol["size"]) == (4, 4, 3)
    assert set(bob["scene_ids"]) == {str(scenes[i]) for i in BOB_SCENES}
    assert set(carol["scene_ids"]) == {str(scenes[i]) for i in CAROL_SCENES}
    for item in page["suggestions"]:
        assert item["cluster_id"].startswith("fc-") and item["split"] is False
        prefix, _, data = item["thumbnail"].partition(",")
        assert prefix == "data:image/jpeg;base64" and base64.b64decode(data).startswith(b"\xff\xd8")
        assert item["representative"] in item["faces"]
        for face in item["faces"]:
            assert face["face_id"] == f"{face['scene_id']}:0" and len(face["bbox"]) == 4
            assert face["end_s"] >= face["start_s"]

    first = listed(api, limit=1)
    assert [s["cluster_id"] for s in first["suggestions"]] == [bob["cluster_id"]]
    assert first["next_cursor"] and first["total"] == 2
    with api.harness.engine.begin() as connection:  # the one shown goes (offset 1 would skip carol)
        connection.execute(
            sa.delete(t.face_clusters).where(t.face_clusters.c.cluster_id == bob["cluster_id"])
        )
    second = listed(api, limit=1, cursor=first["next_cursor"])
    assert [s["cluster_id"] for s in second["suggestions"]] == [carol["cluster_id"]]
    assert second["next_cursor"] is None

    one = api.client.get(f"{CLUSTERS}/{carol['cluster_id']}", headers=api.user(OWNER_A))
    assert one.status_code == 200 and one.json() == carol


def test_confirm_as_a_new_person_then_into_an_existing_one(api: Api, scenes: dict[int, uuid.UUID]) -> None:
    api.harness.start_worker()
    as_a = api.user(OWNER_A)
    bob = suggestion(api, scenes, BOB_SCENES)

    created = api.client.post(f"{CLUSTERS}/{bob['cluster_id']}/confirm", json={"name": " Bob "}, headers=as_a)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["decision"] == "confirm" and body["person_name"] == "Bob" and body["person_created"] is True
    assert sorted(body["face_ids"]) == sorted(f["face_id"] for f in bob["faces"])
    assert body["reprocess"]["created"] is True
    person = api.client.get(f"/v1/persons/{body['person_id']}", headers=as_a)
    assert person.status_code == 200 and person.json()["name"] == "Bob"
    assert api.client.get(f"{CLUSTERS}/{bob['cluster_id']}", headers=as_a).status_code == 404  # at once
    wait_job(api, body)
    documents = persons_of(api, scenes)
    assert {i for i, ids in documents.items() if body["person_id"] in ids} == set(BOB_SCENES)
    assert [s["size"] for s in listed(api)["suggestions"]] == [3]

    carol = suggestion(api, scenes, CAROL_SCENES)
    into = api.client.post(
        f"{CLUSTERS}/{carol['cluster_id']}/confirm", json={"person_id": alice(api)}, headers=as_a
    )
    assert into.status_code == 200, into.text
    assert into.json()["person_created"] is False and into.json()["person_name"] == "alice"
    assert into.json()["person_id"] == alice(api)
    wait_job(api, into.json())
    documents = persons_of(api, scenes)
    assert {i for i, ids in documents.items() if alice(api) in ids} == {*CAROL_SCENES, 6}
    assert listed(api)["total"] == 0
    assert api.client.get("/v1/persons", headers=as_a).json()["total"] == 2  # alice and Bob, no other


def test_split_a_suggestion_and_reject_a_face(api: Api, scenes: dict[int, uuid.UUID]) -> None:
    api.harness.start_worker()
    as_a = api.user(OWNER_A)
    bob = suggestion(api, scenes, BOB_SCENES)
    off = bob["faces"][0]["face_id"]
    split = api.client.post(f"{CLUSTERS}/{bob['cluster_id']}/split", json={"face_ids": [off]}, headers=as_a)
    assert split.status_code == 200, split.text
    assert split.json()["decision"] == "split" and split.json()["face_ids"] == [off]
    assert split.json()["person_id"] is None and split.json()["reprocess"]["created"] is True
    wait_job(api, split.json())
    suggestions = listed(api)["suggestions"]
    assert sorted((s["size"], s["split"]) for s in suggestions) == [(1, True), (3, False), (3, False)]
    assert next(s for s in suggestions if s["split"])["faces"][0]["face_id"] == off

    carol = suggestion(api, scenes, CAROL_SCENES)
    confirmed = api.client.post(
        f"{CLUSTERS}/{carol['cluster_id']}/confirm", json={"name": "Carol"}, headers=as_a
    )
    wait_job(api, confirmed.json())
    person = confirmed.json()["person_id"]
    face = f"{scenes[CAROL_SCENES[0]]}:0"
    rejected = api.client.post(f"/v1/faces/{face}/reject", json={"person_id": person}, headers=as_a)
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["decision"] == "reject" and rejected.json()["face_ids"] == [face]
    assert rejected.json()["person_id"] == person and rejected.json()["reprocess"]
    wait_job(api, rejected.json())
    documents = persons_of(api, scenes)
    assert {i for i, ids in documents.items() if person in ids} == set(CAROL_SCENES[1:])
    again = api.client.post(f"/v1/faces/{face}/reject", json={"person_id": person}, headers=as_a)
    assert again.status_code == 200 and again.json()["face_ids"] == []  # stored once


def test_decisions_with_an_idempotency_key_are_made_once(api: Api, scenes: dict[int, uuid.UUID]) -> None:
    """A confirm, split or reject sent again with its ``Idempotency-Key`` gets the first answer
    (marked replayed) and stores nothing twice; the key with another body is a 422 problem."""

    def post(path: str, body: dict[str, Any], key: str) -> Any:
        return api.client.post(path, json=body, headers={**api.user(OWNER_A), "Idempotency-Key": key})

    def decisions() -> int:
        with api.harness.engine.connect() as connection:
            return int(connection.scalar(sa.select(sa.func.count()).select_from(t.face_decisions)) or 0)

    carol, bob = suggestion(api, scenes, CAROL_SCENES), suggestion(api, scenes, BOB_SCENES)
    confirm = f"{CLUSTERS}/{carol['cluster_id']}/confirm"
    first = post(confirm, {"name": "Carol"}, "confirm-1")
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers, first.text
    stored = decisions()
    again = post(confirm, {"name": "Carol"}, "confirm-1")  # the suggestion is gone: a new call is 404
    assert (again.status_code, again.json(), again.headers["idempotent-replayed"]) == (
        201,
        first.json(),
        "true",
    )
    assert decisions() == stored
    with api.harness.engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).where(t.persons.c.name == "Carol")) == 1
    problem(post(confirm, {"name": "Someone else"}, "confirm-1"), 422, "idempotency_key_reused")

    split = f"{CLUSTERS}/{bob['cluster_id']}/split"
    off = [bob["faces"][0]["face_id"]]
    made = post(split, {"face_ids": off}, "split-1")
    assert made.status_code == 200, made.text
    replayed = post(split, {"face_ids": off}, "split-1")
    assert replayed.json() == made.json() and replayed.headers["idempotent-replayed"] == "true"
    assert decisions() == stored + 1
    problem(post(split, {"face_ids": [bob["faces"][1]["face_id"]]}, "split-1"), 422, "idempotency_key_reused")

    face = f"{scenes[CAROL_SCENES[0]]}:0"
    reject = f"/v1/faces/{face}/reject"
    rejected = post(reject, {"person_id": first.json()["person_id"]}, "reject-1")
    assert rejected.status_code == 200 and rejected.json()["face_ids"] == [face], rejected.text
    replayed = post(reject, {"person_id": first.json()["person_id"]}, "reject-1")
    assert replayed.json() == rejected.json()  # a new call would answer face_ids == []
    assert replayed.headers["idempotent-replayed"] == "true"
    problem(post(reject, {"person_id": alice(api)}, "reject-1"), 422, "idempotency_key_reused")


def test_invalid_requests_are_422_with_a_clear_message(api: Api, scenes: dict[int, uuid.UUID]) -> None:
    as_a = api.user(OWNER_A)
    bob = suggestion(api, scenes, BOB_SCENES)
    confirm = f"{CLUSTERS}/{bob['cluster_id']}/confirm"
    split = f"{CLUSTERS}/{bob['cluster_id']}/split"
    for body in ({"person_id": alice(api), "name": "Bob"}, {}, {"person_id": None, "name": None}):
        response = api.client.post(confirm, json=body, headers=as_a)
        assert response.status_code == 422, (body, response.text)
        assert (
            response.json()["detail"]
            == "give exactly one of person_id (an existing person) or name (a new one)"
        )

    unknown_face = f"{uuid.uuid4()}:0"
    not_in_it = api.client.post(split, json={"face_ids": [unknown_face]}, headers=as_a)
    assert not_in_it.status_code == 422
    assert not_in_it.json()["detail"] == f"not faces of suggestion {bob['cluster_id']}: {unknown_face}"
    every = api.client.post(split, json={"face_ids": [f["face_id"] for f in bob["faces"]]}, headers=as_a)
    assert every.status_code == 422 and "at least one face" in every.json()["detail"]

    for method, path, body in [
        ("post", confirm, {"name": "   "}),
        ("post", confirm, {"name": "x" * 201}),
        ("post", confirm, {"person_id": "not-a-uuid"}),
        ("post", confirm, {"name": "Bob", "extra": 1}),
        ("post", split, {"face_ids": []}),
        ("post", split, {"face_ids": ["not-a-face"]}),
        ("post", f"{CLUSTERS}/not-a-cluster/split", {"face_ids": [unknown_face]}),
        ("post", "/v1/faces/not-a-face/reject", {"person_id": alice(api)}),
        ("post", f"/v1/faces/{unknown_face}/reject", {}),
        ("get", f"{CLUSTERS}/not-a-cluster", None),
        ("get", f"{CLUSTERS}?limit=0", None),
        ("get", f"{CLUSTERS}?limit=101", None),
        ("get", f"{CLUSTERS}?cursor=bm90IGEgY3Vyc29y", None),
    ]:
        response = api.client.request(method, path, json=body, headers=as_a)
        assert response.status_code == 422, (method, path, body, response.text)
        assert "detail" in response.json()
    for method, path, body in [
        ("get", f"{CLUSTERS}/{UNKNOWN_CLUSTER}", None),
        ("post", f"{CLUSTERS}/{UNKNOWN_CLUSTER}/confirm", {"name": "x"}),
        ("post", f"{CLUSTERS}/{UNKNOWN_CLUSTER}/split", {"face_ids": [unknown_face]}),
        ("post", f"/v1/faces/{unknown_face}/reject", {"person_id": alice(api)}),
        ("post", f"/v1/faces/{scenes[0]}:7/reject", {"person_id": alice(api)}),  # no such track
        ("post", f"/v1/faces/{scenes[0]}:0/reject", {"person_id": str(uuid.uuid4())}),
        ("post", confirm, {"person_id": str(uuid.uuid4())}),
    ]:
        response = api.client.request(method, path, json=body, headers=as_a)
        assert response.status_code == 404, (method, path, body, response.text)
    for method, path in [
        ("get", CLUSTERS),
        ("get", f"{CLUSTERS}/{bob['cluster_id']}"),
        ("post", confirm),
        ("post", split),
        ("post", f"/v1/faces/{scenes[0]}:0/reject"),
    ]:
        assert api.client.request(method, path, json={}).status_code == 401, (method, path)
    assert listed(api)["total"] == 2  # nothing above stored a decision


def test_another_owners_ids_are_unknown_on_every_endpoint(api: Api, scenes: dict[int, uuid.UUID]) -> None:
    world = api.harness.world
    theirs = world.add_person(OWNER_B, "dan", [face_png("dan", salt="photo")])
    _, b_scenes = world.add_video(OWNER_B, [face_png("erin", salt=str(i), size=64) for i in range(3)])
    as_b = api.user(OWNER_B)
    assert listed(api, OWNER_B)["total"] == 0  # not clustered yet: nothing, and none of A's
    run(api, OWNER_B)
    [b_cluster] = listed(api, OWNER_B)["suggestions"]
    assert set(b_cluster["scene_ids"]) == {str(s.id) for s in b_scenes}

    bob = suggestion(api, scenes, BOB_SCENES)
    a_face, b_face = bob["faces"][0]["face_id"], b_cluster["faces"][0]["face_id"]
    a_person, b_person = alice(api), str(theirs.id)
    for method, path, body in [
        ("get", f"{CLUSTERS}/{bob['cluster_id']}", None),
        ("post", f"{CLUSTERS}/{bob['cluster_id']}/confirm", {"name": "Bob"}),
        ("post", f"{CLUSTERS}/{bob['cluster_id']}/confirm", {"person_id": b_person}),
        ("post", f"{CLUSTERS}/{bob['cluster_id']}/split", {"face_ids": [a_face]}),
        ("post", f"/v1/faces/{a_face}/reject", {"person_id": a_person}),
        ("post", f"/v1/faces/{a_face}/reject", {"person_id": b_person}),  # A's face, B's person
        ("post", f"/v1/faces/{b_face}/reject", {"person_id": a_person}),  # B's face, A's person
        ("post", f"{CLUSTERS}/{b_cluster['cluster_id']}/confirm", {"person_id": a_person}),
    ]:
        response = api.client.request(method, path, json=body, headers=as_b)
        assert response.status_code == 404, (method, path, body, response.text)
        assert str(OWNER_A) not in response.text
    assert [s["cluster_id"] for s in listed(api, OWNER_B)["suggestions"]] == [b_cluster["cluster_id"]]
    assert listed(api)["total"] == 2 and suggestion(api, scenes, BOB_SCENES) == bob  # A's unchanged
    with api.harness.engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(t.face_decisions)) == 0
    assert api.client.get("/v1/persons", headers=as_b).json()["total"] == 1  # no person created for B


# -- the command line --------------------------------------------------------------------------


@pytest.fixture
def cli(api: Api, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``scenedex`` in process, on the harness's application (fake embedders, the test database)."""
    from scenedex.application import Application

    harness_app = Application(api.harness.runtime.services, api.harness.runtime)
    monkeypatch.setattr("scenedex.scripts.faces_cli.build_application", lambda **_: harness_app)
    from scenedex.scripts.cli import app

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})

    return invoke


def test_cli_lists_and_decides_like_the_api(api: Api, scenes: dict[int, uuid.UUID], cli: Any) -> None:
    owner = str(OWNER_A)
    printed = cli("faces", "clusters", "--owner-id", owner, "--json")
    assert printed.exit_code == 0, printed.output
    page, answer = json.loads(printed.stdout), listed(api)
    assert datetime.fromisoformat(page.pop("computed_at")) == datetime.fromisoformat(
        answer.pop("computed_at")
    )
    assert (page.pop("offset"), page.pop("next_offset"), answer.pop("next_cursor")) == (0, None, None)
    assert page == answer  # the CLI pages by offset, the API by cursor
    page = json.loads(cli("faces", "clusters", "--owner-id", owner, "--limit", "1", "--json").stdout)
    assert page["next_offset"] == 1 and len(page["suggestions"]) == 1
    table = cli("faces", "clusters", "--owner-id", owner)
    assert table.exit_code == 0, table.output
    bob = suggestion(api, scenes, BOB_SCENES)
    assert "2 of 2 suggested persons" in table.stdout and bob["cluster_id"] in table.stdout
    assert bob["representative"]["scene_id"] in table.stdout

    confirmed = cli("faces", "confirm", bob["cluster_id"], "--owner-id", owner, "--name", "Bob", "--json")
    assert confirmed.exit_code == 0, confirmed.output
    decided = json.loads(confirmed.stdout)
    assert decided["decision"] == "confirm" and decided["person_created"] is True
    assert decided["person_name"] == "Bob" and len(decided["face_ids"]) == 4
    job = api.harness.store.get(uuid.UUID(decided["reprocess_job_id"]))
    assert job is not None and job.request.owner_id == OWNER_A and job.trigger.value == "cli"
    assert [s["size"] for s in listed(api)["suggestions"]] == [3]

    carol = suggestion(api, scenes, CAROL_SCENES)
    split = cli("faces", "split", carol["cluster_id"], carol["faces"][0]["face_id"], "--owner-id", owner)
    assert split.exit_code == 0, split.output
    assert (
        split.stdout.startswith("split: 1 face(s)\n") and f"job {decided['reprocess_job_id']}" in split.stdout
    )


def test_cli_usage_errors_are_one_line_and_exit_2(api: Api, scenes: dict[int, uuid.UUID], cli: Any) -> None:
    owner = str(OWNER_A)
    bob = suggestion(api, scenes, BOB_SCENES)
    for args, message in [
        (["confirm", UNKNOWN_CLUSTER, "--owner-id", owner, "--name", "x"], "not found"),
        (["confirm", bob["cluster_id"], "--owner-id", owner], "exactly one of person_id"),
        (["confirm", bob["cluster_id"], "--owner-id", owner, "--person-id", "nope"], "person id"),
        (["confirm", bob["cluster_id"], "--owner-id", str(OWNER_B), "--name", "x"], "not found"),
        (["reject", "not-a-face", "--owner-id", owner, "--person-id", alice(api)], "not a face id"),
        (["reject", f"{scenes[0]}:0", "--owner-id", owner, "--person-id", str(uuid.uuid4())], "not found"),
        (["split", bob["cluster_id"], f"{uuid.uuid4()}:0", "--owner-id", owner], "not faces of suggestion"),
        (["clusters", "--owner-id", "not-a-uuid"], "owner id"),
        (["clusters", "--owner-id", owner, "--limit", "0"], "limit"),
    ]:
        result = cli("faces", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, (args, result.output)
    assert listed(api)["total"] == 2  # nothing decided
