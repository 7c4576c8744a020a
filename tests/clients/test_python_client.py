"""The Python client openapi-python-client 0.29.1 generates from ``docs/openapi.json``, run
against the live ``scenedex api`` and ``scenedex worker`` of ``conftest.live_stack`` (shared with
the TypeScript flow; this flow's owner is ``OWNER_B``, the TypeScript one's ``OWNER_A``) on the
test Postgres and Redis, with the real models (issue 28).

openapi-python-client 0.29.1 needs ``typer<0.28`` and the project's lock pins typer 0.29.2 (the
CLI), so the generator gets a venv of its own, made once from PyPI under
``$SCENEDEX_CLIENTS_CACHE`` (default ``~/.cache/scenedex-clients``) and kept between runs. The
generated package is written to a temporary folder and ``python_flow.py`` runs the whole flow of
``ts/flow.ts`` with the generator's venv (which has what the package needs: httpx, attrs,
python-dateutil): a person with photos created twice with one ``Idempotency-Key`` (one person),
waited for until ``searchable``; a video by reference with the upstream cut waited for until
``ready``, its ``ETag`` and a 304; text, person and image search; the keyframe and its 304; a
404 and a 422 parsed as ``Problem`` documents; both deletes, the worker's line about the video's
carrying the DELETE's ``X-Request-ID``. No request is written by hand and no call is cast.

Known gap of the generator: ``getKeyframe``'s ``image/jpeg`` answer is not typed (it skips
media types other than JSON and ``application/octet-stream``; the raw bytes are in
``sync_detailed(...).content``).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.clients.conftest import PHOTO, SAMPLE, LiveStack, assert_flow_output, photo_jpeg
from tests.conftest import REAL_MEDIA
from tests.integration.test_api import OWNER_B, make_token

pytestmark = [
    pytest.mark.integration,
    pytest.mark.models,
    pytest.mark.skipif(not REAL_MEDIA.is_dir(), reason=f"real sample media not found at {REAL_MEDIA}"),
]

GENERATOR = "openapi-python-client==0.29.1"
ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "openapi.json"
FLOW = Path(__file__).resolve().parent / "python_flow.py"
OWNER = OWNER_B
"""The Python flow's owner (the TypeScript flow has another: neither sees the other's data)."""


def generator_venv() -> Path:
    """The generator's venv (made on first use: ``python -m venv`` and pip from PyPI). Two runs
    of the suite on one machine share the cache: the first makes the venv under an exclusive
    lock (``fcntl.flock`` on ``<venv>.lock``), the other waits for it and then uses it."""
    cache = Path(os.environ.get("SCENEDEX_CLIENTS_CACHE", Path.home() / ".cache" / "scenedex-clients"))
    venv = cache / f"opc-{GENERATOR.split('==')[1]}"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (venv / "bin" / "openapi-python-client").exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
            installed = subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", GENERATOR],
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert installed.returncode == 0, installed.stderr[-3000:]
    return venv


def test_the_generated_python_client_runs_the_flow_against_a_live_api_and_worker(
    owner_stack: Callable[[uuid.UUID], LiveStack], tmp_path: Path
) -> None:
    stack = owner_stack(OWNER)
    venv = generator_venv()
    generated = subprocess.run(
        [
            str(venv / "bin" / "openapi-python-client"),
            "generate",
            "--path",
            str(DOCUMENT),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / "sdk" / "scenedex_client"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"},
    )
    assert generated.returncode == 0, generated.stdout[-3000:] + generated.stderr[-3000:]
    said = generated.stdout + generated.stderr
    skipped = [line for line in said.splitlines() if line.startswith("WARNING parsing")]
    assert skipped == ["WARNING parsing GET /v1/scenes/{scene_id}/keyframe within search."], skipped

    source = stack.upload(OWNER, "bikes.mp4", SAMPLE.read_bytes())
    keyframe = stack.upload(OWNER, "astronaut.jpg", photo_jpeg())
    token = make_token(OWNER, (), exp_s=3600)
    command = [str(venv / "bin" / "python"), str(FLOW), str(tmp_path / "sdk"), stack.base_url]
    command += [token, source, keyframe, str(PHOTO)]
    ran = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    out = json.loads(ran.stdout)

    assert_flow_output(out, stack, OWNER, "py-flow")
