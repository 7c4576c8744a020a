"""Real ``scenedex worker`` processes and synthetic libraries, for the process-level worker
tests (``tests/integration/test_worker_process.py``) and the throughput bench
(``tests/bench_worker_throughput.py``).

``scenedex worker`` is a supervisor (``scenedex.worker.supervisor``): it starts dramatiq's CLI,
the master, which forks the worker processes that load the models and run the actors, and starts
the master again when it stops because a worker process died. The supervisor is started in a new
session (its process group id is its pid) and the master leads a process group of its own, shared
with its worker processes, so ``WorkerProcess.kill_group`` can end the supervisor, each master it
started and every child they forked, and nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from PIL import Image
from sqlalchemy.engine import make_url

from scenedex.adapters.clip import TINY_RANDOM_MODEL
from scenedex.adapters.db import tables as t
from scenedex.adapters.storage import FsspecBlobStore
from scenedex.domain.model import TEXT_CHANNELS, Scene, Video, new_id
from scenedex.domain.ports import UnitOfWorkFactory
from scenedex.services.persons import Persons, PhotoUpload
from scenedex.tools.bench_library import face_crop, face_photo, keyframe, scene_texts

TINY_CLIP = {"SCENEDEX_CLIP__MODEL": TINY_RANDOM_MODEL, "SCENEDEX_CLIP__PRETRAINED": "none"}
"""CLIP for the tests that do not measure it (issue 27): the tiny test architecture with random
weights, both said out loud (model id ``open_clip:scenedex-tiny-random:untrained``); its 512-d
vectors and its 64x64 preprocessing cost a fraction of ViT-B-32's. The tests that measure or
check CLIP itself (model adapters, embed bench, model fetch, load errors) set ViT-B-32."""


def process_env(database_url: str, redis_url: str, storage: str | Path, **settings: str) -> dict[str, str]:
    """The environment of a scenedex process a test starts (API, worker, embed server): this
    one's without any ``SCENEDEX_*`` or ``dramatiq_*`` variable (nothing leaks in), the stack's
    database, Redis and blob store, ``TINY_CLIP``, no model hub, and ``settings``
    (``SCENEDEX_...=value``, which may replace any of those)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCENEDEX_", "dramatiq_"))}
    env.update(
        SCENEDEX_DATABASE_URL=database_url,
        SCENEDEX_REDIS_URL=redis_url,
        SCENEDEX_STORAGE_URL=str(storage),
        HF_HUB_OFFLINE="1",
    )
    env.update(TINY_CLIP)
    env.update(settings)
    return env


READY_LINE = "Worker process is ready for action."
"""What dramatiq's worker process logs once its consumers run (after ``before_worker_boot``)."""
SPEC_LINE = "worker ready: spec "
"""What ``WorkerRuntime.before_worker_boot`` logs once the models are loaded."""
RESTART_LINE = "restarting it in"
"""What the supervisor logs when dramatiq's master stopped because a worker process died."""
SMALL_FRAME = (320, 180)


def scenedex_command(*args: str) -> list[str]:
    """``scenedex ARGS`` with this interpreter (the venv's), as the console script runs it."""
    return [sys.executable, "-m", "scenedex.scripts.cli", *args]


def run_cli(
    env: Mapping[str, str], *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        scenedex_command(*args), env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


class WorkerProcess:
    """One ``scenedex worker`` (the supervisor, dramatiq's master and its worker processes),
    logging to a file; ``pid`` is the supervisor's."""

    def __init__(self, env: Mapping[str, str], log_path: Path, *args: str) -> None:
        self.log_path = log_path
        self.processes = int(args[args.index("--processes") + 1]) if "--processes" in args else 1
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                scenedex_command("worker", *args),
                env=dict(env),
                cwd=log_path.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.proc.pid
        self.started = time.monotonic()
        self.ready_at: float | None = None
        self.masters: set[int] = set()
        """Every dramatiq master seen (each leads the process group of its worker processes)."""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = 180.0, since: int = 0) -> float:
        """Wait until every worker process logged that it is ready (after the first ``since``
        characters of the log: a restarted master's processes); returns the monotonic time it
        saw that. Raises ``AssertionError`` (with the log) if the worker exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log()[since:].count(READY_LINE) >= self.processes:
                self.ready_at = time.monotonic()
                return self.ready_at
            if not self.alive():
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()[-5000:]}")
            time.sleep(0.1)
        raise AssertionError(f"worker not ready after {timeout} s:\n{self.log()[-5000:]}")

    def wait_exit_or_ready(self, timeout: float = 120.0) -> int | None:
        """The exit code once the master exits, or None when every worker process logged that
        it is ready (it runs: the caller decides) or after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                return code
            if self.log().count(READY_LINE) >= self.processes:
                time.sleep(1.0)  # a worker process that failed at boot exits right after that line
                return self.proc.poll()
            time.sleep(0.1)
        return None

    def spec_version(self) -> str:
        for line in self.log().splitlines():
            if SPEC_LINE in line:
                return line.rsplit(SPEC_LINE, 1)[1].strip()
        raise AssertionError(f"no {SPEC_LINE!r} line in the worker log:\n{self.log()[-3000:]}")

    def wait_restart(self, timeout: float = 120.0, since: int = 0) -> str:
        """Wait until the supervisor logged (after the first ``since`` characters of the log) that
        it restarts dramatiq's master; returns that line."""

        def restart_line() -> str | None:
            lines = [line for line in self.log()[since:].splitlines() if RESTART_LINE in line]
            assert lines or self.alive(), f"worker exited with {self.proc.returncode}:\n{self.log()[-5000:]}"
            return lines[0] if lines else None

        return str(wait_for(restart_line, timeout, "the supervisor to restart dramatiq", interval=0.1))

    def master(self) -> int | None:
        """The pid of the running dramatiq master (the supervisor's one child), if any."""
        masters = _children(self.pid)
        self.masters.update(masters)
        return masters[0] if masters else None

    def children(self) -> list[int]:
        """Pids of the processes the running dramatiq master forked (the worker processes)."""
        master = self.master()
        return [] if master is None else _children(master)

    def worker_child(self) -> int:
        """The one worker process (the one running the actors) of a ``--processes 1`` worker."""
        children = self.children()
        assert len(children) == 1, f"expected one worker process, found {children}"
        return children[0]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the worker processes (from ``/proc``)."""
        total = 0
        for pid in self.children():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime and stime (fields 14 and 15)
        return total / os.sysconf("SC_CLK_TCK")

    def signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the supervisor (as a process manager does)."""
        os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (graceful: running messages finish or go back to the queue), then SIGKILL of
        the whole process group if it is not over after ``timeout`` seconds; returns the
        master's exit code."""
        if self.alive():
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        self.kill_group()
        return self.proc.wait(timeout=30)

    def kill_group(self) -> None:
        """SIGKILL every process left in the supervisor's process group (its own session) and in
        those of the masters it started."""
        self.master()
        for group in (self.pid, *self.masters):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``condition()`` until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ----------------------------------------------------------------------------- databases


def create_database(server_url: str, name: str) -> str:
    """(Re)create the empty Postgres database ``name`` on the server of ``server_url``; returns
    its URL (password included: it is passed to subprocesses)."""
    url = make_url(server_url)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(database_url: str) -> None:
    url = make_url(database_url)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def clear_records(engine: sa.Engine) -> None:
    """Delete every derived record and search document (the library as before its first
    reprocess); the jobs stay."""
    with engine.begin() as connection:
        for table in [*t.RECORD_TABLES.values(), t.search_documents]:
            connection.execute(table.delete())


# ----------------------------------------------------------------------------- libraries


def add_synthetic_video(
    uow_factory: UnitOfWorkFactory,
    blobs: FsspecBlobStore,
    owner_id: uuid.UUID,
    scenes: int,
    *,
    seed: int = 0,
    size: tuple[int, int] = SMALL_FRAME,
    face_every: int = 5,
) -> tuple[Video, list[Scene]]:
    """One video of ``scenes`` scenes with generated JPEG keyframes of ``size`` (the bench's
    ``keyframe``, seeded by ``seed + ordinal``; the astronaut's face pasted into one in
    ``face_every``) and the bench's seeded texts, through the repositories and the blob store."""
    face = face_crop(Image.open(face_photo(None)))
    video = Video(
        id=new_id(), owner_id=owner_id, title=f"synthetic {seed}", source_uri="test://synthetic",
        duration_s=scenes * 4.0,
    )  # fmt: skip
    rows = []
    for ordinal in range(scenes):
        data = keyframe(seed + ordinal, face if ordinal % face_every == 0 else None, size=size)
        uri = blobs.write(f"owners/{owner_id}/videos/{video.id}/keyframes/{ordinal:05d}.jpg", data)
        texts = scene_texts(seed + ordinal)
        rows.append(
            Scene(
                id=new_id(), video_id=video.id, owner_id=owner_id, ordinal=ordinal,
                start_s=ordinal * 4.0, end_s=(ordinal + 1) * 4.0, keyframe_uri=uri,
                keyframe_sha256=hashlib.sha256(data).hexdigest(), transcript=texts["transcript"],
                visual_description=texts["visual_description"], summary=texts["summary"],
            )
        )  # fmt: skip
    with uow_factory() as uow:
        uow.videos.add(video)
        uow.scenes.add_many(rows)
        uow.commit()
    return video, rows


def add_astronaut(uow_factory: UnitOfWorkFactory, blobs: FsspecBlobStore, owner_id: uuid.UUID) -> uuid.UUID:
    """A person with one reference photo (the packaged astronaut); returns the person id."""
    persons = Persons(
        uow_factory=uow_factory, blobs=blobs, max_image_bytes=2**25, max_image_pixels=50_000_000
    )
    return persons.create(owner_id, "Eileen Collins", [PhotoUpload.from_file(face_photo(None))]).person.id


# ----------------------------------------------------------------------------- inspection


def record_counts(engine: sa.Engine, owner_id: uuid.UUID) -> dict[str, tuple[int, int]]:
    """Per record table (and ``search_documents``) of the owner: ``(rows, distinct keys)``;
    the primary keys make the two equal, so what a test compares is rows against expected."""
    counts = {}
    with engine.connect() as connection:
        for step, table in t.RECORD_TABLES.items():
            subject = table.c[0]
            rows, keys = connection.execute(
                sa.select(sa.func.count(), sa.func.count(sa.distinct(sa.tuple_(subject, table.c.key)))).where(
                    table.c.owner_id == owner_id
                )
            ).one()
            counts[step.value] = (rows, keys)
        docs = t.search_documents.c
        rows, keys = connection.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(docs.scene_id))).where(
                docs.owner_id == owner_id
            )
        ).one()
        counts["search_documents"] = (rows, keys)
    return counts


def expected_counts(
    scenes: int, photos: int = 0, persons: int = 0, *, ocr: bool = False
) -> dict[str, tuple[int, int]]:
    """What ``record_counts`` must be once every record of a library is written exactly once;
    ``ocr``: the stack runs with ``SCENEDEX_OCR__ENABLED`` (an OCR record per scene and a fourth
    text channel), off in the test stacks as in the conftest."""
    channels = len(TEXT_CHANNELS) + (1 if ocr else 0)
    ocr_records = scenes if ocr else 0
    return {
        "person_photo_embeddings": (photos, photos),
        "person_query_embeddings": (persons, persons),
        "scene_ocr": (ocr_records, ocr_records),
        "scene_text_embeddings": (scenes * channels, scenes * channels),
        "scene_clip_embeddings": (scenes, scenes),
        "scene_person_embeddings": (scenes, scenes),
        "search_documents": (scenes, scenes),
    }


def video_item(engine: sa.Engine, job_id: uuid.UUID, video_id: uuid.UUID) -> Any:
    """The job item row of one video (``status``, ``deliveries``...), or None."""
    items = t.reprocess_job_items.c
    with engine.connect() as connection:
        return connection.execute(
            sa.select(t.reprocess_job_items).where(
                items.job_id == job_id, items.kind == "video", items.subject_id == video_id
            )
        ).first()


def job_items(engine: sa.Engine, job_id: uuid.UUID) -> list[Any]:
    items = t.reprocess_job_items.c
    with engine.connect() as connection:
        return list(connection.execute(sa.select(t.reprocess_job_items).where(items.job_id == job_id)))


def job_row(engine: sa.Engine, job_id: uuid.UUID) -> Any:
    with engine.connect() as connection:
        return connection.execute(sa.select(t.reprocess_jobs).where(t.reprocess_jobs.c.id == job_id)).one()


def video_documents(engine: sa.Engine, video_id: uuid.UUID) -> int:
    """Search documents written for the video's scenes (one per scene, committed per batch)."""
    docs = t.search_documents.c
    with engine.connect() as connection:
        return int(
            connection.execute(sa.select(sa.func.count()).where(docs.video_id == video_id)).scalar_one()
        )
