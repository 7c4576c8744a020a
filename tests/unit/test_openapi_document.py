"""``docs/openapi.json`` is the admin/owner API's OpenAPI document, as the app serves it: API
services in other languages generate their clients from it. Regenerate after changing a route
or a model: ``python -m scenedex.scripts.openapi > docs/openapi.json``."""

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


def test_the_document_is_openapi_3_1_with_the_reprocess_union() -> None:
    document = json.loads(DOCUMENT.read_text())
    assert document["openapi"].startswith("3.1")
    body = document["paths"]["/v1/admin/reprocess-embeddings"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ReprocessBody"}
    union = document["components"]["schemas"]["ReprocessBody"]
    assert union["discriminator"]["propertyName"] == "scope"
    assert set(union["discriminator"]["mapping"]) == {"video", "owner", "all"}
