"""Persons across a whole scene (issue 18): faces from frames sampled over the scene, face
tracks, and the time ranges each person appears in, on videos built from the real media.

Two one-scene videos of 8 s (640x360, 10 fps, H.264): in ``late`` astronaut.png's face is
there from 4.0 s to the end; in ``early`` only from 0.5 s to 2.6 s, so the scene's keyframe
(its middle, 4.0 s) shows no face. Faces are the real dlib models; CLIP and text are fakes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps
from typer.testing import CliRunner

from scenedex.adapters.db.migrate import upgrade
from scenedex.api import create_app
from scenedex.application import Application, Services, build_services
from scenedex.domain.model import new_id
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.spec import EmbeddingStepType as Step
from scenedex.services.persons import PhotoUpload
from scenedex.services.videos import ingest_local_file, parse_scenes
from scenedex.settings import ApiSettings, Settings
from scenedex.tasks.queue import build_runtime
from tests.fakes import FakeImageEmbedder, FakeTextEmbedder
from tests.integration.test_api import SECRET, bearer, make_token

pytestmark = [pytest.mark.integration, pytest.mark.models]
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
SIZE, FPS, SECONDS = (640, 360), 10, 8
CASES = {"late": (4.0, 8.0), "early": (0.5, 2.6)}
"""When the face is on screen, seconds ``[from, to)``."""


def make_video(path: Path, face_from: float, face_to: float) -> None:
    av = pytest.importorskip("av")
    background = ImageOps.fit(Image.open(REAL / "coffee.png").convert("RGB"), SIZE)
    photo = Image.open(REAL / "astronaut.png").convert("RGB")
    face = photo.crop((120, 20, 330, 240)).resize((150, 157), Image.Resampling.LANCZOS)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for index in range(SECONDS * FPS):
            frame = background.copy()
            if face_from <= index / FPS < face_to:
                frame.paste(face, (240 + index % 5, 90))  # a little movement
            container.mux(stream.encode(av.VideoFrame.from_image(frame)))
        container.mux(stream.encode())


@dataclass
class Library:
    services: Services
    owner_id: Any
    person_id: Any
    videos: dict[str, Any]

    def run(self, **faces: Any) -> Any:
        return runner_with(self.services, **faces).run(
            ReprocessRequest(ReprocessScope.OWNER, owner_id=self.owner_id)
        )

    def face_payload(self, name: str, **faces: Any) -> dict[str, Any]:
        services = services_with(self.services, **faces)
        with services.uow_factory() as uow:
            (scene,) = uow.scenes.list_for_video(self.owner_id, self.videos[name])
            records = uow.records.get(Step.SCENE_PERSON_EMBEDDINGS, self.owner_id, [scene.id])
        (record,) = records.values()
        payload: dict[str, Any] = record.payload
        return payload


def services_with(base: Services, **faces: Any) -> Services:
    return base.with_settings(
        base.settings.model_copy(update={"faces": base.settings.faces.model_copy(update=faces)})
    )


def runner_with(base: Services, **faces: Any) -> Any:
    return services_with(base, **faces).runner()


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    if not (REAL / "astronaut.png").is_file():
        pytest.skip(f"sample media {REAL} not present")
    folder = tmp_path_factory.mktemp("appearances")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'db.sqlite'}",
        storage_url=str(folder / "blobs"),
    )
    settings = settings.model_copy(
        update={
            "faces": settings.faces.model_copy(update={"sample_interval_s": 1.0, "max_frames_per_scene": 9})
        }
    )
    services = build_services(settings, image_embedder=FakeImageEmbedder(), text_embedder=FakeTextEmbedder())
    upgrade(services.engine)
    owner_id = new_id()
    videos = {}
    for name, (face_from, face_to) in CASES.items():
        path = folder / f"{name}.mp4"
        make_video(path, face_from, face_to)
        video = ingest_local_file(
            path,
            owner_id,
            parse_scenes(json.loads('[{"start_s": 0, "end_s": 8}]')),
            uow_factory=services.uow_factory,
            blobs=services.blobs,
            cutter=services.video_cutter(),
        ).video
        assert video.error is None, video.error
        videos[name] = video.id
    added = services.persons().create(
        owner_id, "Eileen Collins", [PhotoUpload.from_file(REAL / "astronaut.png")]
    )
    yield Library(services, owner_id, added.person.id, videos)
    services.engine.dispose()


def test_the_person_is_found_with_the_time_ranges_where_the_face_is(library: Library) -> None:
    progress = library.run()
    assert progress.failed == 0, progress.errors
    person = str(library.person_id)
    for name, (face_from, face_to) in CASES.items():
        payload = library.face_payload(name)
        assert payload["frames_from"] == "video" and payload["fallback"] is None
        assert payload["frames"] == [0.5, 1.5, 2.5, 3.5, 4.0, 4.5, 5.5, 6.5, 7.5]
        (span,) = payload["appearances"][person]
        start, end = span
        # covers where the face is, to within one sampling interval, and nothing outside it
        assert face_from <= start <= face_from + 1.0 and face_to - 1.0 <= end < face_to, (name, span)
        (track,) = payload["faces"]
        assert track["person_id"] == person and track["first_s"] == start and track["last_s"] == end


def test_the_keyframe_alone_misses_a_face_away_from_the_middle_frame(library: Library) -> None:
    keyframe_only = {"max_frames_per_scene": 1}
    assert library.run(**keyframe_only).failed == 0
    person = str(library.person_id)
    late = library.face_payload("late", **keyframe_only)
    assert late["frames_from"] == "keyframe" and late["frames"] == [4.0]
    assert late["appearances"] == {person: [[4.0, 4.0]]}
    early = library.face_payload("early", **keyframe_only)
    assert early["faces"] == [] and early["appearances"] == {}


def test_changing_the_sampling_marks_exactly_faces_and_documents_stale(library: Library) -> None:
    library.run()
    plan = runner_with(library.services).plan(
        ReprocessRequest(ReprocessScope.OWNER, owner_id=library.owner_id)
    )
    assert all(counts.missing + sum(counts.stale.values()) == 0 for counts in plan.steps.values())
    changed = runner_with(library.services, sample_interval_s=2.0)
    plan = changed.plan(ReprocessRequest(ReprocessScope.OWNER, owner_id=library.owner_id))
    stale = {step.value: dict(counts.stale) for step, counts in plan.steps.items() if counts.stale}
    assert stale == {
        "scene_person_embeddings": {"fingerprint_changed": 2},
        "search_reindex": {"fingerprint_changed": 2},
        "face_clusters": {"fingerprint_changed": 1},  # the owner's suggestions follow the faces step
    }
    first = changed.run(ReprocessRequest(ReprocessScope.OWNER, owner_id=library.owner_id))
    assert first.failed == 0
    again = changed.run(ReprocessRequest(ReprocessScope.OWNER, owner_id=library.owner_id))
    assert sum(counts.computed for counts in again.steps.values()) == 0


def test_a_person_search_gives_the_time_ranges_by_use_case_http_and_cli(
    library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert library.run().failed == 0  # the fixture's sampling (1 s), whatever ran before
    person = library.person_id
    expected, by_name = {}, {}  # scene id -> the face record's ranges of the person
    for name in CASES:
        with library.services.uow_factory() as uow:
            (scene,) = uow.scenes.list_for_video(library.owner_id, library.videos[name])
        spans = library.face_payload(name)["appearances"][str(person)]
        expected[str(scene.id)] = by_name[name] = [{"start_s": start, "end_s": end} for start, end in spans]
    late = by_name["late"]
    assert len(late) == 1 and 4.0 <= late[0]["start_s"] <= 5.0 and 7.0 <= late[0]["end_s"] < 8.0

    # the use case (what the API, the CLI and the console call)
    results = library.services.search(library.owner_id, person_id=person, k=5)
    assert {str(r.scene_id): r.to_dict()["appearances"] for r in results} == expected
    assert all(r.appearances == () for r in library.services.search(library.owner_id, text="x", k=5))

    # over HTTP
    settings = library.services.settings.model_copy(update={"api": ApiSettings(jwt_secret=SECRET)})
    app = create_app(settings, runtime=build_runtime(settings, library.services))
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get(
            "/v1/search",
            params={"person_id": str(person), "k": 5},
            headers=bearer(make_token(library.owner_id, ())),
        )
    assert answer.status_code == 200, answer.text
    assert {hit["scene_id"]: hit["appearances"] for hit in answer.json()["results"]} == expected

    # on the command line: JSON, and the table's "on screen" column
    monkeypatch.setattr("scenedex.scripts.cli.build_application", lambda **_: Application(library.services))
    from scenedex.scripts.cli import app as cli

    arguments = ["search", "--owner-id", str(library.owner_id), "--person-id", str(person), "--k", "5"]
    printed = CliRunner().invoke(cli, [*arguments, "--json"])
    assert printed.exit_code == 0, printed.output
    hits = json.loads(printed.stdout)["results"]
    assert {hit["scene_id"]: hit["appearances"] for hit in hits} == expected
    table = CliRunner().invoke(cli, arguments, env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    start, end = late[0]["start_s"], late[0]["end_s"]
    assert "on screen" in table.stdout and f"0:0{int(start)}-0:0{int(end)}" in table.stdout
