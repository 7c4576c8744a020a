"""Shared fixtures: real Postgres and SQLite databases (migrated with Alembic), probed once per
run (the Postgres test database created if missing), and a ``World`` harness that runs the same
runner scenarios over the in-memory fakes and both databases.

Postgres: each test module that asks for ``postgres_url`` or ``postgres_engine`` gets a database
of its own, cloned (``CREATE DATABASE ... TEMPLATE``, about 0.1 s) from a template migrated once
per run and dropped at the module's end, so no module sees another's rows. Its name is the base
(``SCENEDEX_TEST_DATABASE_URL``'s database), the pytest-xdist worker (``_gw0``...) if any, and
the module (``run_database_name``). Redis: under pytest-xdist each worker has a Redis database of
its own (``worker_redis_url``)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import sqlalchemy as sa

from scenedex.adapters.db.engine import create_engine
from scenedex.adapters.db.migrate import upgrade
from scenedex.adapters.db.repositories import SqlUnitOfWorkFactory
from scenedex.adapters.db.search_index import TableSearchIndex
from scenedex.adapters.db.tables import metadata
from scenedex.domain.model import Person, PersonPhoto, Scene, Video, new_id
from scenedex.domain.reprocess import ReprocessRunner
from scenedex.domain.scene_faces import FaceSampling
from scenedex.domain.spec import ReprocessSpec, SpecInputs
from scenedex.services.ingest import keyframe_key
from scenedex.settings import FaceSettings
from tests import xdist_schedule
from tests.fakes import (
    FakeFaceEmbedder,
    FakeImageEmbedder,
    FakeOcrReader,
    FakeTextEmbedder,
    InMemoryBlobStore,
    InMemorySearchIndex,
    InMemoryStore,
)

XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
"""This process's pytest-xdist worker ("gw0", "gw1"...), "" without xdist."""
REDIS_DATABASES = 16  # redis.conf's default `databases`


def worker_redis_url(url: str, worker: str) -> str:
    """The Redis URL of an xdist worker: worker ``gwK`` uses database N + K, where N is the
    database of ``url`` (N - K when N + K passes 15), so that parallel workers never flush each
    other's broker queues, breakers or idempotency keys. ``url`` as it is without a worker."""
    if not worker:
        return url
    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0)
    index = int(worker.removeprefix("gw"))
    shifted = number + index if number + index < REDIS_DATABASES else number - index
    if not 0 <= shifted < REDIS_DATABASES:
        raise pytest.UsageError(f"no Redis database for xdist worker {worker} next to database {number}")
    return urlunsplit(parts._replace(path=f"/{shifted}"))


# The tests' broker: Redis database 15 (the worker's, under xdist), flushed by the tests that use
# it (set before the first runtime is built, which installs the broker from the settings and binds
# the actors to it).
os.environ["SCENEDEX_REDIS_URL"] = worker_redis_url(
    os.environ.get("SCENEDEX_REDIS_URL", "redis://127.0.0.1:6379/15"), XDIST_WORKER
)
# OCR (on by default in production) is off in the tests unless a test turns it on: the fakes'
# keyframes carry no pixels to read, and the real reader costs ~250 ms a frame (docs/OCR.md).
os.environ.setdefault("SCENEDEX_OCR__ENABLED", "false")

REAL_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/scenedex_test"


@dataclass(frozen=True)
class Service:
    """What the run found of a server the tests use (probed once, in ``pytest_configure``)."""

    name: str
    url: str  # as the fixture returns it
    shown_url: str  # password hidden
    require_variables: tuple[str, ...]  # any of them =1 makes "unreachable" a failure
    error: str | None = None  # None: reachable
    note: str | None = None  # said at the start of the run when reachable (e.g. database created)

    @property
    def required_by(self) -> str | None:
        """The variable that makes this server required, if one is set."""
        return next((v for v in self.require_variables if os.environ.get(v) == "1"), None)

    @property
    def required(self) -> bool:
        return self.required_by is not None

    @property
    def message(self) -> str:
        return f"{self.name} not reachable at {self.shown_url}: {self.error}"

    def line(self, skipped: int | None = None) -> str:
        """The one line the run prints about an unreachable server, at its start (``skipped``
        None) and at its end."""
        if self.required_by:
            return f"{self.message} -- required ({self.required_by}=1): the run fails"
        outcome = "its tests are skipped" if skipped is None else f"{skipped} tests skipped"
        return f"{self.message} -- {outcome} ({self.require_variables[0]}=1 makes that a failure)"


SERVICES = pytest.StashKey[dict[str, Service]]()


def _first_line(error: BaseException) -> str:
    error = getattr(error, "orig", None) or error  # the driver's error, not SQLAlchemy's wrapper
    return (str(error).splitlines() or [type(error).__name__])[0]


def probe_postgres(url: str) -> Service:
    """Connect to the test database at ``url``; when that fails but the server answers on its
    ``postgres`` maintenance database, create the test database (if missing) and try again."""
    target = sa.engine.make_url(url)
    if target.drivername == "postgresql":  # as scenedex's create_engine reads it: psycopg 3
        target = target.set(drivername="postgresql+psycopg")
    service = Service(
        "Postgres",
        url,
        target.render_as_string(hide_password=True),
        ("SCENEDEX_REQUIRE_POSTGRES",),
    )

    def connect(database_url: sa.URL, **options: Any) -> sa.Connection:
        engine = sa.create_engine(
            database_url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5}, **options
        )
        return engine.connect()

    try:
        with connect(target) as connection:
            connection.execute(sa.text("select 1"))
        return service
    except sa.exc.OperationalError as error:
        first_error = error
    try:
        with connect(target.set(database="postgres"), isolation_level="AUTOCOMMIT") as server:
            exists = server.execute(
                sa.text("select 1 from pg_database where datname = :name"), {"name": target.database}
            ).first()
            if not exists:
                name = server.dialect.identifier_preparer.quote(target.database or "")
                try:
                    server.execute(sa.text(f"create database {name}"))
                except sa.exc.ProgrammingError as error:  # created meanwhile by another run
                    if "already exists" not in str(error):
                        raise
    except sa.exc.OperationalError:  # the server does not answer either
        return replace(service, error=_first_line(first_error))
    except sa.exc.SQLAlchemyError as error:
        return replace(service, error=f"cannot create database {target.database}: {_first_line(error)}")
    try:  # again (if the database was there, the first failure may have been passing)
        with connect(target) as connection:
            connection.execute(sa.text("select 1"))
    except sa.exc.OperationalError as error:
        return replace(service, error=_first_line(error))
    if exists:
        return service
    return replace(
        service, note=f"Postgres: created the test database {target.database} at {service.shown_url}"
    )


def probe_redis(url: str) -> Service:
    import redis

    service = Service(
        "Redis",
        url,
        _hide_redis_password(url),
        ("SCENEDEX_REQUIRE_REDIS", "SCENEDEX_REQUIRE_POSTGRES"),  # the latter: CI before it had its own
    )
    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except redis.exceptions.RedisError as error:
        return replace(service, error=_first_line(error))
    return service


def _hide_redis_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


TIER_MARKERS = {"unit": "unit", "integration": "integration", "e2e": "e2e", "browser": "browser"}
"""The tier of every test module, from its folder under ``tests/`` (``-m unit`` selects the fast
tier; ``-m "not e2e and not browser"`` leaves out the slow ones)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier (``TIER_MARKERS``), so that no module goes unmarked; under
    pytest-xdist, put the slowest modules first (``tests.xdist_schedule``)."""
    for item in items:
        parts = item.path.parts
        if "tests" in parts and parts.index("tests") + 1 < len(parts):
            tier = TIER_MARKERS.get(parts[parts.index("tests") + 1])
            if tier is not None:
                item.add_marker(getattr(pytest.mark, tier))
    if XDIST_WORKER:
        xdist_schedule.slowest_first(items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` as ``make test`` runs it: a module per unit but ``tests/clients``
    whole, slowest first (``tests.xdist_schedule``); any other ``--dist`` is xdist's own."""
    if config.getvalue("dist") != "loadfile":
        return None
    return xdist_schedule.make_scheduler(config, log)


def pytest_configure(config: pytest.Config) -> None:
    """Probe Postgres (creating the test database if missing) and Redis, once per run."""
    postgres = probe_postgres(os.environ.get("SCENEDEX_TEST_DATABASE_URL", DEFAULT_PG_URL))
    config.stash[SERVICES] = {"postgres": postgres, "redis": probe_redis(os.environ["SCENEDEX_REDIS_URL"])}


def _start_lines(config: pytest.Config) -> list[str]:
    lines = []
    for service in config.stash.get(SERVICES, {}).values():
        if service.error or service.note:
            lines.append(service.line() if service.error else service.note)
    return lines


def pytest_report_header(config: pytest.Config) -> list[str]:
    return _start_lines(config)


def pytest_sessionstart(session: pytest.Session) -> None:
    """With ``-q`` pytest prints no header: say it here instead."""
    config = session.config
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and (config.option.verbose < 0 or config.option.no_header):
        for line in _start_lines(config):
            reporter.write_line(line, yellow=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A required server that is unreachable fails the run, even if no selected test needs it."""
    services = session.config.stash.get(SERVICES, {}).values()
    if exitstatus == pytest.ExitCode.OK and any(s.error and s.required for s in services):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(wrapper=True, tryfirst=True)  # around pytest's own summary: the line comes last
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> Iterator[None]:
    result = yield
    for service in config.stash.get(SERVICES, {}).values():
        if service.error:
            skipped = sum(
                1
                for report in terminalreporter.stats.get("skipped", [])
                if isinstance(report.longrepr, tuple) and service.message in str(report.longrepr[2])
            )
            terminalreporter.write_line(
                service.line(skipped), red=service.required, yellow=not service.required
            )
    return result


CI_SKIPS_ALLOWED = ("OPENSEARCH_URL is not set",)
"""Skip reasons that stay skips under ``SCENEDEX_CI=1``: the real-cluster OpenSearch tests (no
OpenSearch server can run on these machines, so kNN against a real cluster is never checked in
CI here; the bodies are validated against the API specification instead)."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Under ``SCENEDEX_CI=1`` (set by ``.ci/run``) a skip is a failure with its reason: missing
    media, osmem-server, packaged models or an optional import must not make coverage vanish
    unseen. Only ``CI_SKIPS_ALLOWED`` reasons still skip (and expected failures stay as they are)."""
    report = yield
    if os.environ.get("SCENEDEX_CI") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not any(allowed in reason for allowed in CI_SKIPS_ALLOWED):
            report.outcome = "failed"
            report.longrepr = f"skipped under SCENEDEX_CI=1 (a skip is a failure in CI): {reason}"
    return report


def _service(config: pytest.Config, key: str) -> str:
    service = config.stash[SERVICES][key]
    if service.error:
        if service.required:
            pytest.fail(service.message, pytrace=False)
        pytest.skip(service.message)
    return service.url


def run_database_name(base: str, worker: str, module: str | None) -> str:
    """The name of a database the run makes on the test server: ``base`` (the database of
    SCENEDEX_TEST_DATABASE_URL), ``_`` + the xdist ``worker`` if any, then ``_template`` for the
    migrated template (``module`` None) or the module's own: a digest of its node id (unique in
    the run) and the file's name, cut to Postgres's 63 bytes (the digest kept)."""
    prefix = f"{base}_{worker}" if worker else base
    if len(prefix) > 48:
        raise pytest.UsageError(f"test database name {prefix!r} too long (at most 48 characters)")
    if module is None:
        return f"{prefix}_template"
    digest = hashlib.sha256(module.encode()).hexdigest()[:8]
    stem = Path(module).stem.removeprefix("test_").lower()
    return f"{prefix}_{digest}_{''.join(c if c.isalnum() else '_' for c in stem)}"[:63]


class PostgresServer:
    """The test server (SCENEDEX_TEST_DATABASE_URL's), to create and drop the run's databases
    (AUTOCOMMIT on its ``postgres`` maintenance database, no pool)."""

    def __init__(self, url: str) -> None:
        self.url = sa.engine.make_url(url)
        if self.url.drivername == "postgresql":  # as scenedex's create_engine reads it: psycopg 3
            self.url = self.url.set(drivername="postgresql+psycopg")
        self.admin = sa.create_engine(
            self.url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )

    def database_url(self, name: str) -> str:
        """The URL of database ``name`` on this server, password included (subprocesses get it)."""
        return self.url.set(database=name).render_as_string(hide_password=False)

    def create(self, name: str, template: str | None = None) -> str:
        """(Re)create database ``name``, empty or a copy of ``template`` (nobody may be connected
        to the template meanwhile); returns its URL. One left by a killed run is dropped first."""
        quote = self.admin.dialect.identifier_preparer.quote
        self.drop(name)
        with self.admin.connect() as connection:
            copy = f" template {quote(template)}" if template else ""
            connection.execute(sa.text(f"create database {quote(name)}{copy}"))
        return self.database_url(name)

    def drop(self, name: str) -> None:
        """Drop database ``name`` if it exists, ending its sessions (``WITH (FORCE)``)."""
        quote = self.admin.dialect.identifier_preparer.quote
        with self.admin.connect() as connection:
            connection.execute(sa.text(f"drop database if exists {quote(name)} with (force)"))


@dataclass(frozen=True)
class PostgresTemplate:
    server: PostgresServer
    name: str


@pytest.fixture(scope="session")
def postgres_template(pytestconfig: pytest.Config) -> Iterator[PostgresTemplate]:
    """A database migrated to head once per run (per xdist worker), the template every module's
    database is cloned from; dropped at the end of the run. Skipped when the server is
    unreachable, unless SCENEDEX_REQUIRE_POSTGRES=1 (CI), which makes that a failure."""
    server = PostgresServer(_service(pytestconfig, "postgres"))
    name = run_database_name(server.url.database or "", XDIST_WORKER, None)
    engine = create_engine(server.create(name))
    try:
        upgrade(engine)
    finally:
        engine.dispose()  # no session may stay on a template
    yield PostgresTemplate(server, name)
    server.drop(name)
    server.admin.dispose()


@pytest.fixture(scope="module")
def postgres_url(request: pytest.FixtureRequest, postgres_template: PostgresTemplate) -> Iterator[str]:
    """URL of this module's own Postgres database, migrated to head (a copy of
    ``postgres_template``), which its tests may wipe; dropped at the module's end (its sessions
    ended). Subprocesses the module starts get this URL."""
    server = postgres_template.server
    base = server.url.database or ""
    name = run_database_name(base, XDIST_WORKER, request.node.nodeid)
    yield server.create(name, template=postgres_template.name)
    server.drop(name)


@pytest.fixture(scope="session")
def redis_url(pytestconfig: pytest.Config) -> str:
    """The tests' Redis (SCENEDEX_REDIS_URL, database 15; under xdist the worker's,
    ``worker_redis_url``); skipped when unreachable, unless SCENEDEX_REQUIRE_REDIS=1 (or
    SCENEDEX_REQUIRE_POSTGRES=1, as CI set it before) fails them."""
    return _service(pytestconfig, "redis")


def _broker_address(broker: Any) -> str:
    """Where a dramatiq broker sends ("host:port/db" of a RedisBroker, else its class)."""
    client = getattr(broker, "client", None)
    if client is None:
        return type(broker).__name__
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db')}"


@pytest.fixture(scope="session", autouse=True)
def tests_broker() -> Any:
    """dramatiq's global broker of this test process, on the tests' Redis (SCENEDEX_REDIS_URL:
    the xdist worker's database), installed before the first test. The first broker a process
    installs stays, and the actors are bound to it when first imported: without this, whichever
    test built the first runtime (with a stack's private Redis, or a CLI call's environment)
    would decide where every later in-process runtime sends, and the tests after it would find
    their queues empty. Which test came first changes with pytest-xdist's scheduling."""

    from scenedex.settings import Settings
    from scenedex.tasks.broker import ensure_broker

    return ensure_broker(Settings(_env_file=None, redis_url=os.environ["SCENEDEX_REDIS_URL"]))  # type: ignore[call-arg]


@pytest.fixture(autouse=True)
def _broker_kept(tests_broker: Any) -> Iterator[None]:
    """Fail a test that left another global broker (or an actor bound to one): every later
    in-process runtime would send there. The tests' broker is put back either way."""
    import dramatiq

    yield
    current = dramatiq.broker.global_broker
    actors = [current.get_actor(n) for n in current.get_declared_actors()] if current else []
    strays = sorted({_broker_address(a.broker) for a in actors if a.broker is not tests_broker})
    if current is not tests_broker or strays:
        dramatiq.set_broker(tests_broker)
        for actor in actors:
            actor.broker = tests_broker
        pytest.fail(
            f"the test left dramatiq's global broker on {_broker_address(current)} "
            f"(actors on {strays or 'it'}), not the tests' {_broker_address(tests_broker)}",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def postgres_engine(postgres_url: str) -> Iterator[sa.Engine]:
    """An engine on this module's own migrated database (``postgres_url``)."""
    engine = create_engine(postgres_url)
    yield engine
    engine.dispose()


def truncate_all(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'scenedex.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def sql_engine(request: pytest.FixtureRequest) -> sa.Engine:
    """A migrated, empty database: SQLite file or the module's Postgres database (emptied)."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_engine")
    engine = request.getfixturevalue("postgres_engine")
    truncate_all(engine)
    return engine


def make_inputs(clip: Any, text: Any, faces: Any, **changes: Any) -> SpecInputs:
    """Spec inputs for the fakes, with the default face sampling of the settings (so a runner
    built here and a worker built from ``Settings()`` share a spec)."""
    settings = FaceSettings()
    sampling = FaceSampling(
        settings.sample_interval_s, settings.max_frames_per_scene, settings.appearance_gap_s
    )
    inputs = SpecInputs(
        clip_model_id=clip.model_id,
        clip_preprocessing=clip.preprocessing_id,
        text_model_id=text.model_id,
        face_model_id=faces.model_id,
        face_detection=faces.detection_id,
        face_sampling=sampling.id,
    )
    return replace(inputs, **changes)


@dataclass
class World:
    """Ports wired for a runner test, plus helpers to add source rows."""

    uow_factory: Any
    blobs: InMemoryBlobStore
    index: Any
    clip: FakeImageEmbedder
    text: FakeTextEmbedder
    faces: FakeFaceEmbedder
    ocr: FakeOcrReader = field(default_factory=FakeOcrReader)

    def runner(
        self,
        batch_size: int = 4,
        *,
        spec: ReprocessSpec | None = None,
        index: Any = None,
        video_frames: Any = None,
        face_clusterer: Any = None,
        face_thumbnail: Any = None,
        **spec_changes: Any,
    ) -> ReprocessRunner:
        """A runner on this world's fakes; ``spec`` (default: the latest for the fakes with
        ``spec_changes``) and ``index`` (default: the world's) may be given; without a
        ``face_clusterer`` it runs no FACE_CLUSTERS step."""
        if spec is None:
            spec = ReprocessSpec.latest(make_inputs(self.clip, self.text, self.faces, **spec_changes))
        return ReprocessRunner(
            uow_factory=self.uow_factory,
            blobs=self.blobs,
            image_embedder=self.clip,
            text_embedder=self.text,
            face_embedder=self.faces,
            search_index=self.index if index is None else index,
            spec=spec,
            batch_size=batch_size,
            video_frames=video_frames,
            face_clusterer=face_clusterer,
            face_thumbnail=face_thumbnail,
            ocr_reader=self.ocr,
        )

    def add_video(
        self,
        owner_id: uuid.UUID,
        keyframes: Sequence[bytes | None],
        transcripts: Sequence[str] | None = None,
    ) -> tuple[Video, list[Scene]]:
        """A video with one scene per keyframe (None: the keyframe blob is never written)."""
        video = Video(
            id=new_id(), owner_id=owner_id, title="t", source_uri="memory://v", duration_s=len(keyframes)
        )
        scenes = []
        for i, data in enumerate(keyframes):
            key = keyframe_key(owner_id, video.id, i)
            uri = self.blobs.write(key, data) if data is not None else f"memory://blobs/{key}"
            scenes.append(
                Scene(
                    id=new_id(),
                    video_id=video.id,
                    owner_id=owner_id,
                    ordinal=i,
                    start_s=float(i),
                    end_s=float(i + 1),
                    keyframe_uri=uri,
                    keyframe_sha256=hashlib.sha256(data or b"").hexdigest(),
                    transcript=(transcripts[i] if transcripts else f"scene {i} words"),
                    summary="",
                )
            )
        with self.uow_factory() as uow:
            uow.videos.add(video)
            uow.scenes.add_many(scenes)
            uow.commit()
        return video, scenes

    def add_person(self, owner_id: uuid.UUID, name: str, photos: Sequence[bytes]) -> Person:
        person = Person(id=new_id(), owner_id=owner_id, name=name)
        with self.uow_factory() as uow:
            uow.persons.add(person)
            for data in photos:
                photo_id = new_id()
                uri = self.blobs.write(f"owners/{owner_id}/persons/{person.id}/{photo_id}.png", data)
                uow.persons.add_photo(
                    PersonPhoto(photo_id, person.id, owner_id, uri, hashlib.sha256(data).hexdigest())
                )
            uow.commit()
        return person


def make_world(request: pytest.FixtureRequest, backend: str) -> World:
    """The same ports over three backends: in-memory fakes ("memory"), "sqlite" and "postgres".
    The runner scenarios' ``world`` fixtures use it: tests/unit/test_runner_contract.py over the
    fakes, tests/integration/test_runner_contract.py over both databases."""
    if backend == "memory":
        uow_factory: Any = InMemoryStore()
        index: Any = InMemorySearchIndex()
    else:
        if backend == "sqlite":
            engine = request.getfixturevalue("sqlite_engine")
        else:
            engine = request.getfixturevalue("postgres_engine")
            truncate_all(engine)
        uow_factory = SqlUnitOfWorkFactory(engine)
        index = TableSearchIndex(engine)
    return World(
        uow_factory, InMemoryBlobStore(), index, FakeImageEmbedder(), FakeTextEmbedder(), FakeFaceEmbedder()
    )


@pytest.fixture
def harness(postgres_engine: sa.Engine, redis_url: str) -> Iterator[Any]:
    """A ``tests.job_harness.Harness`` on the module's Postgres database and the tests' Redis
    database, both wiped."""
    from tests.job_harness import Harness

    truncate_all(postgres_engine)
    h = Harness(postgres_engine, redis_url)
    h.redis.flushdb()
    yield h
    h.close()
    h.redis.flushdb()


def cli_json(*args: str, timeout: float = 300, **env_vars: str) -> Any:
    """Run ``scenedex *args --json`` in a subprocess, offline and with the tiny random CLIP
    (``tests.worker_processes.TINY_CLIP``; ``env_vars`` may replace it); assert exit 0 and return
    the parsed JSON of stdout."""
    from tests.worker_processes import TINY_CLIP

    env = {**os.environ, **TINY_CLIP, "HF_HUB_OFFLINE": "1", **env_vars}
    result = subprocess.run(
        [sys.executable, "-m", "scenedex.scripts.cli", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr[-3000:])
    return json.loads(result.stdout)
