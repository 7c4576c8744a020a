"""The TypeScript client generated from ``docs/openapi.json`` (openapi-typescript types and
openapi-fetch, default settings; ``test_clients.typescript_client``) running ``ts/flow.ts``
against the live ``scenedex api`` and ``scenedex worker`` of ``conftest.live_stack`` (shared
with the Python flow, ``test_python_client.py``; this flow's owner is ``OWNER_A``, the Python
one's another) on the test Postgres and Redis, with the real models (all-MiniLM, dlib, untrained
CLIP said out loud), as issue 28 asks of the clients.

``flow.ts`` is compiled with ``tsc --strict`` (to JavaScript, next to the generated schema) and
run with node 20 (global ``fetch``, ``FormData``, ``Blob``): a person from a photo, created
twice with one ``Idempotency-Key`` (one person), waited for until ``searchable``; a video by
reference with the upstream cut (three scenes, one keyframe given: the person's face) waited for
until ``ready``, its ETag and a 304; text, person and image search; the keyframe and its 304;
a 404 and a 422 as ``application/problem+json``; ``DELETE`` of the video (gone once the worker
ran) and of the person. The video's POST and DELETE send ``X-Request-ID``: echoed, and the
worker's line about the deletion carries it (``request=`` in its text log). Every call goes
through the typed client: no hand-written request, no cast. The flow takes about 80 s on a
loaded 2-core machine (load ~10), plus the stack's start when it runs first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.clients.conftest import PHOTO, SAMPLE, LiveStack, assert_flow_output, photo_jpeg
from tests.clients.test_clients import DOCUMENT, TS, TSC_STRICT, needs_node, node_tool, typescript_client
from tests.conftest import REAL_MEDIA
from tests.integration.test_api import OWNER_A, make_token

OWNER = OWNER_A
"""The TypeScript flow's owner (the Python flow has another: neither sees the other's data)."""
pytestmark = [
    pytest.mark.integration,
    pytest.mark.models,
    needs_node,
    pytest.mark.skipif(
        not (TS / "node_modules" / "@types" / "node").is_dir(),
        reason="@types/node missing from tests/clients/ts/node_modules (npm ci --prefix tests/clients/ts)",
    ),
    pytest.mark.skipif(not REAL_MEDIA.is_dir(), reason=f"real sample media not found at {REAL_MEDIA}"),
]


def compiled_flow(folder: Path) -> Path:
    """``flow.ts`` and the generated schema compiled with ``tsc --strict`` into ``folder``;
    returns the JavaScript to run (an ES module: ``folder`` gets a ``package.json`` saying so)."""
    typescript_client(DOCUMENT, folder)
    shutil.copy(TS / "flow.ts", folder / "flow.ts")
    (folder / "package.json").write_text('{"type": "module"}\n')
    compiled = node_tool("typescript", *TSC_STRICT, "--outDir", str(folder / "out"), str(folder / "flow.ts"))
    assert compiled.returncode == 0, compiled.stdout[-3000:] + compiled.stderr[-3000:]
    shutil.copy(folder / "package.json", folder / "out" / "package.json")
    return folder / "out" / "flow.js"


def test_the_generated_typescript_client_runs_the_flow_against_a_live_api_and_worker(
    owner_stack: Callable[[uuid.UUID], LiveStack], tmp_path: Path
) -> None:
    stack = owner_stack(OWNER)
    flow = compiled_flow(tmp_path / "ts")
    source = stack.upload(OWNER, "bikes.mp4", SAMPLE.read_bytes())
    keyframe = stack.upload(OWNER, "astronaut.jpg", photo_jpeg())
    token = make_token(OWNER, (), exp_s=3600)
    ran = subprocess.run(
        ["node", str(flow), stack.base_url, token, source, keyframe, str(PHOTO)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=flow.parent,
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    out = json.loads(ran.stdout)

    assert_flow_output(out, stack, OWNER, "ts-flow")
