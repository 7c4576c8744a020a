"""Issue 19 on real media, real dlib and Postgres: unknown faces become suggested persons, and the
user's decisions (confirm, reject) hold through ``scenedex reprocess --force`` and a spec change.

One video of 8 scenes of 2 s (640x360, 10 fps, H.264) on coffee.png: astronaut.png's face in
scenes 0, 2, 4; the man of bikes.mp4 (frame 31) in scenes 1, 3, 5, both a little moved and
resized from scene to scene; scenes 6 and 7 show no face. CLIP and text are fakes."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image, ImageOps
from typer.testing import CliRunner

from scenedex.application import Application, Services, build_services
from scenedex.domain.model import new_id
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.spec import EmbeddingStepType as Step
from scenedex.services.videos import ingest_local_file, parse_scenes
from scenedex.settings import Settings
from tests.conftest import truncate_all
from tests.fakes import FakeImageEmbedder, FakeTextEmbedder

pytestmark = [pytest.mark.integration, pytest.mark.models]
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
SIZE, FPS, SCENE_S = (640, 360), 10, 2
ASTRONAUT, BIKES_MAN, NOBODY = (0, 2, 4), (1, 3, 5), (6, 7)


def media(name: str) -> Path:
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"sample media {path} not present")
    return path


def faces() -> dict[str, Image.Image]:
    """The two faces to paste: astronaut.png's (its face box (184, 85)-(273, 175)) and the bikes
    man's (frame index 30 of bikes.mp4, face box (261, 20)-(329, 89)), each with some margin."""
    av = pytest.importorskip("av")
    astronaut = Image.open(media("astronaut.png")).convert("RGB").crop((120, 20, 330, 240))
    with av.open(str(media("bikes.mp4"))) as container:
        frame = next(f for i, f in enumerate(container.decode(video=0)) if i == 30).to_image()
    man = frame.crop((231, 0, 359, 119))
    return {"astronaut": astronaut.resize((150, 157)), "man": man.resize((160, 149))}


def make_video(path: Path) -> None:
    av = pytest.importorskip("av")
    background = ImageOps.fit(Image.open(media("coffee.png")).convert("RGB"), SIZE)
    pasted = faces()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for index in range(8 * SCENE_S * FPS):
            scene = index // (SCENE_S * FPS)
            frame = background.copy()
            name = "astronaut" if scene in ASTRONAUT else "man" if scene in BIKES_MAN else None
            if name is not None:
                face = pasted[name]
                scale = 1.0 + 0.08 * (scene % 3)  # a little larger from scene to scene
                face = face.resize((int(face.width * scale), int(face.height * scale)))
                frame.paste(face, (60 + 50 * scene + index % 4, 60 + 10 * (scene % 3)))
            container.mux(stream.encode(av.VideoFrame.from_image(frame)))
        container.mux(stream.encode())


def owner_request(owner_id: uuid.UUID, force: bool = False) -> ReprocessRequest:
    return ReprocessRequest(ReprocessScope.OWNER, owner_id=owner_id, force=force)


def stale(services: Services, owner_id: uuid.UUID) -> dict[str, int]:
    """The dry run: per step with anything to do, how many items are missing or stale."""
    plan = services.runner().plan(owner_request(owner_id))
    counts = {step.value: c.missing + sum(c.stale.values()) for step, c in plan.steps.items()}
    return {step: n for step, n in counts.items() if n}


def computed(progress: Any) -> int:
    return sum(c.computed for c in progress.steps.values())


def with_threshold(services: Services, threshold: float) -> Services:
    faces_settings = services.settings.faces.model_copy(update={"match_threshold": threshold})
    return services.with_settings(services.settings.model_copy(update={"faces": faces_settings}))


def found(services: Services, owner_id: uuid.UUID, person_id: uuid.UUID, ordinal: dict) -> set[int]:
    """Scene ordinals a person search returns."""
    return {ordinal[r.scene_id] for r in services.search(owner_id, person_id=person_id, k=8)}


def test_suggestions_and_decisions_that_survive_force_and_a_spec_change(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(database_url=postgres_url, storage_url=str(tmp_path / "blobs"))
    services = build_services(settings, image_embedder=FakeImageEmbedder(), text_embedder=FakeTextEmbedder())
    truncate_all(services.engine)  # the module's own database, migrated (tests/conftest.py)
    owner_id, other_owner = new_id(), new_id()
    make_video(tmp_path / "library.mp4")
    scenes_json = [{"start_s": SCENE_S * i, "end_s": SCENE_S * (i + 1)} for i in range(8)]
    video = ingest_local_file(
        tmp_path / "library.mp4",
        owner_id,
        parse_scenes(scenes_json),
        uow_factory=services.uow_factory,
        blobs=services.blobs,
        cutter=services.video_cutter(),
    ).video
    assert video.error is None, video.error
    with services.uow_factory() as uow:
        ordinal = {s.id: s.ordinal for s in uow.scenes.list_for_video(owner_id, video.id)}

    # 1. one suggestion per face, with all of its scenes and no scene without it
    first = services.runner().run(owner_request(owner_id))
    assert first.failed == 0, first.errors
    assert first.steps[Step.FACE_CLUSTERS].computed == 1
    clusters = services.face_clusters()
    page = clusters.list(owner_id)
    by_scenes = {tuple(sorted(ordinal[s] for s in v.scene_ids)): v for v in page.suggestions}
    assert sorted(by_scenes) == [ASTRONAUT, BIKES_MAN], by_scenes.keys()
    assert page.unknown_faces == 6 and page.waiting_faces == 0
    for view in page.suggestions:
        assert view.thumbnail is not None
        thumb = Image.open(io.BytesIO(view.thumbnail))
        assert thumb.format == "JPEG" and max(thumb.size) <= 128
    assert clusters.list(other_owner).total == 0
    assert stale(services, owner_id) == {}

    # 2. confirm the astronaut's suggestion as a new person: exactly its records go stale
    decided = clusters.confirm(owner_id, by_scenes[ASTRONAUT].cluster_id, name="Eileen Collins")
    person = decided.person_id
    assert person is not None and len(decided.face_ids) == 3
    assert stale(services, owner_id) == {
        "person_query_embeddings": 1,  # the new person
        "scene_person_embeddings": 8,  # the person set changed: every scene matched again
        "search_reindex": 8,
        "face_clusters": 1,
    }
    confirmed = services.runner().run(owner_request(owner_id))
    assert confirmed.failed == 0 and confirmed.steps[Step.SCENE_CLIP_EMBEDDINGS].computed == 0
    assert found(services, owner_id, person, ordinal) == set(ASTRONAUT)
    assert [tuple(sorted(ordinal[s] for s in v.scene_ids)) for v in clusters.list(owner_id).suggestions] == [
        BIKES_MAN
    ]
    assert computed(services.runner().run(owner_request(owner_id))) == 0

    # 3. reject the astronaut's face in scene 2: that scene drops out, and only its records go stale
    scene_2 = next(s for s, n in ordinal.items() if n == 2)
    with services.uow_factory() as uow:
        record = uow.records.get(Step.SCENE_PERSON_EMBEDDINGS, owner_id, [scene_2])[(scene_2, "")]
    (index,) = [i for i, f in enumerate(record.payload["faces"]) if f["person_id"] == str(person)]
    clusters.reject(owner_id, f"{scene_2}:{index}", person)
    assert stale(services, owner_id) == {
        "scene_person_embeddings": 1,
        "search_reindex": 1,
        "face_clusters": 1,
    }
    assert services.runner().run(owner_request(owner_id)).failed == 0
    assert found(services, owner_id, person, ordinal) == {0, 4}
    assert computed(services.runner().run(owner_request(owner_id))) == 0

    # 4. `scenedex reprocess --force`: everything computed again, the decisions hold
    monkeypatch.setattr("scenedex.scripts.cli.build_application", lambda **_: Application(services))
    from scenedex.scripts.cli import app as cli

    forced = CliRunner().invoke(
        cli, ["reprocess", "--scope", "owner", "--owner-id", str(owner_id), "--force", "--json"]
    )
    assert forced.exit_code == 0, forced.output
    assert found(services, owner_id, person, ordinal) == {0, 4}
    assert stale(services, owner_id) == {}

    # 5. a spec change (the face match threshold): the face records and documents are recomputed
    # under the new fingerprint, the decisions hold, and a second run computes nothing
    stricter = with_threshold(services, 0.35)
    assert set(stale(stricter, owner_id)) == {"scene_person_embeddings", "search_reindex", "face_clusters"}
    assert stricter.runner().run(owner_request(owner_id)).failed == 0
    assert found(stricter, owner_id, person, ordinal) == {0, 4}
    assert computed(stricter.runner().run(owner_request(owner_id))) == 0
    with services.engine.connect() as connection:
        kinds = connection.execute(
            sa.text("select kind, count(*) from face_decisions where owner_id = :owner group by kind"),
            {"owner": owner_id},
        ).all()
    assert dict(kinds) == {"confirm": 3, "reject": 1}
    services.engine.dispose()
