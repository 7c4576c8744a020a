"""Health of every configured dependency, and what to fix: the checks ``scenedex doctor`` prints
and the admin console's overview shows.

Each ``check_*`` function returns ``Check`` results (name, status, what was found, how to fix
it); ``run_checks(settings)`` runs them in order, each in a thread under a deadline so that
nothing can hang the command. Network clients get ``timeout`` seconds (a missing OpenSearch,
Redis or Postgres fails in about that). Model checks never download anything: a pretrained CLIP
tag is looked up in the Hugging Face cache, checkpoint files and model folders on disk; with
``load_models`` every model is also loaded (seconds; the CLI sets ``HF_HUB_OFFLINE=1``).
The result type is ``checks.Check``; the model and embedding service checks are in
``health_models``.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from scenedex.adapters.model_files import one_line
from scenedex.application.checks import Check, Status, fail, ok, reason, warn
from scenedex.application.health_models import (
    _if_remote,
    check_clip,
    check_embed_services,
    check_face_models,
    check_model_files,
    check_ocr_models,
    check_text_model,
    embed_urls,
    pinned_clip_file,
)
from scenedex.settings import SearchSettings, Settings

MODEL_DEADLINE_S = 120.0
"""Model checks import open_clip and torch (several seconds on a cold disk); loading takes longer."""


def run_checks(settings: Settings, *, timeout: float = 2.0, load_models: bool = False) -> list[Check]:
    """Every check for ``settings``, in report order: database, migrations, Redis, the circuit
    breakers the workers share (when Redis answers), the search index, the models, storage and
    (``SCENEDEX_EMBEDDER__BACKEND=http``) the embedding service."""
    engine = database_engine(settings.database_url, timeout)
    network = 3 * timeout + 1  # a check may make a few requests
    try:
        checks = guarded(("database", "migrations"), lambda: check_database(engine), network)
        reachable = engine if checks[0].status is Status.OK else None
        checks += guarded(("redis",), lambda: [check_redis(settings.redis_url, timeout)], network)
        if checks[-1].status is not Status.FAIL:
            names = tuple(f"breaker {name}" for name in breaker_names(settings))
            checks += guarded(names, lambda: check_breakers(settings, timeout), network)
        if settings.search.backend == "opensearch":
            search = lambda: check_opensearch(settings.search, timeout)  # noqa: E731
            checks += guarded(("opensearch", "search aliases"), search, network)
        else:
            checks += guarded(("search index",), lambda: [check_search_table(reachable)], network)
        model_checks = (
            ("model files", lambda: [check_model_files(settings)]),
            (
                "clip weights",
                lambda: [check_clip(settings.clip, load=load_models, pinned=pinned_clip_file(settings))],
            ),
            ("text model", lambda: [check_text_model(settings.text, load=load_models)]),
            ("face models", lambda: [check_face_models(load=load_models)]),
        )
        for name, probe in model_checks:
            checks += [_if_remote(c, settings.embedder) for c in guarded((name,), probe, MODEL_DEADLINE_S)]
        if settings.ocr.enabled:  # OCR runs in the worker whatever the embedder backend
            checks += guarded(("ocr models",), lambda: [check_ocr_models()], MODEL_DEADLINE_S)
        checks += guarded(("storage",), lambda: [check_storage(settings.storage_url)], network)
        urls = embed_urls(settings)
        if urls:
            names = (
                ("embedding service",) if len(urls) == 1 else tuple(f"embedding service {u}" for u in urls)
            )
            service = lambda: check_embed_services(urls, timeout)  # noqa: E731
            checks += guarded(names, service, network * len(urls))
        return checks
    finally:
        engine.dispose()


def guarded(names: Sequence[str], probe: Callable[[], list[Check]], deadline: float) -> list[Check]:
    """``probe()`` run in a daemon thread: its checks, or a FAIL per name if it raised or did
    not answer within ``deadline`` seconds (the thread is left behind; the process exits)."""
    outcome: list[list[Check] | BaseException] = []

    def target() -> None:
        try:
            outcome.append(probe())
        except Exception as error:  # a check that crashes is reported, never raised
            outcome.append(error)

    thread = threading.Thread(target=target, name=f"doctor-{names[0]}", daemon=True)
    thread.start()
    thread.join(deadline)
    if not outcome:
        return [
            fail(name, f"no answer within {deadline:g} s", "see why the dependency hangs") for name in names
        ]
    result = outcome[0]
    if isinstance(result, BaseException):
        return [fail(name, f"check failed: {type(result).__name__}: {one_line(result)}") for name in names]
    return result


# -- database --------------------------------------------------------------------------------


def database_engine(database_url: str, timeout: float) -> sa.Engine:
    """An engine without a pool whose connection attempts give up after ``timeout`` seconds
    (libpq counts whole seconds, at least 2). Unlike ``adapters.db.engine.create_engine`` it
    creates no folder for a SQLite file: the doctor changes nothing."""
    url = make_url(database_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    options: dict[str, Any] = {"poolclass": sa.pool.NullPool}
    if url.get_backend_name() == "postgresql":
        options["connect_args"] = {"connect_timeout": max(2, math.ceil(timeout))}
    return sa.create_engine(url, **options)


_PRODUCTS = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}


def check_database(engine: sa.Engine) -> list[Check]:
    """``database`` (reachable, server version) and ``migrations`` (at the head revision)."""
    shown = engine.url.render_as_string(hide_password=True)
    not_checked = fail("migrations", "not checked: the database is unreachable")
    sqlite_file = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if sqlite_file not in (None, "", ":memory:") and not Path(str(sqlite_file)).is_file():
        fix = "run `scenedex db upgrade` (creates it), or set SCENEDEX_DATABASE_URL"
        return [fail("database", f"SQLite file {sqlite_file} does not exist", fix), not_checked]
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
            version = ".".join(str(part) for part in connection.dialect.server_version_info or ())
    except sa.exc.SQLAlchemyError as error:
        reason = one_line(getattr(error, "orig", None) or error)
        fix = "start the database, or fix SCENEDEX_DATABASE_URL (host, port, user, password, database)"
        return [fail("database", f"{shown} unreachable: {reason}", fix), not_checked]
    server = f"{_PRODUCTS.get(engine.dialect.name, engine.dialect.name)} {version}".strip()
    return [ok("database", f"{shown} reachable ({server})"), check_migrations(engine)]


def check_migrations(engine: sa.Engine) -> Check:
    """The database's Alembic revision against the newest one shipped with this code."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from scenedex.adapters.db.migrate import alembic_config, current_revision

    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    current = current_revision(engine)
    if current == head:
        return ok("migrations", f"at head {head}")
    upgrade = "run `scenedex db upgrade`"
    if current is None:
        return fail("migrations", f"no schema (head is {head})", upgrade)
    try:
        script.get_revision(current)
    except CommandError:
        return fail(
            "migrations",
            f"at {current}, a revision this code does not know (head {head}): the database is newer",
            "run the scenedex version that migrated it, or restore a matching backup",
        )
    return fail("migrations", f"at {current}, head is {head}", upgrade)


def check_search_table(engine: sa.Engine | None) -> Check:
    """The table-backed search index (``SCENEDEX_SEARCH__BACKEND=table``)."""
    from scenedex.adapters.db.tables import search_documents

    name = "search index"
    if engine is None:
        return fail(name, "not checked: the database is unreachable")
    if not sa.inspect(engine).has_table(search_documents.name):
        return fail(name, f"table {search_documents.name} is missing", "run `scenedex db upgrade`")
    return ok(name, f"table {search_documents.name} (SCENEDEX_SEARCH__BACKEND=table)")


# -- Redis -----------------------------------------------------------------------------------


def check_redis(url: str, timeout: float) -> Check:
    """Reachable (PING); WARN when Redis may evict keys, which would lose queued messages."""
    import redis

    shown = hide_password(url)
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
        info = _redis_info(client)
    except redis.exceptions.AuthenticationError as error:
        fix = "put the password in SCENEDEX_REDIS_URL (redis://:PASSWORD@host:6379/0)"
        return fail("redis", f"{shown}: authentication failed ({one_line(error)})", fix)
    except redis.exceptions.RedisError as error:
        return fail(
            "redis", f"{shown} unreachable: {one_line(error)}", "start Redis, or fix SCENEDEX_REDIS_URL"
        )
    finally:
        client.close()
    detail = f"{shown} reachable (Redis {info.get('redis_version', 'version unknown')})"
    policy = info.get("maxmemory_policy")
    if info.get("maxmemory") and policy not in (None, "noeviction"):
        fix = "set maxmemory-policy noeviction (the broker's queues must never be evicted)"
        return warn("redis", f"{detail}; maxmemory-policy {policy} may evict queued messages", fix)
    return ok("redis", detail)


def breaker_names(settings: Settings) -> list[str]:
    """The shared breakers the workers of ``settings`` keep (Redis's own is per process)."""
    from scenedex.domain.errors import BLOBS, DATABASE, EMBEDDING, OPENSEARCH

    names = [DATABASE, BLOBS]
    if embed_urls(settings):
        names.append(EMBEDDING)
    if settings.search.backend == "opensearch":
        names.append(OPENSEARCH)
    return names


def check_breakers(settings: Settings, timeout: float) -> list[Check]:
    """Each shared circuit breaker as the workers see it (``adapters.breakers``): OK closed;
    WARN open or half-open (work needing the dependency is held), with the error that opened
    it and when the next probe is due."""
    import redis

    from scenedex.adapters.breakers import BreakerConfig, BreakerState, CircuitBreaker

    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)
    checks = []
    try:
        for name in breaker_names(settings):
            breaker = CircuitBreaker(name, client, BreakerConfig())
            status = breaker.status()
            label = f"breaker {name}"
            if status.state is BreakerState.CLOSED:
                checks.append(ok(label, f"closed ({status.failures} recent error(s))"))
                continue
            since = time.time() - (status.opened_at or time.time())
            checks.append(
                warn(
                    label,
                    f"{status.state.value} for {since:.0f} s, work needing it is held: {status.last_error}; "
                    f"next probe in {breaker.retry_in():.0f} s",
                    f"bring {name} back; the workers' probe closes the breaker and held work runs",
                )
            )
    finally:
        client.close()
    return checks


def _redis_info(client: Any) -> dict[str, Any]:
    import redis

    try:
        return dict(client.info())
    except redis.exceptions.ResponseError:  # INFO not allowed for this user: only PING is checked
        return {}


def hide_password(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


# -- OpenSearch ------------------------------------------------------------------------------


def check_opensearch(search: SearchSettings, timeout: float) -> list[Check]:
    """``opensearch`` (cluster reachable, version, health) and ``search aliases`` (the read and
    write aliases of ``SCENEDEX_SEARCH__INDEX_PREFIX``)."""
    from opensearchpy import exceptions as errors

    from scenedex.adapters.opensearch import IndexNames, OpenSearchIndex
    from scenedex.application.wiring import opensearch_client

    client = opensearch_client(search, timeout_s=timeout, max_retries=0)
    not_checked = fail("search aliases", "not checked: the cluster is unreachable")
    try:
        info = client.info()
    except (errors.AuthenticationException, errors.AuthorizationException) as error:
        fix = "set SCENEDEX_SEARCH__USERNAME and __PASSWORD (a user allowed the scenedex indexes)"
        return [
            fail("opensearch", f"{search.url} refused the credentials (HTTP {error.status_code})", fix),
            not_checked,
        ]
    except errors.SSLError as error:
        fix = "set SCENEDEX_SEARCH__CA_CERTS to the cluster's CA (PEM), or fix SCENEDEX_SEARCH__URL"
        return [fail("opensearch", f"{search.url}: TLS failed ({reason(error, timeout)})", fix), not_checked]
    except errors.ConnectionError as error:
        fix = (
            "start OpenSearch, or set SCENEDEX_SEARCH__URL to the cluster (or SCENEDEX_SEARCH__BACKEND=table)"
        )
        return [fail("opensearch", f"{search.url} unreachable: {reason(error, timeout)}", fix), not_checked]
    except errors.TransportError as error:
        return [
            fail("opensearch", f"{search.url} answered HTTP {error.status_code}: {error.error}"),
            not_checked,
        ]
    version = info.get("version", {}).get("number", "?")
    cluster = _cluster_health(client)
    detail = f"{search.url} reachable (OpenSearch {version}, cluster {cluster or 'health unknown'})"
    if cluster == "red":
        first = fail(
            "opensearch", detail, "some primary shards are unassigned: see GET _cluster/allocation/explain"
        )
    elif cluster == "yellow":
        fix = "replicas are unassigned: add nodes, or SCENEDEX_SEARCH__REPLICAS=0 on a single node"
        first = warn("opensearch", detail, fix)
    else:
        first = ok("opensearch", detail)
    names = IndexNames(search.index_prefix)
    return [first, _aliases(OpenSearchIndex(client, _no_layout, names=names), names)]


def _cluster_health(client: Any) -> str | None:
    try:
        return str(client.cluster.health()["status"])
    except Exception:  # a user without cluster:monitor rights: health is just not shown
        return None


def _no_layout() -> Any:
    raise RuntimeError("the doctor reads aliases only")


def _aliases(index: Any, names: Any) -> Check:
    name = "search aliases"
    state = index.aliases()
    read, write = names.read_alias, names.write_alias
    if state.read and state.write:
        phase = "live" if state.phase == "live" else f"building {state.write}"
        return ok(name, f"{read} -> {state.read}, {write} -> {state.write} ({phase})")
    if state.write:
        return warn(
            name,
            f"{read} is missing: the first index {state.write} is being built, searches find nothing yet",
            "let the reprocess finish (the read alias moves when every scene is indexed), "
            "or run `scenedex index promote`",
        )
    if state.read:
        return warn(name, f"{write} is missing ({read} -> {state.read})", "the next reprocess recreates it")
    return warn(
        name,
        f"no scene index yet ({read}, {write} missing)",
        "run `scenedex reprocess --scope all --enqueue` (its first write creates the index and aliases)",
    )


def check_storage(storage_url: str) -> Check:
    """The blob store root (``SCENEDEX_STORAGE_URL``, via fsspec) exists and is listable."""
    from fsspec.core import url_to_fs

    name = "storage"
    try:
        fs, root = url_to_fs(storage_url)
    except (ImportError, ValueError) as error:
        return fail(name, f"{storage_url}: {one_line(error)}", "pip install 'scenedex[s3]' for s3:// URLs")
    local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
    try:
        if not fs.exists(root):
            if local:
                return _missing_local_root(name, storage_url, Path(root))
            return fail(
                name, f"{storage_url} does not exist", "create the bucket, or fix SCENEDEX_STORAGE_URL"
            )
        entries = len(fs.ls(root, detail=False))
    except Exception as error:  # fsspec backends raise their own types (botocore's, aiohttp's...)
        return fail(name, f"{storage_url}: {one_line(error)}", "fix SCENEDEX_STORAGE_URL or its credentials")
    if local and not os.access(root, os.W_OK):
        return warn(name, f"{storage_url} is not writable by this user", "ingest writes keyframes there")
    return ok(name, f"{storage_url} listable ({entries} entries)")


def _missing_local_root(name: str, storage_url: str, root: Path) -> Check:
    parent = next((p for p in root.parents if p.exists()), None)
    if parent is not None and os.access(parent, os.W_OK):
        return warn(name, f"{storage_url} does not exist yet", "nothing to do: the first ingest creates it")
    return fail(
        name, f"{storage_url} does not exist and cannot be created", "create it, or fix SCENEDEX_STORAGE_URL"
    )
