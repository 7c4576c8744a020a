"""A phrase only painted on the picture finds its scene first: the real OCR reader (PP-OCRv5 on
ONNX Runtime), the real text model (all-MiniLM-L6-v2) and untrained CLIP, on Postgres, through
the CLI, the use case and HTTP. Kept small: one three-scene clip, three keyframes read."""

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
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from scenedex.settings import ApiSettings, Settings
from tests.conftest import REAL_MEDIA, truncate_all
from tests.integration.test_api import SECRET, bearer, make_token

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
if not REAL_MEDIA.is_dir():
    pytest.skip(f"real sample media not found at {REAL_MEDIA}", allow_module_level=True)

OWNER = "33333333-3333-4333-8333-333333333333"
PHRASE = "Lighthouse Ferry Terminal"
"""Painted on the middle scene's frames only; no transcript, description or summary has it."""
SIZE = (640, 360)


def painted_clip(root: Path) -> tuple[Path, Path]:
    """A 6-s clip of three shots (coffee, rocket with ``PHRASE`` on a caption band, a cat) and
    subtitles that never say the phrase."""
    import cv2

    from scenedex.tools.ocr_check import Style, paint

    def shot(name: str) -> Image.Image:
        return ImageOps.fit(Image.open(REAL_MEDIA / name).convert("RGB"), SIZE, Image.Resampling.LANCZOS)

    rocket = paint(shot("rocket.jpg"), PHRASE, Style("DejaVuSans.ttf", 34, "caption"), (60, 260))
    clip = root / "painted.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 25, SIZE)
    for frame in [shot("coffee.png")] * 50 + [rocket] * 50 + [shot("chelsea.png")] * 50:
        writer.write(cv2.cvtColor(np.asarray(frame), cv2.COLOR_RGB2BGR))
    writer.release()
    srt = root / "painted.srt"
    srt.write_text(
        "1\n00:00:00,500 --> 00:00:01,500\nA cup of coffee on a wooden table.\n\n"
        "2\n00:00:02,500 --> 00:00:03,500\nThe launch lights up the morning sky.\n\n"
        "3\n00:00:04,500 --> 00:00:05,500\nA cat looks into the camera.\n"
    )
    return clip, srt


def cli(env: dict[str, str], *args: str) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "scenedex.scripts.cli", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    return json.loads(result.stdout)


def test_a_phrase_painted_on_the_picture_finds_its_scene_first(
    tmp_path: Path, postgres_engine: sa.Engine
) -> None:
    truncate_all(postgres_engine)
    database = postgres_engine.url.render_as_string(hide_password=False)
    env = {
        **os.environ,
        "SCENEDEX_DATABASE_URL": database,
        "SCENEDEX_STORAGE_URL": str(tmp_path / "media"),
        "SCENEDEX_CLIP__PRETRAINED": "none",
        "SCENEDEX_OCR__ENABLED": "true",
        "SCENEDEX_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
    }
    subprocess.run([sys.executable, "-m", "scenedex.scripts.cli", "db", "upgrade"], env=env, check=True)
    clip, srt = painted_clip(tmp_path)
    video = cli(env, "ingest", str(clip), "--owner-id", OWNER, "--subtitles", str(srt), "--no-embed")
    assert video["scenes"] == 3

    run = cli(env, "reprocess", "--scope", "owner", "--owner-id", OWNER)
    computed = {s["step"]: s["computed"] for s in run["steps"]}
    assert run["errors"] == [] and computed["scene_ocr"] == 3 and computed["scene_text_embeddings"] == 12
    with postgres_engine.connect() as connection:
        rows = connection.execute(
            sa.text("select s.start_s, o.payload from scene_ocr o join scenes s on s.id = o.scene_id"),
        ).all()
    read = {row.start_s: row.payload["text"] for row in rows}
    painted_start = next(start for start, text in read.items() if "lighthouse" in text.lower())
    assert 1.5 <= painted_start <= 2.5  # the middle shot, and only it
    assert sum(1 for text in read.values() if "lighthouse" in text.lower()) == 1

    query = PHRASE.lower()
    by_cli = cli(env, "search", "--owner-id", OWNER, "--text", query, "--k", "3")["results"]
    first = by_cli[0]
    assert first["start_s"] == painted_start
    assert first["channel"] == "ocr" and "lighthouse ferry terminal" in first["ocr_snippet"].lower()
    assert all(
        hit["ocr_snippet"] is None or "lighthouse" not in hit["ocr_snippet"].lower() for hit in by_cli[1:]
    )

    settings = Settings(
        database_url=database,
        storage_url=str(tmp_path / "media"),
        clip={"pretrained": "none"},
        ocr={"enabled": True},
        api=ApiSettings(jwt_secret=SECRET),
    )
    from scenedex.api import create_app

    app = create_app(settings)
    with TestClient(app) as client:
        by_use_case = app.state.application.search.scenes(uuid.UUID(OWNER), text=query, k=3)
        assert by_use_case[0].scene_id == uuid.UUID(first["scene_id"])
        assert by_use_case[0].channel == "ocr"
        token = bearer(make_token(uuid.UUID(OWNER), ()))
        by_http = client.get("/v1/search", params={"text": query, "k": 3}, headers=token)
        assert by_http.status_code == 200, by_http.text
        top = by_http.json()["results"][0]
        assert (top["scene_id"], top["channel"]) == (first["scene_id"], "ocr")
        assert "lighthouse" in top["ocr_snippet"].lower()
