"""The whole lifecycle over HTTP only (issue 14's end-to-end test): a ``scenedex api`` process and
a ``scenedex worker`` process, both started here with settings in the environment, against the
test Postgres database and the tests' Redis database, with the real adapters (all-MiniLM-L6-v2,
dlib faces, explicitly untrained CLIP: ``SCENEDEX_CLIP__PRETRAINED=none``) on the real media.

Everything goes in and out through HTTP; the test only puts files in the blob store (a ``cp``,
as an API service uploads to S3) and counts what is left afterwards (rows in the database,
files under the store's folder, documents in the index).

Search backends: osmem-server (the in-memory OpenSearch of the tests) has no kNN and no hybrid
query, and every search of the OpenSearch adapter is one of those. So the test runs in two
phases on one database, one blob store and one API process:

1. table backend (``search_documents``): create a person from photos, POST two videos (one with
   the upstream cut, its texts and a keyframe of the person's face; one detected by the
   worker), wait until both are ready, search by text (a phrase only in an upstream summary),
   by person and by image, fetch a hit's keyframe; DELETE the detected video (its rows,
   records, blobs and documents are gone, the other video's are untouched); DELETE the person
   (no hit and no document lists it once the workers ran).
2. OpenSearch backend on osmem-server: the worker restarted with ``SCENEDEX_SEARCH__BACKEND=
   opensearch``; an owner reprocess (admin API) writes the kept video's documents there, a third
   video is POSTed until ready, then DELETEd: ``scenedex index verify`` counts the index before
   and after (the deleted video's documents gone, the kept one's there, nothing extra).
"""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa
from PIL import Image, ImageOps

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.engine import create_engine
from scenedex.domain.blobs import upload_key
from scenedex.services.ingest import video_prefix
from tests.conftest import REAL_MEDIA, truncate_all
from tests.e2e.test_reprocessing_guide import free_port
from tests.integration.test_api import SECRET, bearer, make_token
from tests.integration.test_videos import counts
from tests.opensearch_fixtures import osmem
from tests.worker_processes import TINY_CLIP, WorkerProcess, run_cli, scenedex_command, wait_for

__all__ = ["osmem"]  # the session fixture this module uses, imported for pytest
pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.models,
    pytest.mark.skipif(not REAL_MEDIA.is_dir(), reason=f"real sample media not found at {REAL_MEDIA}"),
]

PHRASE = "a lighthouse keeper juggles jars of marmalade"
"""Only in the upstream summary of the scene whose keyframe shows the astronaut."""
UPSTREAM = [
    {"start_s": 0.0, "end_s": 3.0, "transcript": "here they come", "summary": "riders gather at a crossing"},
    {
        "start_s": 3.0,
        "end_s": 6.5,
        "visual_description": "a portrait in a white flight suit",
        "summary": PHRASE,
    },  # keyframe_uri: the astronaut, set in the test
    {"start_s": 6.5, "end_s": 10.0, "visual_description": "a busy street", "summary": "the riders leave"},
]
READY_TIMEOUT_S = 90.0
"""Per wait; the whole module takes about a minute and a half on 2 cores."""


def astronaut_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.open(REAL_MEDIA / "astronaut.png").convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def flipped_png() -> bytes:
    buffer = io.BytesIO()
    ImageOps.mirror(Image.open(REAL_MEDIA / "astronaut.png").convert("RGB")).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Stack:
    """The processes (API, worker) and what the test looks at afterwards."""

    root: Path
    media: Path
    env: dict[str, str]
    engine: sa.Engine
    owner: uuid.UUID
    http: httpx.Client
    worker: WorkerProcess | None = None
    api: subprocess.Popen[bytes] | None = None
    state: dict[str, Any] = field(default_factory=dict)

    # -- processes ----------------------------------------------------------------------

    def start_api(self) -> None:
        port = int(self.env["SCENEDEX_API__PORT"])
        with (self.root / "api.log").open("wb") as log:
            self.api = subprocess.Popen(
                scenedex_command("api"),
                env=self.env,
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.http.base_url = httpx.URL(f"http://127.0.0.1:{port}")

        def up() -> bool:
            assert self.api is not None and self.api.poll() is None, self.log("api.log")
            try:
                return self.http.get("/ready").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 60, "the API to answer /ready", interval=0.2)

    def start_worker(self, name: str, **env: str) -> None:
        self.worker = WorkerProcess({**self.env, **env}, self.root / f"{name}.log")
        self.worker.wait_ready(timeout=120)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop(timeout=30)
            self.worker = None
        if self.api is not None and self.api.poll() is None:
            os.killpg(self.api.pid, signal.SIGTERM)
            try:
                self.api.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.api.pid, signal.SIGKILL)
                self.api.wait(timeout=15)

    def log(self, name: str) -> str:
        path = self.root / name
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    # -- HTTP -----------------------------------------------------------------------------

    def wait_status(self, video_id: str, *statuses: str) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            body: dict[str, Any] = self.http.get(f"/v1/videos/{video_id}").raise_for_status().json()
            return body if body["status"] in statuses else None

        try:
            body: dict[str, Any] = wait_for(
                reached, READY_TIMEOUT_S, f"video {video_id} {statuses}", interval=0.2
            )
        except AssertionError:
            worker_log = self.worker.log()[-4000:] if self.worker else ""
            raise AssertionError(f"video {video_id} not {statuses}:\n{worker_log}") from None
        return body

    def wait_job(self, job_id: str) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            response = self.http.get(f"/v1/admin/reprocess-jobs/{job_id}").raise_for_status()
            body: dict[str, Any] = response.json()
            return None if body["status"] in ("queued", "running") else body

        job: dict[str, Any] = wait_for(finished, READY_TIMEOUT_S, f"job {job_id}", interval=0.2)
        assert job["status"] == "succeeded", job
        return job

    def wait_gone(self, video_id: str) -> None:
        """The DELETE's worker message ran to its end: the row is gone (404), then the blobs."""
        wait_for(
            lambda: self.http.get(f"/v1/videos/{video_id}").status_code == 404,
            READY_TIMEOUT_S,
            f"video {video_id} to be deleted",
            interval=0.2,
        )
        wait_for(lambda: not self.blobs(video_id), 30, f"the blobs of {video_id} to be deleted", interval=0.2)

    def post_video(self, name: str, **body: Any) -> str:
        """Put the sample ``name`` in the blob store (as ``cp`` would) and POST it."""
        self.upload(name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REAL_MEDIA / name, self.upload(name))
        created = self.http.post(
            "/v1/videos", json={"source_uri": self.uri(upload_key(self.owner, name)), **body}
        )
        assert created.status_code == 202, created.text
        assert created.json()["status"] == "queued"
        return str(created.json()["video_id"])

    def search(self, **params: Any) -> list[dict[str, Any]]:
        response = self.http.get("/v1/search", params=params)
        assert response.status_code == 200, response.text
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    # -- the blob store, the database, the index ------------------------------------------

    def upload(self, name: str) -> Path:
        """Where the caller puts its upload ``name``: under its own prefix, the only place
        a video's source and keyframes may come from (``owners/{owner}/uploads/``)."""
        return self.media / upload_key(self.owner, name)

    def uri(self, key: str) -> str:
        return f"{self.media.as_uri()}/{key}"

    def blobs(self, video_id: str) -> list[str]:
        """Files under the video's folder of the store (keyframes, the source copy)."""
        folder = self.media / video_prefix(self.owner, uuid.UUID(video_id))
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())

    def documents_listing(self, person_id: str) -> int:
        """Search documents (table backend) whose ``person_ids`` name the person."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(t.search_documents.c.document).where(t.search_documents.c.owner_id == self.owner)
            )
            return sum(person_id in row.document.get("person_ids", []) for row in rows)

    def verify(self, env: dict[str, str]) -> dict[str, Any]:
        """``scenedex index verify --owner-id OWNER --json`` with the worker's settings: this
        owner's report (scenes in the database, documents in the index, missing/stale/extra)."""
        result = run_cli(env, "index", "verify", "--owner-id", str(self.owner), "--json", cwd=self.root)
        assert result.returncode in (0, 1), (result.returncode, result.stdout, result.stderr[-3000:])
        report: dict[str, Any] = json.loads(result.stdout)["owners"][0]
        return report


@pytest.fixture(scope="module")
def stack(postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(postgres_url, redis_url, tmp_path_factory.mktemp("http-lifecycle"))


def running_stack(postgres_url: str, redis_url: str, root: Path, **extra_env: str) -> Iterator[Stack]:
    """An API and a worker process on a wiped database and Redis, with ``extra_env`` settings;
    stopped when the generator is closed (the webhooks' end-to-end test uses it too)."""
    media = root / "media"
    media.mkdir(parents=True)
    engine = create_engine(postgres_url)
    truncate_all(engine)  # the module's own database, migrated (tests/conftest.py)
    broker = redis.Redis.from_url(redis_url)
    broker.flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCENEDEX_", "dramatiq_"))}
    env.update(
        SCENEDEX_DATABASE_URL=postgres_url,
        SCENEDEX_REDIS_URL=redis_url,
        SCENEDEX_STORAGE_URL=str(media),
        **TINY_CLIP,
        SCENEDEX_API__JWT_SECRET=SECRET,
        SCENEDEX_API__PORT=str(free_port()),
        SCENEDEX_WORKER__METRICS_PORT="0",
        SCENEDEX_WORKER__HEARTBEAT_TIMEOUT_MS="15000",  # holds on a loaded 2-core machine (issue 27)
        SCENEDEX_REPROCESS__BATCH_SIZE="8",
        SCENEDEX_LOG_LEVEL="INFO",
        HF_HUB_OFFLINE="1",
        dramatiq_prom_db=str(root / "prometheus"),
        **extra_env,
    )
    owner = uuid.uuid4()
    http = httpx.Client(headers=bearer(make_token(owner, ("admin",), exp_s=3600)), timeout=30)
    site = Stack(root, media, env, engine, owner, http)
    try:
        site.start_api()
        site.start_worker("worker-table")
        yield site
    finally:
        site.stop()
        http.close()
        broker.flushdb()
        engine.dispose()


def step(name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The module's tests are ordered steps on one stack: a step runs only after the previous
    one passed (else it is skipped with the reason)."""

    def decorate(test: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(test)  # pytest reads the fixtures from the wrapped signature
        def wrapper(stack: Stack, **fixtures: Any) -> None:
            failed = stack.state.get("failed")
            if failed:
                pytest.skip(f"an earlier step failed: {failed}")
            try:
                test(stack, **fixtures)
            except pytest.skip.Exception:  # a skipped step is no failed one: the next steps run
                raise
            except BaseException:
                stack.state["failed"] = name
                raise

        return wrapper

    return decorate


# ----------------------------------------------------------------------------- phase 1: table


@step("person")
def test_1_create_a_person_from_photos(stack: Stack) -> None:
    created = stack.http.post(
        "/v1/persons",
        data={"name": "Eileen Collins"},
        files=[
            ("photos", ("astronaut.png", (REAL_MEDIA / "astronaut.png").read_bytes(), "image/png")),
            ("photos", ("flipped.png", flipped_png(), "image/png")),
        ],
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["reprocess"]["created"] is True
    stack.wait_job(body["reprocess"]["job_id"])
    shown = stack.http.get(f"/v1/persons/{body['person_id']}").json()
    assert [p["status"] for p in shown["photos"]] == ["ok", "ok"], shown
    stack.state["person"] = body["person_id"]


@step("videos")
def test_2_post_two_videos_from_the_blob_store_and_both_become_ready(stack: Stack) -> None:
    stack.upload("astronaut.jpg").parent.mkdir(parents=True, exist_ok=True)
    stack.upload("astronaut.jpg").write_bytes(astronaut_jpeg())
    scenes = [dict(s) for s in UPSTREAM]
    scenes[1]["keyframe_uri"] = stack.uri(upload_key(stack.owner, "astronaut.jpg"))
    upstream = stack.post_video("bikes.mp4", title="Bikes", external_id="bikes-0001", scenes=scenes)
    detected = stack.post_video("bigbuckbunny.mp4", external_id="bunny-0001")

    kept = stack.wait_status(upstream, "ready", "failed")
    doomed = stack.wait_status(detected, "ready", "failed")
    assert kept["status"] == "ready" and doomed["status"] == "ready", (kept, doomed)
    assert [(s["start_s"], s["end_s"], s["summary"]) for s in kept["scenes"]] == [
        (s["start_s"], s["end_s"], s["summary"]) for s in UPSTREAM
    ]
    assert kept["scenes"][1]["visual_description"] == UPSTREAM[1]["visual_description"]
    assert len(doomed["scenes"]) >= 1 and doomed["scenes"][0]["summary"] == ""
    listed = stack.http.get("/v1/videos", params={"status": "ready"}).json()["videos"]
    assert sorted(v["video_id"] for v in listed) == sorted([upstream, detected])
    stack.state.update(kept=kept, doomed=doomed)


@step("search")
def test_3_text_person_and_image_search_and_the_keyframe_of_a_hit(stack: Stack) -> None:
    kept, person = stack.state["kept"], stack.state["person"]
    face_scene = kept["scenes"][1]["scene_id"]

    by_text = stack.search(text=PHRASE, k=3)
    assert by_text[0]["scene_id"] == face_scene, by_text
    assert by_text[0]["video_id"] == kept["video_id"] and by_text[0]["external_id"] == "bikes-0001"
    assert (by_text[0]["start_s"], by_text[0]["end_s"]) == (3.0, 6.5)
    assert by_text[0]["persons"] == [{"person_id": person, "name": "Eileen Collins"}]

    by_person = stack.search(person_id=person, k=5)
    assert by_person and by_person[0]["scene_id"] == face_scene, by_person
    assert [hit["scene_id"] for hit in by_person if hit["persons"]] == [face_scene], by_person

    image = stack.http.post(
        "/v1/search/image", params={"k": 3}, files={"image": ("q.jpg", astronaut_jpeg(), "image/jpeg")}
    )
    assert image.status_code == 200, image.text
    hits = image.json()["results"]
    assert hits and hits[0]["scene_id"] == face_scene, hits  # the same picture: cosine 1

    keyframe = stack.http.get(hits[0]["keyframe_url"])
    assert keyframe.status_code == 200, keyframe.text
    assert keyframe.headers["content-type"] == "image/jpeg" and keyframe.content[:3] == b"\xff\xd8\xff"
    assert Image.open(io.BytesIO(keyframe.content)).format == "JPEG"
    cached = stack.http.get(hits[0]["keyframe_url"], headers={"If-None-Match": keyframe.headers["etag"]})
    assert cached.status_code == 304


@step("delete video")
def test_4_delete_a_video_removes_its_rows_records_blobs_and_documents_only(stack: Stack) -> None:
    kept, doomed = stack.state["kept"]["video_id"], stack.state["doomed"]["video_id"]
    kept_counts, kept_blobs = counts(stack.engine, kept), stack.blobs(kept)
    doomed_counts = counts(stack.engine, doomed)
    assert doomed_counts["videos"] == 1 and doomed_counts["documents"] == doomed_counts["scenes"] >= 1
    assert stack.blobs(doomed) == [
        *(f"keyframes/{i:05d}.jpg" for i in range(doomed_counts["scenes"])),
        "source.mp4",
    ]
    # 3 scenes x 4 text channels (transcript, visual, summary and the on-screen text, ocr)
    assert kept_counts["documents"] == 3 and kept_counts["scene_text_embeddings"] == 12

    accepted = stack.http.delete(f"/v1/videos/{doomed}")
    assert accepted.status_code == 202, accepted.text
    stack.wait_gone(doomed)

    assert set(counts(stack.engine, doomed).values()) == {0}  # video, scenes, records, documents
    assert not (stack.media / video_prefix(stack.owner, uuid.UUID(doomed))).exists()
    assert stack.http.delete(f"/v1/videos/{doomed}").status_code == 404
    assert counts(stack.engine, kept) == kept_counts and stack.blobs(kept) == kept_blobs
    assert [v["video_id"] for v in stack.http.get("/v1/videos").json()["videos"]] == [kept]
    assert stack.upload("bigbuckbunny.mp4").is_file()  # the caller's upload is theirs


@step("delete person")
def test_5_delete_the_person_and_no_scene_or_hit_lists_it(stack: Stack) -> None:
    person = stack.state["person"]
    assert stack.documents_listing(person) == 1
    deleted = stack.http.delete(f"/v1/persons/{person}")
    assert deleted.status_code == 200, deleted.text
    reprocess = deleted.json()["reprocess"]
    stack.wait_job(reprocess["job_id"])
    wait_for(lambda: stack.documents_listing(person) == 0, 30, "the documents to drop the person")

    assert stack.http.get(f"/v1/persons/{person}").status_code == 404
    assert stack.http.get("/v1/search", params={"person_id": person}).status_code == 404
    for hit in stack.search(text=PHRASE, k=10):
        assert hit["persons"] == [], hit
    with stack.engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(t.persons)) == 0
        assert connection.scalar(sa.select(sa.func.count()).select_from(t.person_photos)) == 0


# ----------------------------------------------------------------------------- phase 2: OpenSearch


@step("opensearch")
def test_6_on_opensearch_a_deleted_video_leaves_no_document_in_the_index(stack: Stack, osmem: Any) -> None:
    clone = osmem.clone()
    search_env = {
        "SCENEDEX_SEARCH__BACKEND": "opensearch",
        "SCENEDEX_SEARCH__URL": clone.url,
        "SCENEDEX_SEARCH__INDEX_PREFIX": "e2e-",
    }
    try:
        assert stack.worker is not None
        stack.worker.stop(timeout=30)  # its settings are the table backend's
        stack.start_worker("worker-opensearch", **search_env)
        env = {**stack.env, **search_env}
        kept = stack.state["kept"]["video_id"]

        # The kept video's documents go to the (new, empty) index: an owner reprocess.
        job = stack.http.post(
            "/v1/admin/reprocess-embeddings", json={"scope": "owner", "owner_id": str(stack.owner)}
        )
        assert job.status_code == 202, job.text
        stack.wait_job(job.json()["job_id"])

        third = stack.post_video("bikes.mp4", external_id="bikes-0002", scenes=UPSTREAM)
        assert stack.wait_status(third, "ready", "failed")["status"] == "ready"
        before = stack.verify(env)
        assert (before["scenes"], before["documents"]) == (6, 6), before
        assert [before[k]["count"] for k in ("missing", "stale", "extra")] == [0, 0, 0], before
        kept_counts, kept_blobs = counts(stack.engine, kept), stack.blobs(kept)

        assert stack.http.delete(f"/v1/videos/{third}").status_code == 202
        stack.wait_gone(third)

        after = stack.verify(env)
        assert (after["scenes"], after["documents"]) == (3, 3), after
        assert [after[k]["count"] for k in ("missing", "stale", "extra")] == [0, 0, 0], after
        found = counts(stack.engine, third)
        assert set(found.values()) == {0}, found
        assert counts(stack.engine, kept) == kept_counts and stack.blobs(kept) == kept_blobs
    finally:
        if stack.worker is not None:  # before the cluster it writes to goes
            stack.worker.stop(timeout=30)
            stack.worker = None
        clone.close()
