"""Clients generated from ``docs/openapi.json`` as the integrating teams generate them (issue 28),
kept as tests so that a change of the document that breaks a generated client fails here.

- TypeScript: openapi-typescript's types and openapi-fetch (default settings; the npm tools
  pinned in ``tests/clients/ts/package-lock.json``, ``npm ci --prefix tests/clients/ts``, which
  ``.ci/run`` runs), and ``ts/search.ts`` type-checked with ``tsc --strict``: the search call
  passes its scalar query parameters (``{params: {query: {text, k}}}``) with no cast. Against
  the document before issue 28 (one object-valued ``query`` parameter) it does not compile.
  ``test_typescript_client.py`` compiles ``ts/flow.ts`` the same way and runs it against a live
  API and worker.

- Redocly CLI (pinned there too): ``redocly lint --extends recommended`` on the document finds
  no error and no warning but the two listed, with their reason, in
  ``ts/.redocly.lint-ignore.yaml`` (``/health`` and ``/ready`` have no 4xx answer).

Generated output goes to a temporary folder; the whole file takes a few seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "openapi.json"
TS = Path(__file__).resolve().parent / "ts"

needs_node = pytest.mark.skipif(
    shutil.which("node") is None or not (TS / "node_modules" / "openapi-typescript").is_dir(),
    reason="node or tests/clients/ts/node_modules missing (npm ci --prefix tests/clients/ts)",
)


def node_tool(package: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs a pinned npm tool's command line (its ``bin``) under node."""
    bins = {
        "openapi-typescript": "openapi-typescript/bin/cli.js",
        "typescript": "typescript/bin/tsc",
        "@redocly/cli": "@redocly/cli/bin/cli.js",
    }
    command = ["node", str(TS / "node_modules" / bins[package]), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=TS)


def typescript_client(document: Path, folder: Path) -> Path:
    """``folder`` with the generated ``schema.d.ts`` of ``document``, ``search.ts`` and the
    pinned packages (a link to ``ts/node_modules``)."""
    folder.mkdir(parents=True, exist_ok=True)
    generated = node_tool("openapi-typescript", str(document), "--output", str(folder / "schema.d.ts"))
    assert generated.returncode == 0, generated.stderr[-3000:]
    shutil.copy(TS / "search.ts", folder / "search.ts")
    (folder / "node_modules").symlink_to(TS / "node_modules")
    return folder


TSC_STRICT = ("--strict", "--target", "es2022", "--module", "esnext", "--moduleResolution", "bundler")
TSC_STRICT += ("--lib", "es2022,dom")
"""tsc's options for the generated TypeScript client's checks: strict, ES2022 modules as a
bundler resolves them, the DOM's fetch types."""


def tsc_strict(folder: Path) -> subprocess.CompletedProcess[str]:
    return node_tool("typescript", *TSC_STRICT, "--noEmit", str(folder / "search.ts"))


@needs_node
def test_the_typescript_client_calls_search_with_scalar_query_parameters(tmp_path: Path) -> None:
    folder = typescript_client(DOCUMENT, tmp_path / "ts")
    schema = (folder / "schema.d.ts").read_text()
    assert "searchScenes: {" in schema  # operations are named by their operationId
    checked = tsc_strict(folder)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]


@needs_node
def test_redocly_recommended_lint_is_clean() -> None:
    """0 errors, 0 warnings (servers, licence, ``security: []`` on the routes without a token,
    every example valid with its nulls); only the ignore file's two entries are skipped."""
    linted = node_tool(
        "@redocly/cli",
        "lint",
        "--extends",
        "recommended",
        "--format",
        "json",
        os.path.relpath(DOCUMENT, TS),
    )
    report = json.loads(linted.stdout)
    assert report["totals"] == {"errors": 0, "warnings": 0, "ignored": 2}, json.dumps(report["problems"])[
        :3000
    ]
    assert linted.returncode == 0, linted.stderr[-3000:]
