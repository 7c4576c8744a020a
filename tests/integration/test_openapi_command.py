"""``docs/openapi.json`` is what ``python -m scenedex.scripts.openapi`` writes, run as a command
(a subprocess: building the app resolves the CLIP preprocessing id, which imports open_clip and
torch, so this check is not in the unit tier; tests/unit/test_openapi_document.py checks the
document's shape). Regenerate after changing a route or a model:
``python -m scenedex.scripts.openapi > docs/openapi.json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
COMMAND = "python -m scenedex.scripts.openapi > docs/openapi.json"


def test_docs_openapi_json_is_what_the_command_writes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scenedex.scripts.openapi"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SCENEDEX_CLIP__PRETRAINED": "none", "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == json.loads(DOCUMENT.read_text()), (
        f"docs/openapi.json is stale: {COMMAND}"
    )
    assert result.stdout == DOCUMENT.read_text(), f"docs/openapi.json is not formatted as written: {COMMAND}"
