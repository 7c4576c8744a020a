"""One live stack for the generated clients' flows (issue 28, issue 27): ``scenedex api`` and a
one-process ``scenedex worker`` (real models: all-MiniLM, dlib, untrained CLIP said out loud) on
the test Postgres and Redis and a blob folder of their own, started once per ``tests/clients``
package and shared by the TypeScript flow (``test_typescript_client.py``) and the Python flow
(``test_python_client.py``). The start (the API's and the worker's imports and models, about
80 s on a loaded 2-core machine) is paid once for both.

The stack starts on a wiped database and Redis database. Each flow uses its own owner (its own
tokens), so neither sees the other's persons, videos or search hits, and deletes what it made;
``owner_stack`` checks that its owner has no row when the flow starts, so both flows pass in
either order and on their own.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa
from PIL import Image

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.engine import create_engine
from scenedex.domain.blobs import upload_key
from tests.conftest import REAL_MEDIA, XDIST_WORKER, PostgresTemplate, run_database_name, truncate_all
from tests.e2e.test_reprocessing_guide import free_port
from tests.integration.test_api import SECRET
from tests.worker_processes import WorkerProcess, process_env, scenedex_command, wait_for

SAMPLE = REAL_MEDIA / "bikes.mp4"
"""The video both flows index (10 s, three upstream scenes)."""
PHOTO = REAL_MEDIA / "astronaut.png"
"""The person's photo; its JPEG is also the keyframe of the flows' second scene."""


@dataclass(frozen=True)
class LiveStack:
    """A running API and worker: ``base_url`` (``http://127.0.0.1:PORT``), ``media`` (the blob
    store's folder, ``SCENEDEX_STORAGE_URL``), ``engine`` (the stack's database) and
    ``worker_log`` (the worker's text log, every flow's lines in one file)."""

    base_url: str
    media: Path
    engine: sa.Engine
    worker_log: Path

    def upload(self, owner: uuid.UUID, name: str, data: bytes) -> str:
        """``data`` written at the owner's upload key ``name`` in the blob store; its URI."""
        path = self.media / upload_key(owner, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path.as_uri()

    def owner_rows(self, owner: uuid.UUID) -> tuple[int, int]:
        """(persons, videos) the owner has in the database."""
        with self.engine.connect() as connection:
            persons = connection.scalar(
                sa.select(sa.func.count()).select_from(t.persons).where(t.persons.c.owner_id == owner)
            )
            videos = connection.scalar(
                sa.select(sa.func.count()).select_from(t.videos).where(t.videos.c.owner_id == owner)
            )
        return int(persons or 0), int(videos or 0)


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@pytest.fixture(scope="package")
def clients_database_url(
    request: pytest.FixtureRequest, postgres_template: PostgresTemplate
) -> Iterator[str]:
    """The clients package's own Postgres database, cloned from the run's migrated template as a
    module's is (``tests.conftest.postgres_url``, module-scoped, cannot serve a package-scoped
    stack); dropped after the package's last test."""
    server = postgres_template.server
    name = run_database_name(server.url.database or "", XDIST_WORKER, request.node.nodeid)
    yield server.create(name, template=postgres_template.name)
    server.drop(name)


@pytest.fixture(scope="package")
def live_stack(
    clients_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStack]:
    """The API and the worker, started together (their imports and model loads overlap) on a
    wiped test database and Redis database, both ready (``/ready`` answers 200, the worker
    process logged it is ready) before the first flow; stopped after the package's last test."""
    folder = tmp_path_factory.mktemp("live-stack")
    media = folder / "media"
    media.mkdir()
    postgres_url = clients_database_url
    engine = create_engine(postgres_url)
    truncate_all(engine)
    redis.Redis.from_url(redis_url).flushdb()
    port = free_port()
    api_env = process_env(
        postgres_url, redis_url, media, SCENEDEX_API__JWT_SECRET=SECRET, SCENEDEX_API__PORT=str(port)
    )
    worker_env = process_env(
        postgres_url,
        redis_url,
        media,
        SCENEDEX_WORKER__METRICS_PORT="0",
        SCENEDEX_WORKER__HEARTBEAT_TIMEOUT_MS="15000",  # holds on a loaded 2-core machine
    )
    api_log = folder / "api.log"
    with api_log.open("wb") as log:
        api = subprocess.Popen(
            scenedex_command("api"),
            env=api_env,
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = WorkerProcess(worker_env, folder / "worker.log", "--processes", "1")
    base_url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert api.poll() is None, api_log.read_text(errors="replace")[-3000:]
        try:
            return httpx.get(f"{base_url}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, 120, "the API to answer /ready", interval=0.2)
        worker.wait_ready(timeout=180)
        yield LiveStack(base_url, media, engine, worker.log_path)
    finally:
        worker.stop(timeout=30)
        _stop(api)
        engine.dispose()


@pytest.fixture
def owner_stack(live_stack: LiveStack) -> Callable[[uuid.UUID], LiveStack]:
    """``live_stack`` for a flow of ``owner``: checks the API and the worker still run and the
    owner has no person or video yet (what a flow run before left of its own owner's is not
    this one's: each flow has its owner)."""

    def for_owner(owner: uuid.UUID) -> LiveStack:
        assert httpx.get(f"{live_stack.base_url}/ready", timeout=10).status_code == 200
        assert live_stack.owner_rows(owner) == (0, 0), f"owner {owner} has rows before its flow"
        return live_stack

    return for_owner


def photo_jpeg() -> bytes:
    """``PHOTO`` as a JPEG (quality 90): the keyframe both flows give their second scene."""
    buffer = io.BytesIO()
    Image.open(PHOTO).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def assert_flow_output(out: dict[str, Any], stack: LiveStack, owner: uuid.UUID, prefix: str) -> None:
    """What every generated client's flow (``python_flow.py``, ``ts/flow.ts``) must have seen,
    from the JSON it printed (``out``): the person's Idempotency-Key replay, the video's 202 with
    ``Location``/``Retry-After``, its ETag and 304, text/person/image search finding the face
    scene and only ``owner``'s video, the keyframe and its 304, problem+json 404 and 422, the
    deletes, the worker's deletion line carrying the DELETE's ``X-Request-ID``
    (``{prefix}-delete``), and no row of ``owner`` left."""
    person = out["person"]
    assert person["status"] == person["replay_status"] == 201 and person["photos"] == 1
    assert person["replay_person_id"] == person["person_id"] and person["replayed_header"] == "true"
    assert out["person_searchable"] == {"photos": ["ok"]}
    video = out["video"]
    assert video["status"] == 202 and video["location"] == f"/v1/videos/{video['video_id']}"
    assert int(video["retry_after"]) > 0 and video["request_id"] == f"{prefix}-video"
    ready = out["ready"]
    assert ready["scenes"] == 3 and ready["etag"].startswith('"') and ready["not_modified"] == 304

    face_scene, person_id = ready["face_scene"], person["person_id"]
    text, by_person, image = out["search"]["text"], out["search"]["person"], out["search"]["image"]
    assert text[0] == {"scene_id": face_scene, "video_id": video["video_id"], "persons": [person_id]}, text
    assert by_person[0]["scene_id"] == face_scene, by_person
    assert [hit["scene_id"] for hit in by_person if hit["persons"]] == [face_scene], by_person
    assert image[0]["scene_id"] == face_scene, image  # the same picture: cosine 1
    # Only this owner's video: the other flow's (same phrase, same picture) is not seen.
    assert {hit["video_id"] for hit in text + by_person + image} == {video["video_id"]}

    keyframe_answer = out["keyframe"]
    assert keyframe_answer["status"] == 200 and keyframe_answer["content_type"] == "image/jpeg"
    assert keyframe_answer["jpeg"] == [0xFF, 0xD8, 0xFF] and keyframe_answer["etag"].startswith('"')
    assert keyframe_answer["cached_status"] == 304 and keyframe_answer["cached_bytes"] == 0

    for name, status, code in (("not_found", 404, "not_found"), ("invalid", 422, "validation_failed")):
        problem = out[name]
        assert problem["status"] == problem["problem_status"] == status, problem
        assert problem["content_type"] == "application/problem+json" and problem["code"] == code, problem
        assert problem["type"] == f"tag:scenedex,2026:problem/{code}", problem
    assert out["invalid"]["fields"] == ["query.k"]

    deleted = out["delete"]
    assert deleted["video_status"] == 202 and deleted["video_gone"] == 404
    assert deleted["video_location"] == f"/v1/videos/{video['video_id']}"
    assert deleted["person_status"] == 200 and deleted["person_gone"] == 404
    # The worker's line about the deletion carries the request id of the DELETE that sent it.
    worker_lines = stack.worker_log.read_text(errors="replace").splitlines()
    [deletion] = [line for line in worker_lines if f"video {video['video_id']} deleted" in line]
    assert f"request={prefix}-delete]" in deletion, deletion
    assert stack.owner_rows(owner) == (0, 0), "the Idempotency-Key replay or a DELETE left a row"
