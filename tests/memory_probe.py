"""Peak memory of a worker's ingest on hostile inputs (issue 25), each case in a fresh process.

    python -m tests.memory_probe              # every case, a table of peak RSS (MiB)
    python -m tests.memory_probe huge_scene   # one case, one JSON line

Cases, all through ``services.videos.ingest_queued_video`` (the ``ingest_video`` actor's work)
on SQLite and a folder blob store, as a worker runs them:
- ``baseline``: bikes.mp4 (10 s) cut by three upstream scenes, keyframes grabbed: the normal level.
- ``huge_scene``: a stored row whose scene runs ``[0, 1e15)`` s (written before the API bounded
  scene times; the API now answers 422), then the face sampler's times for that scene
  (``sample_times``, which built one list entry per second before).
- ``sparse_source``: a 3 GiB sparse file as the source (read whole into memory before).
- ``zero_symlink``: the source a symlink to ``/dev/zero`` in the folder store.

Peak RSS is ``getrusage(RUSAGE_SELF).ru_maxrss`` of the process after the case (KiB on Linux).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
BIKES = MEDIA / "bikes.mp4"
CASES = ("baseline", "huge_scene", "sparse_source", "zero_symlink")
OWNER = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
SPARSE_BYTES = 3 * 1024**3


def run_case(case: str, folder: Path) -> dict[str, Any]:
    """Run ``case`` in this process; its outcome (the video's status and error)."""
    import sqlalchemy as sa

    from scenedex.adapters.db.migrate import upgrade
    from scenedex.adapters.db.repositories import SqlUnitOfWorkFactory
    from scenedex.adapters.storage import FsspecBlobStore
    from scenedex.adapters.video import PySceneDetectSceneDetector
    from scenedex.domain.blobs import upload_key
    from scenedex.domain.face_tracks import sample_times
    from scenedex.domain.model import Video, VideoStatus, new_id
    from scenedex.services.videos import (
        IngestLimits,
        NewVideo,
        UpstreamScene,
        get_video,
        ingest_queued_video,
    )

    engine = sa.create_engine(f"sqlite:///{folder}/probe.db")
    upgrade(engine)
    uow_factory = SqlUnitOfWorkFactory(engine)
    blobs = FsspecBlobStore(f"file://{folder}/media")
    key = upload_key(OWNER, "source.mp4")
    path = folder / "media" / key
    path.parent.mkdir(parents=True)
    scenes: tuple[UpstreamScene, ...] = (
        UpstreamScene(0.0, 3.0),
        UpstreamScene(3.0, 6.5),
        UpstreamScene(6.5, 10.0),
    )
    if case == "sparse_source":
        with path.open("wb") as file:
            file.truncate(SPARSE_BYTES)
    elif case == "zero_symlink":
        path.symlink_to("/dev/zero")
    else:
        path.write_bytes(BIKES.read_bytes())
    if case == "huge_scene":
        scenes = (UpstreamScene(0.0, 1e15),)
    new = NewVideo(source_uri=f"{blobs.root_uri}/{key}", scenes=scenes)
    video = Video(
        new_id(), OWNER, case, new.source_uri, 0.0, status=VideoStatus.QUEUED, ingest=new.ingest_json()
    )
    with uow_factory() as uow:  # written as an old row would be: no API validation
        uow.videos.add_or_get(video)
        uow.commit()
    ingest_queued_video(
        video.id,
        uow_factory=uow_factory,
        blobs=blobs,
        cutter=PySceneDetectSceneDetector(),
        limits=IngestLimits(),
    )
    stored = get_video(OWNER, video.id, uow_factory=uow_factory)
    outcome: dict[str, Any] = {"status": stored.video.status.value, "error": stored.video.error}
    if case == "huge_scene":
        outcome["sampled"] = len(sample_times(0.0, 1e15, 5e14, 1.0, 4))
    return outcome


def probe(case: str) -> dict[str, Any]:
    """Run ``case`` in a fresh process; its outcome and ``peak_rss_mib``."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.memory_probe", case],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory probe {case} exited {done.returncode}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str]) -> None:
    if argv:
        with tempfile.TemporaryDirectory(prefix="scenedex-memory-") as folder:
            outcome = run_case(argv[0], Path(folder))
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"case": argv[0], **outcome, "peak_rss_mib": round(peak_mib, 1)}))
        return
    results = [probe(case) for case in CASES]
    base = results[0]["peak_rss_mib"]
    print(f"{'case':<15} {'peak RSS MiB':>13} {'vs baseline':>12}  outcome")
    for r in results:
        delta = r["peak_rss_mib"] - base
        print(f"{r['case']:<15} {r['peak_rss_mib']:>13.1f} {delta:>+12.1f}  {r['status']}: {r['error']}")


if __name__ == "__main__":
    main(sys.argv[1:])
