"""``scenedex bench`` as a user runs it: a small real run on SQLite, and the seeded no-op on
Postgres (real text and face models; CLIP with explicitly untrained weights)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from scenedex.adapters.db.engine import create_engine
from tests.conftest import cli_json

pytestmark = [pytest.mark.integration, pytest.mark.models]
KEYS = {
    "database", "owner_id", "scenes", "videos", "batch_size", "machine", "models", "library", "bare",
    "full", "noop", "efficiency", "precision", "noop_seeded", "rss_mib", "warnings", "faces",
    "faces_to_clip", "faces_speedup", "speedup_vs_previous_faces", "face_check", "search", "frames_per_scene",
    "face_runtime", "faces_device", "faces_to_clip_default", "faces_speedup_default", "face_parity",
    "face_detectors", "ocr",
}  # fmt: skip


def bench(*args: str, **env_vars: str) -> dict[str, Any]:
    # The bench measures the models, CLIP with them: ViT-B-32, not cli_json's tiny test architecture.
    report: dict[str, Any] = cli_json("bench", *args, **{"SCENEDEX_CLIP__MODEL": "ViT-B-32", **env_vars})
    return report


@pytest.fixture
def bench_database_url(postgres_url: str) -> Iterator[str]:
    """An empty database of its own on the test Postgres server (the module's database's name,
    unique to the run and its xdist worker, + ``_bench``, within Postgres's 63 bytes), so the
    bench's owners never meet the other tests' rows; dropped afterwards."""
    url = make_url(postgres_url)
    name = f"{(url.database or '')[:57]}_bench"  # within 63 bytes
    server = create_engine(postgres_url).execution_options(isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        connection.execute(sa.text(f'create database "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with server.connect() as connection:
        connection.execute(sa.text(f'drop database if exists "{name}" with (force)'))
    server.dispose()


def test_bench_measures_every_phase_on_a_small_sqlite_library() -> None:
    report = bench(
        "--scenes", "4", "--batch-size", "2", "--no-face-check", "--no-sampling", SCENEDEX_OCR__ENABLED="true"
    )  # the check: test_face_check

    assert set(report) == KEYS
    assert report["database"].startswith("sqlite:///") and report["warnings"] == []
    assert report["models"]["clip_model_id"].endswith(":untrained")
    assert report["models"]["clip_note"] is None  # untrained was asked for, not fallen back to
    full, noop = report["full"]["steps"], report["noop"]["steps"]
    assert full["scene_clip_embeddings"]["computed"] == 4
    assert full["scene_text_embeddings"]["computed"] == 16  # three channels and the ocr channel
    assert full["scene_ocr"]["computed"] == 4
    ocr = report["ocr"]  # issue 33: OCR's cost next to CLIP's, full reprocess with and without it
    assert ocr["enabled"] and ocr["ocr_ms_per_scene"] > 0 and ocr["clip_ms_per_scene"] > 0
    assert ocr["with_ocr"]["scenes_per_s"] > 0 and ocr["without_ocr"]["scenes_per_s"] > 0
    assert 0 < ocr["with_ocr"]["ocr_share"] < 1 and "check" not in ocr  # no face check: no OCR check
    assert full["person_photo_embeddings"]["computed"] == 2
    assert full["search_reindex"]["computed"] == 4
    assert report["full"]["failed"] == 0
    assert all(step["computed"] == 0 for step in noop.values()) and report["noop"]["computed"] == 0
    bare = report["bare"]
    assert {name: rate["items"] for name, rate in bare.items()} == {"clip": 4, "text": 12, "faces": 4}
    assert all(rate["seconds"] > 0 and rate["items_per_s"] > 0 for rate in bare.values())
    assert isinstance(report["efficiency"], float) and report["efficiency"] > 0
    rss = report["rss_mib"]
    assert 0 < rss["after_build"] <= rss["after_bare"] <= rss["after_full"] <= rss["after_noop"]
    for figures in report["precision"].values():
        assert figures["precision"] == "fp32" or figures["min"] >= 0.999
    assert report["machine"]["torch_threads"] >= 1 and report["noop_seeded"] is None
    faces = report["faces"]
    assert faces["detection_id"].startswith("hog-side720-") and faces["threads"] >= 1
    assert faces["previous"]["detection_id"] == "hog-upsample1-minscore0.3-jitter1-landmarks5-maxside1600"
    assert faces["previous"]["failed"] == 0 and faces["previous"]["scenes_per_s"] > 0
    assert faces["faces_step_ms_per_scene"] > 0 and faces["clip_step_ms_per_scene"] > 0
    assert report["faces_to_clip"] == faces["faces_to_clip"] > 0
    assert report["faces_speedup"] > 0 and report["speedup_vs_previous_faces"] > 0
    assert report["face_check"] is None and report["search"] is None
    runs = report["face_runtime"]["runs"]  # issue 30: dlib and torch face runtimes, same library
    assert runs["torch"]["model_id"] == runs["dlib"]["model_id"] + ":torch-fp32"
    assert runs["dlib"]["failed"] == runs["torch"]["failed"] == 0
    assert report["faces_device"] == "cpu" and report["faces_speedup_default"] > 0
    assert report["faces_to_clip_default"] > 0
    assert report["face_parity"] is None and report["face_detectors"] is None  # no real media


def test_bench_seeds_a_current_library_and_times_its_noop_on_postgres(bench_database_url: str) -> None:
    url = bench_database_url
    fp32 = {"SCENEDEX_CLIP__PRECISION": "fp32", "SCENEDEX_TEXT__PRECISION": "fp32"}  # no second models
    report = bench(
        "--scenes", "2", "--batch-size", "2", "--noop-scenes", "50", "--database-url", url,
        "--no-face-check", "--no-sampling", **fp32,
    )  # fmt: skip

    assert report["database"].startswith("postgresql") and report["warnings"] == []
    seeded = report["noop_seeded"]
    assert seeded["scenes"] == 50 and seeded["seed_seconds"] > 0
    assert seeded["noop"]["computed"] == 0 and seeded["noop"]["failed"] == 0
    steps = seeded["noop"]["steps"]
    assert steps["scene_clip_embeddings"]["skipped"] == 50
    assert steps["scene_text_embeddings"]["skipped"] == 150
    assert steps["search_reindex"]["skipped"] == 50
    assert "stand-in" in seeded["note"]
    assert report["precision"]["clip"] == {"precision": "fp32", "note": "already fp32"}
    search = report["search"]
    assert search["scenes"] == 50 and 0 < search["p50_s"] <= search["p99_s"] and search["cold_s"] > 0
