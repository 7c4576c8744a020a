"""``docs/openapi.json``: the admin/owner API's OpenAPI document, as ``GET /openapi.json`` serves it.

    python -m scenedex.scripts.openapi > docs/openapi.json

API services in other languages generate their clients from the checked-in copy;
``tests/integration/test_openapi_command.py`` runs this command and compares. The app is built
offline, without secrets, connections or models: a throwaway SQLite database and blob folder, a
placeholder JWT secret (the document does not depend on the settings).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from scenedex.settings import ApiSettings, ClipSettings, Settings

_PLACEHOLDER_SECRET = "openapi-document-only-not-a-secret-0000"  # the app refuses to start without a key


def document() -> dict[str, Any]:
    """The OpenAPI document of ``create_app`` (built in a temporary folder, nothing connects)."""
    from scenedex.api import create_app

    with tempfile.TemporaryDirectory(prefix="scenedex-openapi-") as folder:
        root = Path(folder)
        settings = Settings(
            _env_file=None,
            database_url=f"sqlite:///{root / 'scenedex.db'}",
            storage_url=str(root / "media"),
            clip=ClipSettings(pretrained="none"),
            api=ApiSettings(jwt_secret=_PLACEHOLDER_SECRET),
        )
        schema: dict[str, Any] = create_app(settings).openapi()
    return schema


def render(schema: dict[str, Any] | None = None) -> str:
    """The text of ``docs/openapi.json``: ``schema`` (default: :func:`document`) as indented JSON."""
    return json.dumps(document() if schema is None else schema, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
