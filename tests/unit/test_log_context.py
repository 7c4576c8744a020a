"""Structured logs: the log context (``scenedex.domain.logcontext``) on every line, as JSON or text."""

from __future__ import annotations

import io
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dramatiq
import numpy as np
import pytest
from dramatiq.brokers.stub import StubBroker

from scenedex.domain.errors import BadInputError
from scenedex.domain.logcontext import FIELDS, current, log_context
from scenedex.worker.logs import LogContextMiddleware, configure_logging, install_log_context
from tests.conftest import World
from tests.fakes import (
    FakeFaceEmbedder,
    FakeImageEmbedder,
    FakeTextEmbedder,
    InMemoryBlobStore,
    InMemorySearchIndex,
    InMemoryStore,
    face_image,
)

PROGRESS_BAR_VARIABLES = ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS")
OWNER = uuid.UUID("00000000-0000-0000-0000-00000000b0b0")
JOB = uuid.UUID("00000000-0000-0000-0000-0000000a0b00")


def configure(log_format: str, **context: str) -> io.StringIO:
    configure_logging("INFO", log_format, **context)
    buffer = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    return buffer


@pytest.fixture
def json_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Root logging as ``SCENEDEX_LOG_FORMAT=json`` into a buffer; returns a reader that
    parses every line (so a line that is not one JSON object fails the test)."""
    for name in PROGRESS_BAR_VARIABLES:  # set by the json format; restored after the test
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = configure("json")
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.fixture
def text_lines() -> Iterator[Callable[[], list[str]]]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = configure("text")
    yield lambda: buffer.getvalue().splitlines()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


class ChattyImageEmbedder(FakeImageEmbedder):
    """A fake CLIP that logs like a third-party library does (its own logger, no extras)."""

    def embed_images(self, images: Sequence[bytes]) -> list[np.ndarray | BadInputError]:
        logging.getLogger("somelib.inference").info("embedding %d images", len(images))
        return super().embed_images(images)


def memory_world() -> World:
    return World(
        InMemoryStore(),
        InMemoryBlobStore(),
        InMemorySearchIndex(),
        ChattyImageEmbedder(),
        FakeTextEmbedder(),
        FakeFaceEmbedder(),
    )


def test_lines_logged_while_a_video_runs_in_a_job_carry_the_job_context(json_lines: Any) -> None:
    from scenedex.domain.progress import ReprocessProgress

    world = memory_world()
    video, scenes = world.add_video(OWNER, [face_image(salt="ok"), b"CORRUPT keyframe"])
    runner = world.runner()
    progress = ReprocessProgress(runner.spec.version)
    with log_context(job_id=JOB):  # what the reprocess_video actor sets
        runner.run_video(OWNER, video.id, progress)
    logging.getLogger("after").info("outside the job")

    lines = json_lines()
    expected = {
        "job_id": str(JOB),
        "owner_id": str(OWNER),
        "video_id": str(video.id),
        "spec_version": runner.spec.version,
    }
    [failed] = [line for line in lines if line["message"].startswith("scene_clip_embeddings failed")]
    assert failed == failed | expected | {"step": "scene_clip_embeddings", "level": "WARNING"}
    assert failed["logger"] == "scenedex.reprocess" and str(scenes[1].id) in failed["message"]
    # A third-party logger's line inside the step carries the same context.
    [library] = [line for line in lines if line["logger"] == "somelib.inference"]
    assert library == library | expected | {"step": "scene_clip_embeddings", "message": "embedding 2 images"}
    assert library["timestamp"].endswith("Z") and library["level"] == "INFO"
    # Outside any context every field is present and null.
    [after] = [line for line in lines if line["logger"] == "after"]
    assert {key: after[key] for key in FIELDS} == dict.fromkeys(FIELDS)
    assert current() == {}


def test_an_exception_is_one_json_line_with_its_traceback(json_lines: Any) -> None:
    with log_context(job_id=JOB, step="search_reindex"):
        try:
            raise RuntimeError("cluster said no\nsecond line")
        except RuntimeError:
            logging.getLogger("scenedex.test").exception("bulk failed")
    [line] = json_lines()
    assert line["message"] == "bulk failed" and line["level"] == "ERROR"
    assert line["job_id"] == str(JOB) and line["step"] == "search_reindex" and line["owner_id"] is None
    assert line["exception"].startswith("Traceback") and "RuntimeError: cluster said no" in line["exception"]


def test_text_format_shows_the_fields_that_are_set(text_lines: Any) -> None:
    log = logging.getLogger("scenedex.test")
    log.info("plain")
    with log_context(job_id=JOB, owner_id=OWNER), log_context(step="scene_text_embeddings"):
        log.info("in a step")
    plain, in_step = text_lines()
    assert plain.endswith(" INFO scenedex.test: plain")
    assert in_step.endswith(
        f" INFO scenedex.test [job={JOB} owner={OWNER} step=scene_text_embeddings]: in a step"
    )


def test_configured_defaults_fill_what_the_context_lacks(json_lines: Any) -> None:
    root = logging.getLogger()
    root.handlers[0].filters[0].context["spec_version"] = "cli-spec"  # type: ignore[attr-defined]
    log = logging.getLogger("scenedex.test")
    log.info("default")
    with log_context(spec_version="job-spec"):
        log.info("context wins")
    log.info("extra wins", extra={"spec_version": "extra-spec"})
    assert [line["spec_version"] for line in json_lines()] == ["cli-spec", "job-spec", "extra-spec"]


def test_log_context_nests_restores_and_is_per_thread() -> None:
    seen: dict[str, dict[str, str]] = {}
    with log_context(job_id=JOB) as outer:
        with log_context(video_id="v1", step="s"):
            assert current() == {"job_id": str(JOB), "video_id": "v1", "step": "s"}
        outer.update(owner_id=OWNER)
        with log_context(owner_id=None):
            assert current() == {"job_id": str(JOB)}
        thread = threading.Thread(target=lambda: seen.setdefault("thread", current()))
        thread.start()
        thread.join()
        assert current() == {"job_id": str(JOB), "owner_id": str(OWNER)}
    assert current() == {} and seen["thread"] == {}
    with pytest.raises(TypeError, match="unknown log context fields"), log_context(jobid="x"):
        pass


def test_json_format_turns_progress_bars_off(json_lines: Any) -> None:
    """tqdm bars (transformers' "Loading weights") would put non-JSON text on stderr."""
    import os

    assert {name: os.environ.get(name) for name in PROGRESS_BAR_VARIABLES} == dict.fromkeys(
        PROGRESS_BAR_VARIABLES, "1"
    )


def test_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text, json"):
        configure_logging("INFO", "yaml")


def test_dramatiq_own_lines_about_a_message_carry_its_ids(json_lines: Any) -> None:
    """The middleware covers what dramatiq logs around the actor, after it returned: the
    failure with its traceback, the retry, the retries exceeded."""
    broker = StubBroker()
    broker.emit_after("process_boot")
    install_log_context(broker)
    assert isinstance(broker.middleware[0], LogContextMiddleware)

    @dramatiq.actor(
        broker=broker, max_retries=1, min_backoff=10, max_backoff=10, actor_name="logcontext_test"
    )
    def failing_video(job_id: str, video_id: str) -> None:
        logging.getLogger("scenedex.test").info("running")
        raise RuntimeError("transient")

    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        failing_video.send(str(JOB), "v-42")
        broker.join(failing_video.queue_name, fail_fast=False)
        worker.join()
    finally:
        worker.stop()
    lines = json_lines()
    running = next(line for line in lines if line["message"] == "running")
    failed = next(line for line in lines if line["message"].startswith("Failed to process message"))
    retrying = next(line for line in lines if line["message"].startswith("Retrying message"))
    exceeded = next(line for line in lines if line["message"].startswith("Retries exceeded"))
    for line in (running, failed, retrying, exceeded):
        assert line["job_id"] == str(JOB) and line["video_id"] == "v-42" and line["owner_id"] is None
    assert failed["logger"].startswith("dramatiq.worker") and "RuntimeError: transient" in failed["exception"]
    assert current() == {}
