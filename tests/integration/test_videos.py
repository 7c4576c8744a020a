"""Videos over HTTP: create from the blob store, ingest on a worker, read, list, change texts,
delete; against real Postgres and Redis with an in-process worker and the fake embedders
(``tests.job_harness``). Sources are the small real clips in ../shared/data/real; most tests
give the upstream ``scenes`` (no scene detection), one detects."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from scenedex.adapters.db import tables as t
from scenedex.api import create_app
from scenedex.domain.blobs import upload_key
from scenedex.domain.limits import MAX_MEDIA_SECONDS
from scenedex.domain.model import SceneDocument
from scenedex.services import videos
from scenedex.services.ingest import video_prefix
from tests.integration.test_api import OWNER_A, OWNER_B, Api, api_settings, bearer, make_token
from tests.job_harness import Harness

pytestmark = pytest.mark.integration

MEDIA = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
BIKES = MEDIA / "bikes.mp4"  # 10 s, 6 detected scenes
UPSTREAM = [
    {"start_s": 0.0, "end_s": 3.0, "transcript": "hello", "summary": "two riders on a trail"},
    {"start_s": 3.0, "end_s": 6.5, "visual_description": "a red bike", "summary": "a jump"},
    {"start_s": 6.5, "end_s": 10.0, "summary": "the finish line"},
]


def videos_api(harness: Harness) -> Iterator[Api]:
    """The owner API on the harness's runtime (skipped without the sample media)."""
    if not BIKES.is_file():
        pytest.skip(f"sample media missing: {BIKES}")
    app = create_app(api_settings(harness), runtime=harness.runtime)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(harness, client)


@pytest.fixture
def api(harness: Harness) -> Iterator[Api]:
    yield from videos_api(harness)


def owner(api: Api, who: uuid.UUID = OWNER_A) -> dict[str, str]:
    return api.user(who)


def upload(api: Api, name: str, data: bytes, who: uuid.UUID = OWNER_A) -> str:
    """An upload under the owner's own prefix (``owners/{who}/uploads/{name}``): the only place
    a video's source, subtitles or keyframes may come from."""
    return api.harness.world.blobs.write(upload_key(who, name), data)


def upload_uri(api: Api, who: uuid.UUID, name: str) -> str:
    """The URI ``upload`` would give, without writing anything."""
    return f"{api.harness.world.blobs.root_uri}/{upload_key(who, name)}"


def post(api: Api, who: uuid.UUID = OWNER_A, **body: Any) -> Any:
    return api.client.post("/v1/videos", json=body, headers=owner(api, who))


def wait_status(api: Api, video_id: str, *statuses: str, timeout: float = 60.0) -> dict[str, Any]:
    return wait_status_of(api, OWNER_A, video_id, *statuses, timeout=timeout)


def json_text(body: Any) -> str:
    """``body`` as JSON text, non-finite numbers written as Python does (``Infinity``)."""
    return json.dumps(body)


def wait_status_of(
    api: Api, who: uuid.UUID, video_id: str, *statuses: str, timeout: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = api.client.get(f"/v1/videos/{video_id}", headers=owner(api, who)).json()
        if body.get("status") in statuses:
            return body
        time.sleep(0.05)
    raise AssertionError(f"video {video_id} not {statuses} after {timeout} s: {body}")


def idle(api: Api) -> None:
    """Every queued message (ingest, embed, delete) handled."""
    broker = dramatiq.get_broker()
    for queue in ("embeddings", "reprocessing"):
        broker.join(queue, timeout=60_000)
    assert api.harness.worker is not None
    api.harness.worker.join()


def ready_video(api: Api, name: str = "bikes.mp4", scenes: Any = UPSTREAM, **body: Any) -> dict[str, Any]:
    source = upload(api, name, BIKES.read_bytes())
    created = post(api, source_uri=source, scenes=scenes, **body)
    assert created.status_code == 202, created.text
    return wait_status(api, created.json()["video_id"], "ready", "failed")


def counts(engine: sa.Engine, video_id: str) -> dict[str, int]:
    """Rows of the video: itself, scenes, each record kind, search documents."""
    vid = uuid.UUID(video_id)
    with engine.connect() as connection:
        scene_ids = select_ids(connection, vid)
        found = {
            "videos": connection.scalar(sa.select(sa.func.count()).where(t.videos.c.id == vid)),
            "scenes": len(scene_ids),
            "documents": connection.scalar(
                sa.select(sa.func.count()).where(t.search_documents.c.video_id == vid)
            ),
        }
        for step, table in t.RECORD_TABLES.items():
            if "scene_id" in table.c:
                found[step.value] = connection.scalar(
                    sa.select(sa.func.count()).where(table.c.scene_id.in_(scene_ids or [uuid.uuid4()]))
                )
    return found


def select_ids(connection: sa.Connection, video_id: uuid.UUID) -> list[uuid.UUID]:
    return list(connection.scalars(sa.select(t.scenes.c.id).where(t.scenes.c.video_id == video_id)))


def blobs_under(api: Api, who: uuid.UUID, video_id: str) -> list[str]:
    prefix = f"{api.harness.world.blobs.root_uri}/{video_prefix(who, uuid.UUID(video_id))}/"
    return sorted(uri for uri in api.harness.world.blobs.blobs if uri.startswith(prefix))


# -- create, read, list ----------------------------------------------------------------------------


def test_create_is_idempotent_by_external_id_and_lists_only_the_owners_videos(api: Api) -> None:
    source = upload(api, "a.mp4", b"not read until a worker runs")
    first = post(api, source_uri=source, external_id="clip-1", title="A", scenes=UPSTREAM)
    assert first.status_code == 202, first.text
    video_id = first.json()["video_id"]
    assert first.json()["status"] == "queued" and first.json()["message_id"]

    again = post(api, source_uri=source, external_id="clip-1", title="A", scenes=UPSTREAM)
    assert again.status_code == 202 and again.json()["video_id"] == video_id
    differs = post(api, source_uri=source, external_id="clip-1", title="A", scenes=UPSTREAM[:1])
    assert differs.status_code == 409 and video_id in differs.json()["detail"]
    assert post(api, source_uri=source + "x", external_id="clip-1").status_code == 409
    # Owner B cannot name A's upload: the same 404 as a missing blob (no existence oracle).
    stolen = post(api, OWNER_B, source_uri=source, external_id="clip-1")
    absent = post(api, OWNER_B, source_uri=upload_uri(api, OWNER_B, "nothing.mp4"))
    assert stolen.status_code == absent.status_code == 404, (stolen.text, absent.text)
    assert stolen.json()["detail"].split(": no object")[0] == "source_uri"
    # The same external_id of another owner is another video.
    other = post(api, OWNER_B, source_uri=upload(api, "a.mp4", b"B's own", OWNER_B), external_id="clip-1")
    assert other.status_code == 202 and other.json()["video_id"] != video_id
    plain = post(api, source_uri=source)
    assert plain.status_code == 202

    got = api.client.get(f"/v1/videos/{video_id}", headers=owner(api)).json()
    assert got["video_id"] == video_id and got["external_id"] == "clip-1" and got["title"] == "A"
    assert got["status"] == "queued" and got["scenes"] == [] and got["error"] is None
    assert got["spec_version"] == api.harness.spec_version and got["updated_at"]

    # Newest first, by cursor (issue 28): the plain video was created last.
    listed = api.client.get("/v1/videos", params={"limit": 1}, headers=owner(api)).json()
    assert [v["video_id"] for v in listed["videos"]] == [plain.json()["video_id"]] and listed["next_cursor"]
    rest = api.client.get("/v1/videos", params={"cursor": listed["next_cursor"]}, headers=owner(api)).json()
    assert [v["video_id"] for v in rest["videos"]] == [video_id] and rest["next_cursor"] is None
    bad = api.client.get("/v1/videos", params={"cursor": "not-a-cursor"}, headers=owner(api))
    assert bad.status_code == 422 and "cursor" in bad.json()["detail"]
    assert api.client.get("/v1/videos", params={"limit": 101}, headers=owner(api)).status_code == 422
    by_status = api.client.get("/v1/videos", params={"status": "ready"}, headers=owner(api)).json()
    assert by_status["videos"] == []
    b_list = api.client.get("/v1/videos", headers=owner(api, OWNER_B)).json()["videos"]
    assert [v["video_id"] for v in b_list] == [other.json()["video_id"]]


def test_owner_isolation_auth_and_bad_bodies(api: Api) -> None:
    source = upload(api, "a.mp4", b"x")
    video_id = post(api, source_uri=source, scenes=UPSTREAM).json()["video_id"]
    unknown = str(uuid.uuid4())
    b = owner(api, OWNER_B)
    for vid in (video_id, unknown):
        assert api.client.get(f"/v1/videos/{vid}", headers=b).status_code == 404
        assert api.client.delete(f"/v1/videos/{vid}", headers=b).status_code == 404
        put = api.client.put(f"/v1/videos/{vid}/scenes/0/texts", json={"summary": "x"}, headers=b)
        assert put.status_code == 404
    assert api.client.get(f"/v1/videos/{video_id}", headers=owner(api)).status_code == 200

    for method, path in [
        ("get", "/v1/videos"),
        ("get", f"/v1/videos/{video_id}"),
        ("post", "/v1/videos"),
        ("delete", f"/v1/videos/{video_id}"),
        ("put", f"/v1/videos/{video_id}/scenes/0/texts"),
    ]:
        assert api.client.request(method, path, json={}).status_code == 401
    expired = bearer(make_token(OWNER_A, (), exp_s=-60))
    assert api.client.get("/v1/videos", headers=expired).status_code == 401

    bad_bodies: list[Any] = [
        {},
        {"source_uri": ""},
        {"source_uri": source, "colour": "red"},
        {"source_uri": "file:///etc/passwd"},
        {"source_uri": "https://example.com/a.mp4"},  # no allowed hosts configured
        {"source_uri": source, "scenes": []},
        {"source_uri": source, "scenes": [{"start_s": 2, "end_s": 1}]},
        {"source_uri": source, "scenes": [{"start_s": -1, "end_s": 1}]},
        {"source_uri": source, "scenes": [{"start_s": 0, "end_s": 2}, {"start_s": 1, "end_s": 3}]},
        {"source_uri": source, "scenes": [{"start_s": 0, "end_s": 1, "keyframe_uri": "s3://elsewhere/k"}]},
        {"source_uri": source, "subtitles_uri": "/etc/passwd"},
        {"source_uri": source, "scenes": [{"start_s": 0, "end_s": 1e15}]},  # past MAX_MEDIA_SECONDS
        {"source_uri": 7},
        [],
    ]
    for body in bad_bodies:
        response = api.client.post("/v1/videos", json=body, headers=owner(api))
        assert response.status_code == 422, (body, response.text)
    for params in (
        {"status": "bogus"},
        {"limit": 0},
        {"limit": 1000},
        {"cursor": "x" * 201},
        {"cursor": "?"},
    ):
        assert api.client.get("/v1/videos", params=params, headers=owner(api)).status_code == 422
    assert api.client.get("/v1/videos/not-a-uuid", headers=owner(api)).status_code == 422
    put = api.client.put(f"/v1/videos/{video_id}/scenes/-1/texts", json={}, headers=owner(api))
    assert put.status_code == 422
    put = api.client.put(f"/v1/videos/{video_id}/scenes/0/texts", json={"title": "x"}, headers=owner(api))
    assert put.status_code == 422


def test_every_uri_is_confined_to_the_callers_prefix(api: Api) -> None:
    """Issue 25, D1: B named A's upload as its source and A's person photo as a keyframe, and
    B's keyframe endpoint served A's photo. Every URI a create names is confined to the
    caller's ``owners/{owner}/`` prefix after canonicalisation; another owner's blob, a
    non-canonical spelling of B's own and a missing blob all answer the same 404."""
    a_source = upload(api, "a.mp4", b"A's video")
    a_photo = api.harness.world.blobs.write(f"owners/{OWNER_A}/persons/p/photo.jpg", b"A's face")
    b_source = upload(api, "b.mp4", b"B's video", OWNER_B)
    root = api.harness.world.blobs.root_uri
    b_prefix = f"{root}/owners/{OWNER_B}"
    escapes = [
        a_source,
        a_photo,
        f"{b_prefix}/../{OWNER_A}/uploads/a.mp4",
        f"{b_prefix}/uploads/../../{OWNER_A}/uploads/a.mp4",
        f"{b_prefix}/uploads/%2e%2e/%2e%2e/{OWNER_A}/uploads/a.mp4",
        f"{b_prefix}//uploads/b.mp4",
        f"{b_prefix}/./uploads/b.mp4",
        f"{b_prefix}/uploads\\b.mp4",
        f"{root}/owners/{OWNER_B}",
        f"{root}/owners/{OWNER_B}-evil/uploads/b.mp4",
        f"{root}/uploads/b.mp4",
        f"{b_prefix}/uploads/missing.mp4",
    ]
    details = set()
    for uri in escapes:
        for body in (
            {"source_uri": uri},
            {"source_uri": b_source, "subtitles_uri": uri},
            {"source_uri": b_source, "scenes": [{"start_s": 0, "end_s": 1, "keyframe_uri": uri}]},
        ):
            response = post(api, OWNER_B, **body)
            assert response.status_code == 404, (body, response.text)
            details.add(response.json()["detail"].replace(uri, "<uri>"))
    # One answer per field, whatever the reason: nothing tells another owner's blob from none.
    assert details == {
        "source_uri: no object at <uri> for this owner",
        "subtitles_uri: no object at <uri> for this owner",
        "scenes[0].keyframe_uri: no object at <uri> for this owner",
    }
    assert api.client.get("/v1/videos", headers=owner(api, OWNER_B)).json()["videos"] == []
    assert post(api, OWNER_B, source_uri=b_source).status_code == 202


def test_a_row_naming_another_owners_blob_fails_on_the_worker(api: Api) -> None:
    """Rows written before the API confined URIs (or by any other path) are held to the same
    policy by the worker: the video fails naming the field, nothing of A's is read or copied."""
    a_photo = api.harness.world.blobs.write(f"owners/{OWNER_A}/persons/p/photo.jpg", b"A's face")
    b_source = upload(api, "bikes.mp4", BIKES.read_bytes(), OWNER_B)
    created = post(api, OWNER_B, source_uri=b_source, scenes=UPSTREAM[:1])
    video_id = uuid.UUID(created.json()["video_id"])
    with api.harness.engine.begin() as connection:  # as an old row would hold it
        ingest = {
            "source_uri": b_source,
            "subtitles_uri": None,
            "scenes": [{**UPSTREAM[0], "keyframe_uri": a_photo}],
        }
        for scene in ingest["scenes"]:
            scene.setdefault("transcript", "")
            scene.setdefault("visual_description", "")
            scene.setdefault("keyframe_uri", None)
        connection.execute(sa.update(t.videos).where(t.videos.c.id == video_id).values(ingest=ingest))
    api.harness.start_worker()  # the create's ingest_video message finds the old-style row
    failed = wait_status_of(api, OWNER_B, str(video_id), "failed", "ready")
    assert failed["status"] == "failed" and "no object at" in failed["error"], failed
    assert blobs_under(api, OWNER_B, str(video_id)) == []


def test_scene_times_are_bounded_by_the_probed_duration(api: Api) -> None:
    """Issue 25, D2: ``end_s: 1e15`` took a worker to 18 GB. The schema bounds scene times
    (422 past 48 h); within that, a scene outside the probed duration (bikes.mp4: 10 s) fails
    the video with an error naming it, and a keyframe that is not an image fails it too."""
    api.harness.start_worker()
    source = upload(api, "bikes.mp4", BIKES.read_bytes())
    for end in (1e15, 1e308, MAX_MEDIA_SECONDS + 1):
        body = {"source_uri": source, "external_id": f"huge-{end}", "scenes": [{"start_s": 0, "end_s": end}]}
        response = api.client.post(
            "/v1/videos", content=json_text(body), headers={**owner(api), "content-type": "application/json"}
        )
        assert response.status_code == 422, response.text
    late = post(api, source_uri=source, scenes=[{"start_s": 0, "end_s": 5}, {"start_s": 5, "end_s": 3600}])
    failed = wait_status(api, late.json()["video_id"], "failed", "ready")
    assert (
        failed["status"] == "failed" and "scenes[1]" in failed["error"] and "10.000 s long" in failed["error"]
    )
    not_image = upload(api, "frame.jpg", b"#!/bin/sh\necho not an image\n")
    bad = post(api, source_uri=source, scenes=[{"start_s": 0, "end_s": 5, "keyframe_uri": not_image}])
    failed = wait_status(api, bad.json()["video_id"], "failed", "ready")
    assert failed["status"] == "failed" and "scenes[0].keyframe_uri" in failed["error"], failed
    within = post(api, source_uri=source, scenes=[{"start_s": 0, "end_s": 10.5}])  # 0.5 s past: tolerated
    assert wait_status(api, within.json()["video_id"], "failed", "ready")["status"] == "ready"


# -- ingest on the worker --------------------------------------------------------------------------


def test_upstream_scenes_are_ingested_embedded_and_searchable(api: Api) -> None:
    api.harness.start_worker()
    video = ready_video(api, external_id="up-1")
    assert video["status"] == "ready", video
    assert [(s["ordinal"], s["start_s"], s["end_s"], s["summary"]) for s in video["scenes"]] == [
        (i, s["start_s"], s["end_s"], s["summary"]) for i, s in enumerate(UPSTREAM)
    ]
    assert video["scenes"][1]["visual_description"] == "a red bike"
    assert video["duration_s"] == pytest.approx(10.0)
    found = counts(api.harness.engine, video["video_id"])
    assert found["scenes"] == found["documents"] == 3 and found["scene_text_embeddings"] == 9
    names = [uri.split(f"{video['video_id']}/", 1)[1] for uri in blobs_under(api, OWNER_A, video["video_id"])]
    assert names == ["keyframes/00000.jpg", "keyframes/00001.jpg", "keyframes/00002.jpg", "source.mp4"]
    hits = api.client.get("/v1/search", params={"text": "the finish line", "k": 1}, headers=owner(api)).json()
    assert hits["results"][0]["scene_id"] == video["scenes"][2]["scene_id"]


def test_scenes_are_detected_when_none_are_given(api: Api) -> None:
    api.harness.start_worker()
    video = ready_video(api, scenes=None)
    assert video["status"] == "ready", video
    assert len(video["scenes"]) == 6 and video["scenes"][-1]["end_s"] == pytest.approx(10.0)
    assert counts(api.harness.engine, video["video_id"])["documents"] == 6


def test_ingest_delivered_twice_gives_one_set_of_scenes_and_blobs(api: Api) -> None:
    from scenedex.tasks import ingest_video

    source = upload(api, "bikes.mp4", BIKES.read_bytes())
    video_id = post(api, source_uri=source, scenes=UPSTREAM).json()["video_id"]
    ingest_video.send(video_id)  # a duplicate delivery, before and after the first ran
    api.harness.start_worker()
    wait_status(api, video_id, "ready")
    ingest_video.send(video_id)
    idle(api)
    first = counts(api.harness.engine, video_id), blobs_under(api, OWNER_A, video_id)

    # A delivery that finds the video half way (ingesting: a worker died after the blobs)
    # writes the same blobs and replaces the scenes by the same ones.
    services = api.harness.runtime.services
    assert services is not None
    with services.uow_factory() as uow:
        uow.videos.update(OWNER_A, uuid.UUID(video_id), status=videos.VideoStatus.INGESTING)
        uow.commit()
    with api.harness.engine.connect() as connection:
        before_ids = select_ids(connection, uuid.UUID(video_id))
    ingest_video.send(video_id)
    idle(api)
    assert wait_status(api, video_id, "ready")["status"] == "ready"
    with api.harness.engine.connect() as connection:
        assert sorted(select_ids(connection, uuid.UUID(video_id))) == sorted(before_ids)
    assert (counts(api.harness.engine, video_id), blobs_under(api, OWNER_A, video_id)) == first
    assert first[0]["scenes"] == 3 and len(first[1]) == 4  # 3 keyframes + the source copy


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("empty.mp4", b"", "empty (0 bytes)"),
        ("truncated.mp4", BIKES.read_bytes()[:250_000] if BIKES.is_file() else b"", "not a readable video"),
        ("notes.mp4", b"this is a text file, not a video\n" * 50, "not a readable video"),
    ],
)
def test_unreadable_sources_fail_the_video_without_scenes_or_retries(
    api: Api, name: str, data: bytes, needle: str
) -> None:
    api.harness.start_worker()
    source = upload(api, name, data)
    for scenes in (UPSTREAM, None):
        video_id = post(api, source_uri=source, scenes=scenes).json()["video_id"]
        failed = wait_status(api, video_id, "failed", "ready")
        assert failed["status"] == "failed" and needle in failed["error"], failed
        assert failed["scenes"] == []
        assert counts(api.harness.engine, video_id)["scenes"] == 0
    idle(api)  # nothing left to retry
    missing = post(api, source_uri=upload_uri(api, OWNER_A, "nothing.mp4"))
    assert missing.status_code == 404 and "source_uri: no object" in missing.json()["detail"]


# -- texts ------------------------------------------------------------------------------------


def test_put_texts_recomputes_exactly_that_scenes_changed_channel(api: Api) -> None:
    api.harness.start_worker()
    video = ready_video(api)
    before = api.harness.records()
    path = f"/v1/videos/{video['video_id']}/scenes/1/texts"

    same = api.client.put(path, json={"summary": "a jump"}, headers=owner(api))
    assert same.status_code == 202 and same.json()["message_id"] is None  # nothing changed
    changed = api.client.put(path, json={"summary": "a backflip over the creek"}, headers=owner(api))
    assert changed.status_code == 202, changed.text
    assert changed.json()["scene"]["summary"] == "a backflip over the creek" and changed.json()["message_id"]
    after_video = wait_status(api, video["video_id"], "ready")
    idle(api)
    after = api.harness.records()

    scene_1 = uuid.UUID(video["scenes"][1]["scene_id"])
    changed_texts = set(after["scene_text_embeddings"]) - set(before["scene_text_embeddings"])
    assert [(row[0], row[1]) for row in changed_texts] == [(scene_1, "summary")]
    changed_docs = set(after["documents"]) - set(before["documents"])
    assert [row[0] for row in changed_docs] == [scene_1]
    for kind in set(before) - {"scene_text_embeddings", "documents"}:
        assert after[kind] == before[kind], kind
    assert after_video["scenes"][1]["summary"] == "a backflip over the creek"
    hits = api.client.get(
        "/v1/search", params={"text": "a backflip over the creek", "k": 1}, headers=owner(api)
    )
    assert hits.json()["results"][0]["scene_id"] == str(scene_1)
    missing = api.client.put(f"/v1/videos/{video['video_id']}/scenes/9/texts", json={}, headers=owner(api))
    assert missing.status_code == 404


# -- delete -----------------------------------------------------------------------------------


def test_delete_removes_rows_records_blobs_and_documents_and_nothing_else(api: Api) -> None:
    api.harness.start_worker()
    doomed = ready_video(api, "one.mp4")
    kept = ready_video(api, "two.mp4")
    kept_counts = counts(api.harness.engine, kept["video_id"])
    kept_blobs = blobs_under(api, OWNER_A, kept["video_id"])
    assert blobs_under(api, OWNER_A, doomed["video_id"])

    accepted = api.client.delete(f"/v1/videos/{doomed['video_id']}", headers=owner(api))
    assert accepted.status_code == 202 and accepted.json()["message_id"]
    idle(api)
    assert api.client.get(f"/v1/videos/{doomed['video_id']}", headers=owner(api)).status_code == 404
    assert set(counts(api.harness.engine, doomed["video_id"]).values()) == {0}
    assert blobs_under(api, OWNER_A, doomed["video_id"]) == []
    assert api.client.delete(f"/v1/videos/{doomed['video_id']}", headers=owner(api)).status_code == 404
    assert counts(api.harness.engine, kept["video_id"]) == kept_counts
    assert blobs_under(api, OWNER_A, kept["video_id"]) == kept_blobs
    listed = api.client.get("/v1/videos", headers=owner(api)).json()["videos"]
    assert [v["video_id"] for v in listed] == [kept["video_id"]]

    # Deleting again (a redelivered message) finds nothing and changes nothing.
    services = api.harness.runtime.services
    assert services is not None
    again = videos.delete_video(
        OWNER_A,
        uuid.UUID(doomed["video_id"]),
        uow_factory=services.uow_factory,
        blobs=services.blobs,
        index=services.search_index,
    )
    assert again == videos.DeletedVideo(False, 0, 0)
    assert counts(api.harness.engine, kept["video_id"]) == kept_counts


class DeletesBeforeWriting:
    """A search index that runs a deletion of the video just before the runner's document write
    lands: the interleaving where a reprocess read the scenes, the deletion ran to the end, and
    the reprocess's late write arrives."""

    def __init__(self, inner: Any, delete: Any) -> None:
        self.inner = inner
        self.delete_video = delete
        self.ran = False

    def upsert(self, documents: list[SceneDocument]) -> Any:
        if not self.ran:
            self.ran = True
            self.delete_video()
        return self.inner.upsert(documents)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_deletion_racing_a_reprocess_never_resurrects_a_document(harness: Harness) -> None:
    world = harness.world
    video, scenes = world.add_video(OWNER_A, [b"k0", b"k1", b"k2"])
    other, _ = world.add_video(OWNER_A, [b"o0"])
    index = DeletesBeforeWriting(
        world.index,
        lambda: videos.delete_video(
            OWNER_A, video.id, uow_factory=world.uow_factory, blobs=world.blobs, index=world.index
        ),
    )
    from scenedex.domain.request import ReprocessRequest, ReprocessScope

    progress = world.runner(index=index).run(ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER_A))
    assert index.ran and progress is not None
    assert set(counts(harness.engine, str(video.id)).values()) == {0}
    assert world.index.states(OWNER_A, [s.id for s in scenes]) == {}
    assert counts(harness.engine, str(other.id))["documents"] == 1  # the other video is indexed
