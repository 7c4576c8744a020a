"""``scenedex doctor`` against the real local Postgres and Redis, SQLite files, an in-memory
OpenSearch-compatible server, sockets that never answer and a small HTTP server."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from scenedex.adapters.db.engine import create_engine
from scenedex.adapters.db.migrate import head_revision, upgrade
from scenedex.application.health import (
    Check,
    Status,
    check_breakers,
    check_clip,
    check_database,
    check_opensearch,
    check_redis,
    check_storage,
    database_engine,
    hide_password,
    run_checks,
)
from scenedex.application.health_models import check_embed_service
from scenedex.settings import ClipSettings, EmbedderSettings, SearchSettings, Settings
from tests.opensearch_fixtures import osmem  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

HEAD = head_revision()
"""The newest migration shipped (the doctor names it)."""

OK, WARN, FAIL = Status.OK, Status.WARN, Status.FAIL
CLIP_REPO = "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"


def statuses(checks: list[Check]) -> dict[str, Status]:
    return {check.name: check.status for check in checks}


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (into the backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache (what this machine has), whatever the real one holds."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_this_machine_db_and_redis_ok_opensearch_and_clip_weights_fail(
    postgres_engine: sa.Engine, redis_url: str, tmp_path: Path, empty_hf_cache: Path
) -> None:
    config = settings(
        database_url=postgres_engine.url.render_as_string(hide_password=False),
        redis_url=redis_url,
        storage_url=str(tmp_path),
        search=SearchSettings(backend="opensearch", url=f"http://127.0.0.1:{free_port()}"),
    )
    started = time.monotonic()
    checks = run_checks(config, timeout=2.0)
    assert time.monotonic() - started < 60

    assert statuses(checks) == {
        "database": OK,
        "migrations": OK,
        "redis": OK,
        "breaker database": OK,
        "breaker blobs": OK,
        "breaker opensearch": OK,
        "opensearch": FAIL,
        "search aliases": FAIL,
        "model files": WARN,
        "clip weights": FAIL,
        "text model": OK,
        "face models": OK,
        "storage": OK,
    }
    found = by_name(checks)
    assert "PostgreSQL" in found["database"].detail and found["migrations"].detail == f"at head {HEAD}"
    assert "connection refused" in found["opensearch"].detail
    assert "SCENEDEX_SEARCH__URL" in (found["opensearch"].fix or "")
    assert "not cached on this node" in found["clip weights"].detail
    assert "SCENEDEX_CLIP__PRETRAINED" in (found["clip weights"].fix or "")
    assert "scenedex models fetch" in (found["clip weights"].fix or "")
    assert "missing" in found["model files"].detail and found["model files"].fix == "scenedex models fetch"
    assert not list(empty_hf_cache.iterdir()), "the doctor must not download anything"


def test_a_dependency_that_never_answers_fails_within_the_timeout(silent_port: int) -> None:
    search = SearchSettings(backend="opensearch", url=f"http://127.0.0.1:{silent_port}")
    started = time.monotonic()
    opensearch, aliases = check_opensearch(search, timeout=1.0)
    assert time.monotonic() - started < 3
    assert opensearch.status is FAIL and "no answer within 1 s" in opensearch.detail
    assert aliases.status is FAIL and "not checked" in aliases.detail

    started = time.monotonic()
    redis = check_redis(f"redis://127.0.0.1:{silent_port}/0", timeout=1.0)
    assert time.monotonic() - started < 3
    assert redis.status is FAIL and "unreachable" in redis.detail

    engine = database_engine(f"postgresql+psycopg://postgres@127.0.0.1:{silent_port}/x", timeout=1.0)
    started = time.monotonic()
    database, migrations = check_database(engine)
    assert time.monotonic() - started < 5  # libpq's connect_timeout counts whole seconds, at least 2
    assert database.status is FAIL and "unreachable" in database.detail
    assert migrations.status is FAIL and "not checked" in migrations.detail


def test_unreachable_database_fails_and_the_table_index_is_not_checked(
    redis_url: str, tmp_path: Path
) -> None:
    config = settings(
        database_url=f"postgresql+psycopg://postgres:secret@127.0.0.1:{free_port()}/scenedex",
        redis_url=f"redis://:hunter2@127.0.0.1:{free_port()}/0",
        storage_url=str(tmp_path / "media"),
        clip=ClipSettings(pretrained="none"),
    )
    found = by_name(run_checks(config, timeout=1.0))
    assert found["database"].status is FAIL and "secret" not in found["database"].detail
    assert "***" in found["database"].detail and "SCENEDEX_DATABASE_URL" in (found["database"].fix or "")
    assert found["search index"].status is FAIL and "not checked" in found["search index"].detail
    assert found["redis"].status is FAIL and "hunter2" not in found["redis"].detail
    assert found["clip weights"].status is WARN and "untrained" in found["clip weights"].detail
    assert found["storage"].status is WARN and "does not exist yet" in found["storage"].detail
    assert "embedding service" not in found  # backend local: no service to check


def test_migrations_behind_missing_or_unknown_are_fails_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "scenedex.db"
    engine = database_engine(f"sqlite:///{path}", 1.0)
    database, migrations = check_database(engine)
    assert (database.status, migrations.status) == (FAIL, FAIL)
    assert "does not exist" in database.detail and "scenedex db upgrade" in (database.fix or "")
    assert not path.exists(), "the doctor must not create the database"

    sqlite3.connect(path).close()  # an empty database: no schema
    assert check_database(engine)[1] == Check(
        "migrations", FAIL, f"no schema (head is {HEAD})", "run `scenedex db upgrade`"
    )
    migrated = create_engine(f"sqlite:///{path}")
    upgrade(migrated, "0001")
    behind = check_database(engine)[1]
    assert behind.status is FAIL and behind.detail == f"at 0001, head is {HEAD}"
    upgrade(migrated)
    assert [c.status for c in check_database(engine)] == [OK, OK]
    with migrated.begin() as connection:
        connection.execute(sa.text("update alembic_version set version_num = '0099'"))
    newer = check_database(engine)[1]
    assert newer.status is FAIL and "does not know" in newer.detail
    migrated.dispose()
    engine.dispose()


def test_table_search_index_ok_on_a_migrated_database(
    postgres_engine: sa.Engine, redis_url: str, tmp_path: Path
) -> None:
    config = settings(
        database_url=postgres_engine.url.render_as_string(hide_password=False),
        redis_url=redis_url,
        storage_url=str(tmp_path),
        clip=ClipSettings(pretrained="none"),
    )
    found = by_name(run_checks(config))
    assert found["search index"].status is OK and "search_documents" in found["search index"].detail


def test_opensearch_reachable_aliases_missing_then_live(osmem: Any) -> None:  # noqa: F811
    from scenedex.adapters.opensearch import make_client

    clone = osmem.clone()
    try:
        search = SearchSettings(backend="opensearch", url=clone.url, index_prefix="doc-")
        cluster, aliases = check_opensearch(search, timeout=2.0)
        assert cluster.status is OK and "OpenSearch 3." in cluster.detail and "green" in cluster.detail
        assert aliases.status is WARN and "no scene index yet" in aliases.detail
        assert "scenedex reprocess" in (aliases.fix or "")

        client = make_client(clone.url, max_retries=0)
        client.indices.create(index="doc-scenes_v1", body={"aliases": {"doc-scenes_write": {}}})
        building = check_opensearch(search, timeout=2.0)[1]
        assert building.status is WARN and "doc-scenes is missing" in building.detail
        client.indices.put_alias(index="doc-scenes_v1", name="doc-scenes")
        live = check_opensearch(search, timeout=2.0)[1]
        assert (
            live.status is OK
            and live.detail == "doc-scenes -> doc-scenes_v1, doc-scenes_write -> doc-scenes_v1 (live)"
        )
    finally:
        clone.close()


def test_clip_weights_found_in_the_cache_or_as_a_checkpoint_file(
    empty_hf_cache: Path, tmp_path: Path
) -> None:
    snapshot = empty_hf_cache / CLIP_REPO / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (empty_hf_cache / CLIP_REPO / "refs").mkdir()
    (empty_hf_cache / CLIP_REPO / "refs" / "main").write_text("abc123")
    (snapshot / "open_clip_model.safetensors").write_bytes(b"weights")
    cached = check_clip(ClipSettings())
    assert cached.status is OK and str(snapshot / "open_clip_model.safetensors") in cached.detail

    checkpoint = tmp_path / "clip.safetensors"
    checkpoint.write_bytes(b"x" * 1024)
    assert check_clip(ClipSettings(pretrained=str(checkpoint))).status is OK
    missing = check_clip(ClipSettings(pretrained=str(tmp_path / "nope.pt")))
    assert missing.status is FAIL and "checkpoint file not found" in missing.detail
    unknown = check_clip(ClipSettings(pretrained="no_such_tag"))
    assert unknown.status is FAIL and "unknown open_clip pretrained tag" in unknown.detail


def test_storage_root_listable_or_missing(tmp_path: Path) -> None:
    (tmp_path / "owners").mkdir()
    listed = check_storage(f"file://{tmp_path}")
    assert listed.status is OK and "1 entries" in listed.detail
    assert check_storage(str(tmp_path / "not-yet")).status is WARN
    assert check_storage("nosuchproto://bucket/x").status is FAIL


class _Health(BaseHTTPRequestHandler):
    status = 200
    body: ClassVar[Any] = {
        "status": "ok",
        "models": {
            "clip": {"model_id": "open_clip:ViT-B-32:sha256-0123", "dim": 512},
            "text": {"model_id": "sentence-transformers:all-MiniLM-L6-v2:sha256-4567:fp32"},
            "faces": {"model_id": "dlib:resnet-v1"},
        },
    }

    def do_GET(self) -> None:
        payload = json.dumps(self.body).encode() if self.path == "/health" else b"{}"
        self.send_response(self.status if self.path == "/health" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[str, type[_Health]]]:
    handler = type("Health", (_Health,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    server.shutdown()
    server.server_close()


def test_embedding_service_health_with_its_model_ids(health_server: Any) -> None:
    url, handler = health_server
    up = check_embed_service(EmbedderSettings(backend="http", url=url), timeout=2.0)
    assert up.status is OK
    assert "clip=open_clip:ViT-B-32:sha256-0123" in up.detail and "faces=dlib:resnet-v1" in up.detail
    handler.status = 503
    assert check_embed_service(EmbedderSettings(backend="http", url=url), timeout=2.0).status is FAIL
    handler.status, handler.body = 200, {"status": "ok"}
    assert check_embed_service(EmbedderSettings(backend="http", url=url), timeout=2.0).status is WARN
    down = check_embed_service(EmbedderSettings(backend="http", url=f"http://127.0.0.1:{free_port()}"), 1.0)
    assert down.status is FAIL and "connection refused" in down.detail


def test_with_the_embedding_service_a_missing_model_is_a_warning(
    health_server: Any, empty_hf_cache: Path, tmp_path: Path
) -> None:
    url, _ = health_server
    config = settings(
        database_url=f"sqlite:///{tmp_path / 'none.db'}",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        storage_url=str(tmp_path),
        embedder=EmbedderSettings(backend="http", url=url),
    )
    found = by_name(run_checks(config, timeout=1.0))
    assert found["clip weights"].status is WARN and "embedding service" in found["clip weights"].detail
    assert found["embedding service"].status is OK


def test_hide_password() -> None:
    assert hide_password("redis://:pw@redis:6379/0") == "redis://:***@redis:6379/0"
    assert hide_password("redis://user:pw@redis:6379/0") == "redis://user:***@redis:6379/0"
    assert hide_password("redis://redis:6379/0") == "redis://redis:6379/0"


def test_cli_json_on_this_machine(
    postgres_url: str, postgres_engine: sa.Engine, redis_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "SCENEDEX_DATABASE_URL": postgres_url,
        "SCENEDEX_REDIS_URL": redis_url,
        "SCENEDEX_STORAGE_URL": str(tmp_path),
        "SCENEDEX_SEARCH__BACKEND": "opensearch",
        "SCENEDEX_SEARCH__URL": f"http://127.0.0.1:{free_port()}",
        "HF_HUB_CACHE": str(tmp_path / "hf-hub"),
        "SCENEDEX_LOG_FORMAT": "json",
    }
    scenedex = Path(sys.executable).with_name("scenedex")
    result = subprocess.run(
        [str(scenedex), "doctor", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert {c["name"]: c["status"] for c in report["checks"]} == {
        "database": "ok",
        "migrations": "ok",
        "redis": "ok",
        "breaker database": "ok",
        "breaker blobs": "ok",
        "breaker opensearch": "ok",
        "opensearch": "fail",
        "search aliases": "fail",
        "model files": "warn",
        "clip weights": "fail",
        "text model": "ok",
        "face models": "ok",
        "storage": "ok",
    }
    assert "Traceback" not in result.stderr  # the failures are the report's lines, not log noise
    assert all(json.loads(line) for line in result.stderr.splitlines())  # JSON logs, if any


def test_cli_text_one_line_per_check_and_exit_0_without_fails(
    postgres_url: str, postgres_engine: sa.Engine, redis_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "SCENEDEX_DATABASE_URL": postgres_url,
        "SCENEDEX_REDIS_URL": redis_url,
        "SCENEDEX_STORAGE_URL": str(tmp_path / "media"),
        "SCENEDEX_CLIP__PRETRAINED": "none",
    }
    scenedex = Path(sys.executable).with_name("scenedex")
    result = subprocess.run(
        [str(scenedex), "doctor"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["OK", "database"],
        ["OK", "migrations"],
        ["OK", "redis"],
        ["OK", "breaker"],
        ["OK", "breaker"],
        ["OK", "search"],
        ["OK", "model"],
        ["WARN", "clip"],
        ["OK", "text"],
        ["OK", "face"],
        ["WARN", "storage"],
    ]
    assert "-> fix: " in lines[7] and "-> fix: " not in lines[0]


def test_an_open_breaker_is_a_warning_with_its_error_and_next_probe(
    postgres_engine: sa.Engine, redis_url: str, tmp_path: Path
) -> None:
    """What the workers share in Redis: an embedding service they found down shows as WARN."""
    import redis

    from scenedex.adapters.breakers import BreakerConfig, CircuitBreaker
    from scenedex.settings import EmbedderSettings

    config = settings(
        database_url=postgres_engine.url.render_as_string(hide_password=False),
        redis_url=redis_url,
        storage_url=str(tmp_path),
        embedder=EmbedderSettings(backend="http", url=f"http://127.0.0.1:{free_port()}"),
    )
    client = redis.Redis.from_url(redis_url)
    breaker = CircuitBreaker("embedding", client, BreakerConfig(failure_threshold=1, open_s=30))
    breaker.record_failure("embedding service POST /v1/embed/image-batch: ConnectError")
    try:
        found = by_name(check_breakers(config, timeout=2.0))
    finally:
        breaker.reset()
    assert found["breaker database"].status is OK and found["breaker blobs"].status is OK
    embedding = found["breaker embedding"]
    assert embedding.status is WARN and "ConnectError" in embedding.detail
    assert "open for" in embedding.detail and "next probe in" in embedding.detail


def test_ocr_models_ok_here_and_a_missing_runtime_fails_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from scenedex.application import health_models

    found = health_models.check_ocr_models()
    assert found.status is OK and found.detail.startswith("PP-OCRv5 in ") and found.detail.endswith("ppocrv5")
    real = health_models.importlib.util.find_spec
    monkeypatch.setattr(
        health_models.importlib.util, "find_spec", lambda name: None if name == "onnxruntime" else real(name)
    )
    missing = health_models.check_ocr_models()
    assert missing.status is FAIL and "onnxruntime is not installed" in missing.detail
    assert "SCENEDEX_OCR__ENABLED=false" in (missing.fix or "")
