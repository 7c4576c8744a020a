"""JSON logs of a real job: the actors on the Redis broker, job state in Postgres, an in-process
worker with the worker's log context middleware (as ``scenedex.worker.dramatiq_app`` adds it)."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
import pytest
from fastapi.testclient import TestClient

from scenedex.api import create_app
from scenedex.domain.jobs import JobStatus
from scenedex.domain.logcontext import FIELDS
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.worker.logs import configure_logging, install_log_context
from tests.integration.test_api import REPROCESS, api_settings, bearer, make_token
from tests.job_harness import OWNER, Harness, library

pytestmark = pytest.mark.integration


@pytest.fixture
def json_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    for name in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS"):  # set by the json format
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("INFO", "json")
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    broker = dramatiq.get_broker()
    middleware = install_log_context(broker)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    broker.middleware.remove(middleware)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_every_line_of_a_job_is_json_with_its_context(harness: Harness, json_lines: Any) -> None:
    library(harness.world, videos=2)
    bad_video, [bad_scene] = harness.world.add_video(OWNER, [b"CORRUPT keyframe"])
    harness.start_worker()
    job_id = harness.enqueue(ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER))
    assert harness.wait(job_id).job.status is JobStatus.PARTIALLY_FAILED
    harness.stop_worker()

    lines = json_lines()
    assert lines and all(set(FIELDS) <= set(line) for line in lines)
    [clip_failure] = [line for line in lines if line["message"].startswith("scene_clip_embeddings failed")]
    assert str(bad_scene.id) in clip_failure["message"]
    assert {key: clip_failure[key] for key in FIELDS} == {
        "job_id": str(job_id),
        "owner_id": str(OWNER),
        "video_id": str(bad_video.id),
        "step": "scene_clip_embeddings",
        "spec_version": harness.spec_version,
        "request_id": None,  # a worker's line has no API request
    }
    # Every scenedex line of the run (both failed steps of the bad scene) carries the job.
    ours = [line for line in lines if line["logger"].startswith("scenedex.")]
    assert {line["message"].split()[0] for line in ours} == {
        "scene_clip_embeddings",
        "scene_person_embeddings",
    }
    assert all(line["job_id"] == str(job_id) and line["owner_id"] == str(OWNER) for line in ours)


def test_the_lines_of_a_job_carry_the_request_id_of_the_api_request_that_enqueued_it(
    harness: Harness, json_lines: Any
) -> None:
    """``X-Request-ID`` of ``POST /v1/admin/reprocess-embeddings`` goes with the planner message
    (its ``request_id`` option) and from there with the per-video messages the planner sends:
    every line the worker logs for the job carries it, and a job enqueued outside any request
    (the CLI's path) carries none."""
    library(harness.world, videos=2)
    bad_video, _ = harness.world.add_video(OWNER, [b"CORRUPT keyframe"])  # logs a failed step
    app = create_app(api_settings(harness), runtime=harness.runtime)
    with TestClient(app) as client:
        answer = client.post(
            REPROCESS,
            json={"scope": "owner", "owner_id": str(OWNER)},
            headers={**bearer(make_token(OWNER)), "X-Request-ID": "req-28.enqueue"},
        )
    assert answer.status_code == 202, answer.text
    assert answer.headers["X-Request-ID"] == "req-28.enqueue"
    job_id = uuid.UUID(answer.json()["job_id"])
    harness.start_worker()
    harness.wait(job_id)
    other = harness.enqueue(ReprocessRequest(ReprocessScope.VIDEO, video_id=bad_video.id, owner_id=OWNER))
    harness.wait(other)
    harness.stop_worker()

    lines = json_lines()
    of_job = [line for line in lines if line["job_id"] == str(job_id)]
    assert {line["video_id"] for line in of_job} >= {str(bad_video.id)}  # the per-video messages too
    assert any(line["message"].startswith("scene_clip_embeddings failed") for line in of_job)
    assert {line["request_id"] for line in of_job} == {"req-28.enqueue"}
    of_other = [line for line in lines if line["job_id"] == str(other)]
    assert of_other and {line["request_id"] for line in of_other} == {None}


def test_dramatiq_failure_line_of_a_message_carries_its_job(
    harness: Harness, json_lines: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transient error (the model fell over): dramatiq logs the failure with its traceback
    after the actor has returned, still with the message's job and video."""
    [video_id] = library(harness.world, videos=1)

    def broken(images: Any) -> Any:
        raise RuntimeError("CUDA error: device lost")

    monkeypatch.setattr(harness.world.clip, "embed_images", broken)
    harness.start_worker()
    job_id = harness.enqueue(ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER))
    failed = _wait_for(json_lines, lambda line: line["message"].startswith("Failed to process message"))
    harness.stop_worker()

    assert failed["level"] == "ERROR" and "RuntimeError: CUDA error: device lost" in failed["exception"]
    assert failed["job_id"] == str(job_id) and failed["video_id"] == str(video_id)
    assert failed["logger"].startswith("dramatiq.worker")


def _wait_for(read: Callable[[], list[dict[str, Any]]], match: Callable[[dict[str, Any]], bool]) -> Any:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [line for line in read() if match(line)]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no matching line in {read()}")
