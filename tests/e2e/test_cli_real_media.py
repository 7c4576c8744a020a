"""The CLI as a user runs it, on the real media, against Postgres, with the real models
(text: all-MiniLM-L6-v2; faces: dlib; CLIP: ViT-B-32 with explicitly untrained weights).

The behaviour runs in this process (``tests.cli_runner.InProcessCli``: typer's ``CliRunner``, the
models loaded once for the module); the ``test_entry_point_*`` smoke tests and the demo run
``python -m scenedex.scripts.cli`` as the console script does (exit code, stdout JSON, stderr
progress)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image, ImageOps

from tests.cli_runner import InProcessCli
from tests.conftest import REAL_MEDIA, truncate_all

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
if not REAL_MEDIA.is_dir():
    pytest.skip(f"real sample media not found at {REAL_MEDIA}", allow_module_level=True)

OWNER = "11111111-1111-4111-8111-111111111111"
OTHER_OWNER = "22222222-2222-4222-8222-222222222222"
STEPS = [
    "person_photo_embeddings",
    "person_query_embeddings",
    "scene_text_embeddings",
    "scene_clip_embeddings",
    "scene_person_embeddings",
    "search_reindex",
    "face_clusters",
]


def entry_point(env: dict[str, str | None], *args: str) -> subprocess.CompletedProcess[str]:
    """``scenedex ARGS`` in a new interpreter, as the console script runs it (``env`` on top of
    this process's environment, None unsetting a variable)."""
    environment = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    return subprocess.run(
        [sys.executable, "-m", "scenedex.scripts.cli", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def by_step(summary: dict[str, Any], field: str) -> dict[str, int]:
    return {s["step"]: s[field] for s in summary["steps"]}


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, postgres_engine: sa.Engine) -> InProcessCli:
    truncate_all(postgres_engine)
    root = tmp_path_factory.mktemp("e2e")
    return InProcessCli(
        {
            "SCENEDEX_DATABASE_URL": postgres_engine.url.render_as_string(hide_password=False),
            "SCENEDEX_STORAGE_URL": str(root / "media"),
            "SCENEDEX_CLIP__PRETRAINED": "none",
            "SCENEDEX_LOG_LEVEL": "WARNING",
            "SCENEDEX_FACES__MATCH_THRESHOLD": None,
            "HF_HUB_OFFLINE": "1",
        }
    )


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The real media plus a flipped astronaut photo and a short clip showing her face."""
    import cv2

    root = tmp_path_factory.mktemp("media")
    astronaut = Image.open(REAL_MEDIA / "astronaut.png").convert("RGB")
    flipped = root / "astronaut-flipped.png"
    ImageOps.mirror(astronaut).save(flipped)
    clip = root / "interview.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 25, (512, 512))
    coffee = Image.open(REAL_MEDIA / "coffee.png").convert("RGB").resize((512, 512))
    for frame in [astronaut] * 50 + [coffee] * 50:
        writer.write(cv2.cvtColor(np.asarray(frame), cv2.COLOR_RGB2BGR))
    writer.release()
    srt = root / "bikes.srt"
    srt.write_text(
        "1\n00:00:00,000 --> 00:00:01,000\nCyclists ride down a busy street.\n\n"
        "2\n00:00:04,000 --> 00:00:05,000\nA red car waits at the traffic light.\n"
    )
    return {"flipped": flipped, "interview": clip, "bikes_srt": srt}


@pytest.fixture(scope="module")
def library(cli: InProcessCli, media: dict[str, Path]) -> dict[str, Any]:
    cli("db", "upgrade")
    bunny = cli.json("ingest", str(REAL_MEDIA / "bigbuckbunny.mp4"), "--owner-id", OWNER)
    bikes = cli.json(
        "ingest", str(REAL_MEDIA / "bikes.mp4"), "--owner-id", OWNER, "--subtitles", str(media["bikes_srt"])
    )
    interview = cli.json("ingest", str(media["interview"]), "--owner-id", OWNER, "--title", "Interview")
    person = cli.json(
        "person", "add", str(REAL_MEDIA / "astronaut.png"), str(media["flipped"]),
        "--owner-id", OWNER, "--name", "Eileen Collins",
    )  # fmt: skip
    return {"bunny": bunny, "bikes": bikes, "interview": interview, "person": person}


def test_ingest_prints_ids_and_scene_counts(library: dict[str, Any]) -> None:
    assert library["bunny"]["scenes"] == 1  # one continuous shot
    assert library["bikes"]["scenes"] >= 2
    assert library["interview"]["scenes"] == 2
    assert library["person"]["photos"] == 2
    uuid.UUID(library["bikes"]["video_id"])


def test_reprocess_owner_computes_everything_then_nothing_then_all_with_force(
    cli: InProcessCli, library: dict[str, Any], postgres_engine: sa.Engine
) -> None:
    scenes = library["bunny"]["scenes"] + library["bikes"]["scenes"] + library["interview"]["scenes"]
    plan = cli.json("reprocess", "--scope", "owner", "--owner-id", OWNER, "--dry-run")
    assert by_step(plan, "missing")["scene_clip_embeddings"] == scenes

    first = cli.json("reprocess", "--scope", "owner", "--owner-id", OWNER)
    assert first["errors"] == []
    assert by_step(first, "computed") == {
        "person_photo_embeddings": 2,
        "person_query_embeddings": 1,
        "scene_text_embeddings": 3 * scenes,
        "scene_clip_embeddings": scenes,
        "scene_person_embeddings": scenes,
        "search_reindex": scenes,
        "face_clusters": 1,  # the owner's suggested persons
    }
    second = cli.json("reprocess", "--scope", "owner", "--owner-id", OWNER)
    assert set(by_step(second, "computed").values()) == {0}
    assert by_step(second, "skipped") == by_step(first, "computed")

    # The interview's first scene shows the person's face: its document lists her.
    with postgres_engine.connect() as connection:
        rows = connection.execute(
            sa.text("select video_id, start_s, document from search_documents where owner_id = :o"),
            {"o": OWNER},
        ).all()
    persons_by_scene = {(str(r.video_id), r.start_s): r.document["person_ids"] for r in rows}
    interview = library["interview"]["video_id"]
    assert persons_by_scene[(interview, 0.0)] == [library["person"]["person_id"]]
    others = [p for (video, _), p in persons_by_scene.items() if not (video == interview and _ == 0.0)]
    assert all(p == [] for p in others)

    forced = cli.json("reprocess", "--scope", "video", "--video-id", library["bunny"]["video_id"], "--force")
    assert by_step(forced, "computed")["scene_clip_embeddings"] == 1
    assert by_step(forced, "computed")["person_photo_embeddings"] == 2


def test_threshold_change_makes_only_face_matching_and_reindex_stale(
    cli: InProcessCli, library: dict[str, Any]
) -> None:
    cli.json("reprocess", "--scope", "owner", "--owner-id", OWNER)
    env = {"SCENEDEX_FACES__MATCH_THRESHOLD": "0.3"}
    plan = cli.json("reprocess", "--scope", "owner", "--owner-id", OWNER, "--dry-run", **env)
    stale = by_step(plan, "stale")
    assert {step for step, n in stale.items() if n} == {
        "scene_person_embeddings",
        "search_reindex",
        "face_clusters",  # its fingerprint holds the faces step's
    }
    rerun = cli.json("reprocess", "--scope", "owner", "--owner-id", OWNER, **env)
    assert {s for s, n in by_step(rerun, "computed").items() if n} == {
        "scene_person_embeddings",
        "search_reindex",
        "face_clusters",
    }


def test_bad_keyframes_fail_their_items_with_exit_code_1(cli: InProcessCli, tmp_path: Path) -> None:
    bikes = cli.json("ingest", str(REAL_MEDIA / "bikes.mp4"), "--owner-id", OTHER_OWNER)
    keyframes = sorted(Path(cli.env["SCENEDEX_STORAGE_URL"]).glob(f"owners/{OTHER_OWNER}/**/keyframes/*.jpg"))
    assert len(keyframes) == bikes["scenes"] >= 3
    keyframes[0].write_bytes(b"this is not a jpeg")
    keyframes[1].unlink()
    keyframes[2].write_bytes(b"")

    result = cli.json("reprocess", "--scope", "owner", "--owner-id", OTHER_OWNER, expect=1)
    clip_errors = [e for e in result["errors"] if e["step"] == "scene_clip_embeddings"]
    messages = " | ".join(e["message"] for e in clip_errors)
    assert len(clip_errors) == 3, messages
    assert "file not found" in messages and "empty file" in messages and "corrupt image" in messages
    computed = by_step(result, "computed")
    assert computed["scene_clip_embeddings"] == bikes["scenes"] - 3
    assert computed["search_reindex"] == bikes["scenes"]
    # Owner isolation: the first owner's records are untouched and still current.
    other = cli.json("reprocess", "--scope", "owner", "--owner-id", OWNER, "--dry-run")
    assert all(s["missing"] == 0 for s in other["steps"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reprocess", "--scope", "video"], "needs a video id"),
        (["reprocess", "--scope", "video", "--video-id", "nope"], "is not a UUID"),
        (["reprocess", "--scope", "video", "--video-id", str(uuid.uuid4())], "not found"),
        (["reprocess", "--scope", "owner", "--owner-id", str(uuid.uuid4())], "has no videos or persons"),
        (["ingest", "/no/such/video.mp4", "--owner-id", OWNER], "video file not found"),
        (["person", "add", "/no/such.png", "--owner-id", OWNER, "--name", "x"], "photo file not found"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    cli: InProcessCli, library: dict[str, Any], args: list[str], message: str
) -> None:
    result = cli(*args, expect=2)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_search_by_subtitle_phrase_and_by_person(cli: InProcessCli, library: dict[str, Any]) -> None:
    cli.json("reprocess", "--scope", "owner", "--owner-id", OWNER)
    by_text = cli.json(
        "search", "--owner-id", OWNER, "--text", "cyclists riding down a busy street", "--k", "3"
    )
    first = by_text["results"][0]
    assert (first["video_id"], first["start_s"]) == (library["bikes"]["video_id"], 0.0)
    assert set(first) == {
        "scene_id", "video_id", "external_id", "start_s", "end_s", "score", "persons", "keyframe_url",
        "appearances", "channel", "ocr_snippet",
    }  # fmt: skip
    assert first["appearances"] == []  # person searches only
    assert first["keyframe_url"] == f"/v1/scenes/{first['scene_id']}/keyframe"
    scores = [r["score"] for r in by_text["results"]]
    assert len(scores) == 2 and scores[0] > scores[1]  # only scenes with text are comparable

    by_person = cli.json("search", "--owner-id", OWNER, "--person-id", library["person"]["person_id"])
    top = by_person["results"][0]
    assert (top["video_id"], top["start_s"]) == (library["interview"]["video_id"], 0.0)
    assert [p["person_id"] for p in top["persons"]] == [library["person"]["person_id"]]
    assert top["appearances"] and all(  # when the person is on screen, within the scene
        top["start_s"] <= a["start_s"] <= a["end_s"] <= top["end_s"] for a in top["appearances"]
    )

    by_image = cli.json(
        "search", "--owner-id", OWNER, "--image", str(REAL_MEDIA / "astronaut.png"), "--k", "1"
    )
    assert len(by_image["results"]) == 1
    assert cli("search", "--owner-id", OTHER_OWNER, "--person-id", library["person"]["person_id"], expect=2)


def test_entry_point_prints_the_same_json_as_in_process(cli: InProcessCli, library: dict[str, Any]) -> None:
    args = ("reprocess", "--scope", "owner", "--owner-id", OWNER, "--dry-run", "--json")
    in_process = json.loads(cli(*args).stdout)
    result = entry_point(cli.env, *args)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr[-3000:])
    assert json.loads(result.stdout) == in_process
    assert in_process["scenes"] == sum(library[v]["scenes"] for v in ("bunny", "bikes", "interview"))


def test_entry_point_shows_progress_on_stderr_and_the_table_on_stdout(
    cli: InProcessCli, library: dict[str, Any]
) -> None:
    video = library["interview"]["video_id"]  # two scenes, current since the runs above
    result = entry_point(cli.env, "reprocess", "--scope", "video", "--video-id", video)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr[-3000:])
    assert "reprocess under spec" in result.stdout and "Traceback" not in result.stderr
    bars = {line.split()[0]: line for line in result.stderr.splitlines() if line.split()}
    assert "2/2" in bars["scene_clip_embeddings"] and "2/2" in bars["scene_person_embeddings"], bars
    assert "2/2" in bars["person_photo_embeddings"], bars  # the owner's two photos


def test_entry_point_usage_error_exits_2_with_one_line() -> None:
    result = entry_point({}, "reprocess", "--scope", "video", "--video-id", "nope")
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "'nope' is not a UUID" in line, result.stderr
    assert result.stdout == ""


def test_demo_runs_offline_end_to_end(cli: InProcessCli, tmp_path: Path) -> None:
    no_settings = {k: None for k in {*os.environ, *cli.env} if k.startswith("SCENEDEX_")}  # defaults only
    report = cli.json("demo", "--dir", str(tmp_path / "demo"), "--media", str(REAL_MEDIA), **no_settings)
    assert "untrained" in report["clip_note"]
    assert set(by_step(report["second_run"], "computed").values()) == {0}
    titles = {v["video_id"]: v["title"] for v in report["videos"]}
    searches = {
        s["query"].split(":")[0] + ":" + s["query"].split(":")[1][:10]: s["results"]
        for s in report["searches"]
    }
    cyclists = next(r for q, r in searches.items() if "cyclists" in q)
    assert (titles[cyclists[0]["video_id"]], cyclists[0]["start_s"]) == ("bikes", 0.0)
    person = next(r for q, r in searches.items() if q.startswith("person"))
    assert (titles[person[0]["video_id"]], person[0]["start_s"]) == ("interview", 0.0)
    assert person[0]["persons"] == [
        {"person_id": report["person"]["person_id"], "name": report["person"]["name"]}
    ]
