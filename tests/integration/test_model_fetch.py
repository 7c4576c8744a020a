"""``scenedex models fetch|verify`` against a local HTTP server (``Range`` support, in a thread)
serving a generated weights file: the real download path, small data. A fetch resumes after the
server stopped half-way, a file whose content is not the pin is refused, ``verify`` reports ok,
missing and corrupt, and the worker, the API and the embedding service refuse a corrupt file
with one line (exit 1)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from scenedex.adapters.model_download import ModelFileError, part_path
from scenedex.adapters.model_registry import ModelFile
from scenedex.services.models import FileState, ModelFiles
from tests.loopback import QuietServer

CLIP_ID = "open_clip:ViT-B-32:laion2b_s34b_b79k"
SIZE = 3 * 1024 * 1024 + 123


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` (name -> bytes) with ``Range: bytes=N-`` (206); ``cut_after``: bytes
    sent of a body before the connection is dropped (the server "stops half-way")."""

    files: ClassVar[dict[str, bytes]] = {}
    ranges: ClassVar[list[str | None]] = []
    cut_after: ClassVar[int | None] = None
    on_cut: ClassVar[Any] = None  # called (in a thread) after a cut body
    sent: ClassVar[int] = 0

    def do_GET(self) -> None:
        data = self.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404)
            return
        wanted = self.headers.get("Range")
        type(self).ranges.append(wanted)
        start = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1)) if wanted else 0  # type: ignore[union-attr]
        if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = data[start:]
        self.send_response(206 if wanted else 200)
        self.send_header("Content-Length", str(len(body)))
        if wanted:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if self.cut_after is not None:
            body = body[: self.cut_after]
        self.wfile.write(body)
        type(self).sent += len(body)
        if self.cut_after is not None:
            self.wfile.flush()
            self.connection.shutdown(2)
            if self.on_cut is not None:
                threading.Thread(target=type(self).on_cut).start()

    def log_message(self, *args: Any) -> None:
        pass


class Server:
    """``RangeHandler`` on a fixed loopback port, stoppable and restartable."""

    def __init__(self) -> None:
        self.httpd: QuietServer | None = None
        self.port = 0

    def start(self) -> str:
        self.httpd = QuietServer(("127.0.0.1", self.port), RangeHandler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


@pytest.fixture
def weights() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture
def server(weights: bytes) -> Iterator[Server]:
    RangeHandler.files = {"open_clip/generated.safetensors": weights}
    RangeHandler.ranges = []
    RangeHandler.cut_after = None
    RangeHandler.on_cut = None
    RangeHandler.sent = 0
    running = Server()
    running.start()
    yield running
    running.stop()


def pinned(weights: bytes, name: str = "open_clip/generated.safetensors") -> ModelFile:
    return ModelFile(
        CLIP_ID, name, "https://unreachable.invalid/x", hashlib.sha256(weights).hexdigest(), len(weights)
    )


def files_at(folder: Path, server: Server, entry: ModelFile) -> ModelFiles:
    return ModelFiles(
        {entry.model_id: entry},
        folder,
        (entry.model_id,),
        mirror=f"http://127.0.0.1:{server.port}",
        timeout_s=5,
        attempts=2,
        backoff_s=0.05,
    )


def test_fetch_resumes_after_the_server_stopped_half_way(
    tmp_path: Path, server: Server, weights: bytes
) -> None:
    entry = pinned(weights)
    files = files_at(tmp_path, server, entry)
    RangeHandler.cut_after = SIZE // 2
    RangeHandler.on_cut = server.stop  # the server stops half-way through the body
    done: list[int] = []

    def progress(done_bytes: int, total: int | None) -> None:
        done.append(done_bytes)

    with pytest.raises(ModelFileError, match="run `scenedex models fetch` again to resume") as refused:
        files.fetch(on_file=lambda _file: progress)
    assert "bytes kept" in str(refused.value)
    target = tmp_path / entry.filename
    assert not target.exists()
    assert part_path(target).stat().st_size == SIZE // 2
    assert [s.state for s in files.verify()] == [FileState.PARTIAL]

    RangeHandler.cut_after = None
    server.start()  # the same port
    statuses = files.fetch(on_file=lambda _file: progress)
    assert [s.state for s in statuses] == [FileState.OK]
    assert target.read_bytes() == weights
    assert not part_path(target).exists()
    assert RangeHandler.ranges[-1] == f"bytes={SIZE // 2}-"  # resumed, not restarted
    assert RangeHandler.sent == SIZE  # every byte sent once
    assert done[-1] == SIZE

    assert files.fetch() == statuses  # ok: nothing fetched again
    assert len(RangeHandler.ranges) == 2


def test_a_file_that_is_not_the_pin_is_refused_and_nothing_installed(
    tmp_path: Path, server: Server, weights: bytes
) -> None:
    entry = pinned(weights)
    corrupt = bytearray(weights)
    corrupt[SIZE // 3] ^= 0xFF
    RangeHandler.files[entry.filename] = bytes(corrupt)
    files = files_at(tmp_path, server, entry)
    with pytest.raises(ModelFileError, match=f"the pinned one is {entry.sha256}"):
        files.fetch()
    target = tmp_path / entry.filename
    assert not target.exists() and not part_path(target).exists()
    assert [s.state for s in files.verify()] == [FileState.MISSING]


def _cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scenedex.scripts.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_fetch_verify_and_the_processes_refusing_a_corrupt_file(
    tmp_path: Path, server: Server, weights: bytes
) -> None:
    good = pinned(weights)
    other_bytes = os.urandom(1000)
    other = ModelFile(
        "open_clip:RN50:extra",
        "open_clip/other.pt",
        "https://x.invalid/o",
        hashlib.sha256(other_bytes).hexdigest(),
    )
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps([vars(good), vars(other)]))
    env = {
        "SCENEDEX_MODELS_DIR": str(tmp_path / "models"),
        "SCENEDEX_MODELS__REGISTRY": str(registry),
        "SCENEDEX_MODELS__MIRROR": f"http://127.0.0.1:{server.port}",
        "SCENEDEX_CLIP__MODEL": "ViT-B-32",
        "SCENEDEX_CLIP__PRETRAINED": "laion2b_s34b_b79k",
        "SCENEDEX_EMBEDDER__BACKEND": "local",
    }
    fetched = _cli(env, "models", "fetch", "--json")
    assert fetched.returncode == 0, fetched.stderr
    assert json.loads(fetched.stdout)["files"][0]["state"] == "ok"
    assert (tmp_path / "models" / good.filename).read_bytes() == weights

    (tmp_path / "models" / "open_clip" / "other.pt").write_bytes(b"not the pinned bytes")
    verified = _cli(env, "models", "verify", "--all", "--json")
    assert verified.returncode == 1
    states = {f["model_id"]: f["state"] for f in json.loads(verified.stdout)["files"]}
    assert states[CLIP_ID] == "ok" and states["open_clip:RN50:extra"] == "corrupt"
    assert states["open_clip:ViT-B-16:openai"] == "missing"

    target = tmp_path / "models" / good.filename
    flipped = bytearray(weights)
    flipped[-1] ^= 1
    target.write_bytes(bytes(flipped))
    verified = _cli(env, "models", "verify")
    assert verified.returncode == 1 and "CORRUPT" in verified.stdout

    for command in (["worker"], ["embed-server"], ["api"]):
        refused = _cli({**env, "SCENEDEX_EMBED__ALLOW_INSECURE_AUTH": "1"}, *command)
        lines = [line for line in refused.stderr.splitlines() if line.strip()]
        assert refused.returncode == 1, (command, refused.stderr)
        assert len(lines) == 1, (command, refused.stderr)
        assert "corrupt" in lines[0] and "run: scenedex models fetch" in lines[0], lines

    repaired = _cli(env, "models", "fetch")
    assert repaired.returncode == 0, repaired.stderr
    assert target.read_bytes() == weights


def test_the_clip_embedder_reads_the_fetched_file_of_its_tag(tmp_path: Path) -> None:
    """A checkpoint installed by ``models fetch`` is what CLIP loads for the tag: here the
    untrained weights saved as the tag's file give the untrained model's vectors, under the
    tag's model id."""
    pytest.importorskip("open_clip")
    from safetensors.torch import save_file

    from scenedex.adapters.clip import OpenClipImageEmbedder
    from scenedex.application.wiring import _clip
    from scenedex.settings import Settings

    untrained = OpenClipImageEmbedder("ViT-B-32", "none", device="cpu", precision="fp32")
    untrained.load()
    checkpoint = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in untrained._model.state_dict().items()}, str(checkpoint))
    data = checkpoint.read_bytes()
    entry = ModelFile(
        CLIP_ID, "open_clip/tag.safetensors", "https://x.invalid/w", hashlib.sha256(data).hexdigest()
    )
    (tmp_path / "models" / "open_clip").mkdir(parents=True)
    (tmp_path / "models" / entry.filename).write_bytes(data)
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps([vars(entry)]))
    settings = Settings(
        models_dir=str(tmp_path / "models"),
        models={"registry": str(registry)},
        clip={"model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k", "device": "cpu", "precision": "fp32"},
    )
    ModelFiles.from_settings(settings).check_startup()
    fetched = _clip(settings)
    image = (Path(__file__).resolve().parents[2] / "src/scenedex/sample/astronaut.jpg").read_bytes()
    assert fetched.model_id == CLIP_ID
    [vector] = fetched.embed_images([image])
    [expected] = untrained.embed_images([image])
    assert abs(float(vector @ expected) - 1.0) < 1e-5  # type: ignore[operator]
