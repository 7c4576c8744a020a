"""``scenedex demo``: the whole pipeline on sample media in one command, offline.

It builds a fresh SQLite database and media folder, ingests the sample videos (the real media in
``../shared/data/real`` when present, else clips generated from the photos shipped in
``scenedex/sample``), adds a person from a face photo and its mirror image, reprocesses twice
(the second run computes nothing), runs a text, a person and an image search, and returns a
report. The generated "interview" clip shows the person's face, so person search has a scene to
find.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scenedex.domain.errors import InvalidRequestError
from scenedex.domain.progress import ProgressListener, ReprocessProgress
from scenedex.domain.request import ReprocessRequest, ReprocessScope

log = logging.getLogger(__name__)
DEMO_OWNER = uuid.UUID("00000000-0000-4000-8000-00000000de00")
MARKER = ".scenedex-demo"
PACKAGED_SAMPLES = Path(__file__).resolve().parents[1] / "sample"
BIKES_SUBTITLES = """1
00:00:00,000 --> 00:00:01,100
Cyclists ride down a busy city street.

2
00:00:03,100 --> 00:00:05,400
A rider in a red jacket passes the parked cars.

3
00:00:07,600 --> 00:00:09,600
Traffic waits at the crossing while bikes go by.
"""
INTERVIEW_SUBTITLES = """1
00:00:00,000 --> 00:00:01,900
The astronaut talks about her first flight into space.

2
00:00:02,000 --> 00:00:03,900
A cup of coffee steams on the table.
"""


@dataclass
class DemoReport:
    directory: Path
    clip_note: str | None
    videos: list[dict[str, Any]] = field(default_factory=list)
    person: dict[str, Any] = field(default_factory=dict)
    first_run: dict[str, Any] = field(default_factory=dict)
    second_run: dict[str, Any] = field(default_factory=dict)
    searches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.first_run.get("errors") and not self.second_run.get("errors")


def prepare_directory(directory: Path) -> None:
    """Empty ``directory`` for a new demo; refuses a non-empty folder that no demo made."""
    if directory.exists() and any(directory.iterdir()):
        if not (directory / MARKER).exists():
            raise InvalidRequestError(
                f"{directory} exists and was not made by scenedex demo; pick another --dir"
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("made by scenedex demo; safe to delete\n")


def sample_media(directory: Path, real_media: Path | None) -> dict[str, Path]:
    """The demo's inputs: videos (with subtitles) and the person's photos, written under
    ``directory/inputs``. Uses ``real_media`` when it holds the real sample files."""
    import cv2
    import numpy as np
    from PIL import Image, ImageOps

    inputs = directory / "inputs"
    inputs.mkdir()
    real = real_media if real_media and (real_media / "astronaut.png").is_file() else None
    face = Image.open(real / "astronaut.png" if real else PACKAGED_SAMPLES / "astronaut.jpg").convert("RGB")
    other = Image.open(real / "coffee.png" if real else PACKAGED_SAMPLES / "coffee.jpg").convert("RGB")
    media: dict[str, Path] = {
        "photo": inputs / "astronaut.png",
        "photo_mirrored": inputs / "astronaut-mirrored.png",
    }
    face.save(media["photo"])
    ImageOps.mirror(face).save(media["photo_mirrored"])

    size = (512, 512)
    media["interview"] = inputs / "interview.mp4"
    writer = cv2.VideoWriter(str(media["interview"]), cv2.VideoWriter.fourcc(*"mp4v"), 25, size)
    for frame in [face.resize(size)] * 50 + [other.resize(size)] * 50:
        writer.write(cv2.cvtColor(np.asarray(frame), cv2.COLOR_RGB2BGR))
    writer.release()
    (inputs / "interview.srt").write_text(INTERVIEW_SUBTITLES)
    if real and (real / "bikes.mp4").is_file():
        media["bikes"] = real / "bikes.mp4"
        (inputs / "bikes.srt").write_text(BIKES_SUBTITLES)
    if real and (real / "bigbuckbunny.mp4").is_file():
        media["bigbuckbunny"] = real / "bigbuckbunny.mp4"
    return media


def run_demo(
    directory: Path,
    real_media: Path | None,
    make_services: Callable[[bool], Any],
    listener_factory: Callable[[], Any],
    say: Callable[[str], None],
) -> DemoReport:
    """Run the demo in ``directory``. ``make_services(untrained)`` builds the services on the
    demo's database (``untrained=True`` forces random CLIP weights); ``listener_factory()``
    gives a context-managed ProgressListener; ``say`` prints a line for the user."""
    from scenedex.adapters.db.migrate import upgrade
    from scenedex.application import Application
    from scenedex.services.persons import PhotoUpload
    from scenedex.tools.clip_fallback import services_with_usable_clip

    prepare_directory(directory)
    services, clip_note = services_with_usable_clip(
        make_services,
        say,
        "The demo uses random CLIP weights instead, labelled 'untrained' in the model id: image "
        "search results are meaningless. Once real weights are available, `scenedex reprocess` "
        "recomputes exactly the CLIP step (and the search documents).",
    )
    report = DemoReport(directory, clip_note)
    upgrade(services.engine)
    media = sample_media(directory, real_media)
    app = Application(services)
    for name in ("interview", "bikes", "bigbuckbunny"):
        if name not in media:
            continue
        srt = directory / "inputs" / f"{name}.srt"
        result = app.videos.ingest_file(
            DEMO_OWNER, media[name], title=name, subtitles=srt if srt.is_file() else None
        )
        report.videos.append({"title": name, "video_id": str(result.video.id), "scenes": len(result.scenes)})
        say(f"ingested {name}: {len(result.scenes)} scenes")
    photos = [PhotoUpload.from_file(media["photo"]), PhotoUpload.from_file(media["photo_mirrored"])]
    person = app.persons.create(DEMO_OWNER, "Eileen Collins", photos)
    report.person = {"person_id": str(person.person.id), "name": person.person.name, "photos": 2}

    runner = services.runner()
    request = ReprocessRequest(ReprocessScope.OWNER, owner_id=DEMO_OWNER)
    report.first_run = _timed_run(runner, request, listener_factory)
    say("second run: everything is current, nothing is recomputed")
    report.second_run = _timed_run(runner, request, listener_factory)

    queries: list[tuple[str, dict[str, Any]]] = [
        ("text: 'cyclists riding down a busy street'", {"text": "cyclists riding down a busy street"}),
        ("text: 'astronaut talking about space flight'", {"text": "astronaut talking about space flight"}),
        (f"person: {person.person.name}", {"person_id": person.person.id}),
        ("image: astronaut photo", {"image": media["photo"].read_bytes()}),
    ]
    for label, query in queries:
        hits = services.search(DEMO_OWNER, k=3, **query)
        report.searches.append({"query": label, "results": [h.to_dict() for h in hits]})
    return report


def _timed_run(runner: Any, request: ReprocessRequest, listener_factory: Callable[[], Any]) -> dict[str, Any]:
    start = time.perf_counter()
    listener: ProgressListener
    with listener_factory() as listener:
        progress: ReprocessProgress = runner.run(request, listener=listener)
    summary = progress.to_dict()
    summary["total_seconds"] = round(time.perf_counter() - start, 3)
    return summary
