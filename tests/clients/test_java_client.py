"""The Java client integrating teams generate from ``docs/openapi.json`` (issue 28): openapi-generator
7.26 from the PyPI wheel that bundles its jar (``openapi-generator-cli``, in the dev lock; runs on
the machine's OpenJDK 17), with the two libraries teams use: ``native`` (java.net.http) and the
default ``okhttp-gson``. Compiling needs Maven Central, which these machines cannot reach, so the
test checks the generated search call's serialisation in the source: each search parameter is a
scalar query pair (``?k=5&text=...``). Before issue 28 the native client built
``one_of_0[text]=...`` and okhttp-gson ``query=<toString()>`` from the object-valued parameter.

About 12 s per library (the generator's JVM start dominates)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "openapi.json"
_BESIDE = Path(sys.executable).parent / "openapi-generator-cli"  # the venv's, PATH or not
GENERATOR = str(_BESIDE) if _BESIDE.is_file() else shutil.which("openapi-generator-cli")

needs_java = pytest.mark.skipif(
    GENERATOR is None or shutil.which("java") is None,
    reason="openapi-generator-cli (dev lock) or java missing",
)


def generate(library: str, folder: Path) -> str:
    """The generated ``SearchApi.java`` of ``library`` (source text)."""
    assert GENERATOR is not None
    command = [GENERATOR, "generate", "-i", str(DOCUMENT), "-g", "java", "-o", str(folder)]
    command += ["--library", library, "--global-property", "apis,models,supportingFiles"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return (folder / "src/main/java/org/openapitools/client/api/SearchApi.java").read_text()


@needs_java
@pytest.mark.parametrize("library", ["native", "okhttp-gson"])
def test_the_java_search_call_sends_scalar_query_parameters(library: str, tmp_path: Path) -> None:
    source = generate(library, tmp_path / library)
    signature = re.search(r"public SearchResponse searchScenes\(([^)]*)\)", source)
    assert signature is not None, "no searchScenes(...) method: the operationId changed"
    assert [p.split()[-1] for p in signature.group(1).split(",")] == ["k", "text", "personId"]
    pairs = re.findall(r'parameterToPairs?\("(\w+)", (\w+)\)', source)
    search_pairs = [name for name, _ in pairs if name in ("k", "text", "person_id")]
    assert sorted(set(search_pairs)) == ["k", "person_id", "text"], pairs
    assert "one_of_0" not in source and '"query"' not in source
