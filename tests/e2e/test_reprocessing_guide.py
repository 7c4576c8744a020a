"""REPROCESSING_GUIDE.md, checked: every command in it is exercised here.

- The ```bash blocks of its "Quick start" section run for real, in order, as one bash script
  (``set -euo pipefail``) in a temporary folder, against the module's own Postgres database (emptied,
  schema dropped, so the guide's ``scenedex db upgrade`` creates it) and the tests' Redis
  database, with the real models (CLIP explicitly untrained) on the real media; then the
  database must hold what the guide says: the queued job succeeded, every record is there.
- Every other ``scenedex ...`` command line (fenced blocks and inline code) is parsed by the
  real typer CLI: the subcommand exists, every option exists and takes what it is given, the
  required arguments are there. ``[...]`` marks optional parts; ``$VAR`` placeholders are fine.
- Every ``curl`` against ``$API`` names a route of ``scenedex.api.create_app`` with that method;
  its query parameters exist and its JSON body validates against the route's body model.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import sqlalchemy as sa
import typer.main
from pydantic import BaseModel

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.engine import create_engine
from scenedex.domain.model import TEXT_CHANNELS
from scenedex.scripts.cli import app as cli_app
from tests.conftest import REAL_MEDIA

pytestmark = pytest.mark.e2e

GUIDE = Path(__file__).resolve().parents[2] / "REPROCESSING_GUIDE.md"
QUICK_START_TIMEOUT_S = 300
FENCE = re.compile(
    r"^[ \t]*```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL
)
SHELL_OPERATORS = set("();<>|&")
PLACEHOLDER = re.compile(r"\$\{?([A-Z][A-Z0-9_]*)\}?")


# ----------------------------------------------------------------------------- the guide


def guide_text() -> str:
    return GUIDE.read_text(encoding="utf-8")


def split_sections(text: str) -> list[tuple[str, str]]:
    """``(heading, body)`` of every ``## `` section (the text before the first: heading "")."""
    parts = re.split(r"^## +(.*)$", text, flags=re.MULTILINE)
    return [("", parts[0]), *zip(parts[1::2], parts[2::2], strict=True)]


def is_quick_start(heading: str) -> bool:
    return "quick start" in heading.lower()


def quick_start_blocks(text: str) -> list[str]:
    sections = [body for heading, body in split_sections(text) if is_quick_start(heading)]
    assert len(sections) == 1, "the guide needs exactly one '## ... Quick start' section"
    return [m["body"] for m in FENCE.finditer(sections[0]) if m["lang"] == "bash"]


def logical_lines(block: str) -> Iterator[str]:
    """Lines of a shell block, with backslash continuations and quotes spanning lines joined."""
    pending = ""
    for line in block.replace("\\\n", " ").splitlines():
        pending = f"{pending}\n{line}" if pending else line
        try:
            shell_tokens(pending)
        except ValueError:  # no closing quotation yet
            continue
        if pending.strip():
            yield pending
        pending = ""
    assert not pending, f"unterminated shell line: {pending!r}"


def command_lines(text: str) -> list[tuple[str, bool]]:
    """``(line, inline)``: every shell line of a fenced block, and every inline code span that
    is a command (``inline``: it may only name a command, as in "`scenedex ingest` enqueues")."""
    lines = [(line, False) for m in FENCE.finditer(text) for line in logical_lines(m["body"])]
    prose = FENCE.sub("", text)
    for span in re.findall(r"`([^`]+)`", prose):
        span = " ".join(span.split())
        if re.match(r"^([A-Z_][A-Z0-9_]*=\S*\s+)*(scenedex|curl)\s", span):
            lines.append((span, True))
    return lines


def shell_tokens(line: str) -> list[str]:
    """Words and operators of a shell line (comments dropped, quotes removed, ``$VAR`` kept)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def invocations(line: str, program: str) -> list[list[str]]:
    """The arguments of every ``program`` command in ``line``, up to the next operator (the
    file descriptor of a redirection such as ``2>&1`` is not an argument)."""
    tokens = shell_tokens(re.sub(r"(?<=\s)\d+(?=[<>])", "", line))
    found = []
    for i, token in enumerate(tokens):
        if token != program and not token.endswith(f"/{program}"):
            continue
        args: list[str] = []
        for j in range(i + 1, len(tokens)):
            if set(tokens[j]) <= SHELL_OPERATORS:
                break
            args.append(tokens[j])
        found.append(args)
    return found


def scenedex_commands() -> list[tuple[str, bool]]:
    """``(command, inline)`` of every ``scenedex`` command line (strict when any occurrence is
    in a fenced block). ``docker compose ... run --rm cli-reprocess ARGS`` runs ``scenedex ARGS``
    (the image's entrypoint); without arguments it runs the service's own command."""
    inline_only: dict[str, bool] = {}
    for line, inline in command_lines(guide_text()):
        compose = [args for args in invocations(line, "cli-reprocess") if args]
        for args in invocations(line, "scenedex") + compose:
            command = shlex.join(["scenedex", *args])
            inline_only[command] = inline_only.get(command, True) and inline
    return sorted(inline_only.items())


@dataclass(frozen=True)
class CurlRequest:
    method: str
    path: str
    query: str
    body: str | None
    line: str


def curl_requests() -> list[CurlRequest]:
    """Every curl call to ``$API`` in the guide (the worker's metrics are not the API's)."""
    requests = []
    for line, _ in command_lines(guide_text()):
        for args in invocations(line, "curl"):
            method, body, urls = None, None, []
            words = iter(args)
            for word in words:
                if word in ("-X", "--request"):
                    method = next(words)
                elif word in ("-H", "--header", "-o", "--output", "-w", "--write-out"):
                    next(words)
                elif word in ("-d", "--data", "--data-raw", "--json"):
                    body = next(words)
                elif not word.startswith("-"):
                    urls.append(word)
            for url in urls:
                if not re.match(r"^\$\{?API\}?/", url):
                    continue
                path, _, query = PLACEHOLDER.sub(r"$\1", url).removeprefix("$API").partition("?")
                requests.append(CurlRequest(method or ("POST" if body else "GET"), path, query, body, line))
    return requests


# ----------------------------------------------------------------------------- (a) quick start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def drop_schema(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        t.metadata.drop_all(connection)
        connection.execute(sa.text("drop table if exists alembic_version"))


def kill_group(pgid: int) -> None:
    """End what is left of the script's process group (a worker it left running when it
    failed): the group is the script's own session, so nothing else is touched."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        time.sleep(3)


@pytest.mark.integration
@pytest.mark.models
@pytest.mark.skipif(not REAL_MEDIA.is_dir(), reason=f"real sample media not found at {REAL_MEDIA}")
def test_quick_start_runs_and_leaves_a_succeeded_job_and_every_record(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    import redis

    blocks = quick_start_blocks(guide_text())
    assert len(blocks) >= 3
    assert shutil.which("jq"), "the quick start uses jq (apt-get install jq)"
    engine = create_engine(postgres_url)
    broker = redis.Redis.from_url(redis_url)
    drop_schema(engine)
    broker.flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCENEDEX_", "dramatiq_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        SCENEDEX_DATABASE_URL=postgres_url,
        SCENEDEX_REDIS_URL=redis_url,
        SCENEDEX_WORKER__METRICS_PORT=str(free_port()),
        dramatiq_prom_db=str(tmp_path / "prometheus"),  # not the machine-wide /tmp default
        MEDIA=str(REAL_MEDIA),
    )
    script = tmp_path / "quick_start.sh"
    script.write_text(
        "set -euo pipefail\n"
        + "\n".join(blocks)
        + '\nprintf "OWNER=%s\\nVIDEO=%s\\nJOB=%s\\n" "$OWNER" "$VIDEO" "$JOB" > quick_start.vars\n'
    )
    proc = subprocess.Popen(
        ["bash", str(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=QUICK_START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        output, _ = proc.communicate()
        pytest.fail(f"the quick start did not finish in {QUICK_START_TIMEOUT_S} s:\n{output[-6000:]}")
    finally:
        kill_group(proc.pid)
        broker.flushdb()
    try:
        assert proc.returncode == 0, f"the quick start failed ({proc.returncode}):\n{output[-6000:]}"
        values = dict(line.split("=", 1) for line in (tmp_path / "quick_start.vars").read_text().split())
        owner, video, job = (uuid.UUID(values[name]) for name in ("OWNER", "VIDEO", "JOB"))
        check_final_state(engine, owner, video, job, output)
    finally:
        engine.dispose()


def check_final_state(
    engine: sa.Engine, owner: uuid.UUID, video: uuid.UUID, job_id: uuid.UUID, output: str
) -> None:
    with engine.connect() as connection:
        videos = (
            connection.execute(sa.select(t.videos.c.id).where(t.videos.c.owner_id == owner)).scalars().all()
        )
        scenes = connection.execute(
            sa.select(sa.func.count()).select_from(t.scenes).where(t.scenes.c.owner_id == owner)
        ).scalar_one()
        photos = connection.execute(
            sa.select(sa.func.count()).select_from(t.person_photos).where(t.person_photos.c.owner_id == owner)
        ).scalar_one()
        job = connection.execute(sa.select(t.reprocess_jobs).where(t.reprocess_jobs.c.id == job_id)).one()
        items = connection.execute(
            sa.select(t.reprocess_job_items).where(t.reprocess_job_items.c.job_id == job_id)
        ).all()
        records = {
            step.value: connection.execute(
                sa.select(table.c.spec_version, sa.func.count())
                .where(table.c.owner_id == owner)
                .group_by(table.c.spec_version)
            ).all()
            for step, table in t.RECORD_TABLES.items()
        }
        records["search_documents"] = connection.execute(
            sa.select(t.search_documents.c.spec_version, sa.func.count())
            .where(t.search_documents.c.owner_id == owner)
            .group_by(t.search_documents.c.spec_version)
        ).all()

    assert videos == [video] and scenes >= 1 and photos == 1
    # The queued job: a forced video job from the CLI, run by the worker, succeeded.
    assert (job.status, job.trigger, job.scope, job.video_id, job.force) == (
        "succeeded",
        "cli",
        "video",
        video,
        True,
    )
    by_kind = {item.kind: item for item in items}
    assert sorted(by_kind) == ["persons", "video"] and {i.status for i in items} == {"succeeded"}, items
    video_counts = by_kind["video"].counts
    assert video_counts["scene_clip_embeddings"]["computed"] == scenes
    assert video_counts["search_reindex"]["computed"] == scenes
    assert f"job {job_id} succeeded" in output
    # Every record exists once, all under one spec: the inline run's and the worker's agree.
    expected = {
        "person_photo_embeddings": 1,
        "person_query_embeddings": 1,
        # The guide runs the defaults: OCR on, so a fourth text channel (ocr) and the OCR records.
        "scene_text_embeddings": scenes * (len(TEXT_CHANNELS) + 1),
        "scene_ocr": scenes,
        "scene_clip_embeddings": scenes,
        "scene_person_embeddings": scenes,
        "search_documents": scenes,
    }
    assert records == {name: [(job.spec_version, count)] for name, count in expected.items()}
    assert f"worker ready: spec {job.spec_version}" in output


# ----------------------------------------------------------------------------- (b) CLI lines


def test_the_guide_has_commands_of_every_kind() -> None:
    commands = [command for command, _ in scenedex_commands()]
    for prefix in (
        "reprocess",
        "jobs status",
        "jobs resume",
        "jobs cancel",
        "index verify",
        "index rollback",
    ):
        assert any(c.startswith(f"scenedex {prefix}") for c in commands), prefix
    assert {r.path for r in curl_requests()} >= {
        "/v1/admin/reprocess-embeddings",
        "/v1/admin/reprocess-jobs/$JOB",
    }


@pytest.mark.parametrize(("command", "inline"), scenedex_commands(), ids=[c for c, _ in scenedex_commands()])
def test_scenedex_command_parses(command: str, inline: bool) -> None:
    args = [word.strip("[]") for word in shlex.split(command)[1:]]
    args = [word for word in args if word]
    root = typer.main.get_command(cli_app)
    cmd, ctx, path = root, None, ["scenedex"]
    while hasattr(cmd, "list_commands"):
        assert args, f"{command}: {' '.join(path)} needs a subcommand"
        name = args.pop(0)
        ctx = cmd.make_context(path[-1], [], parent=ctx, resilient_parsing=True)
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"{command}: no such command {' '.join([*path, name])!r}"
        cmd = sub
        path.append(name)
    if "--help" in args or (inline and not args):
        return  # help, or a command named in the prose
    try:
        cmd.make_context(path[-1], args, parent=ctx)
    except Exception as error:  # click's UsageError family, from typer's vendored click
        pytest.fail(f"{command}: {type(error).__name__}: {error}")


# ----------------------------------------------------------------------------- (c) curl paths


@pytest.fixture(scope="module")
def api_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The OpenAPI ``paths`` of the app ``scenedex api`` serves: every route with its methods,
    parameters and body (built offline: no connection, no model)."""
    from scenedex.api import create_app
    from scenedex.settings import ApiSettings, ClipSettings, Settings

    root = tmp_path_factory.mktemp("api")
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{root / 'scenedex.db'}",
        storage_url=str(root / "media"),
        redis_url=os.environ.get("SCENEDEX_REDIS_URL", "redis://127.0.0.1:6379/15"),
        clip=ClipSettings(pretrained="none"),
        api=ApiSettings(jwt_secret="guide-test-secret-of-at-least-32-bytes"),
    )
    paths: dict[str, dict[str, Any]] = create_app(settings).openapi()["paths"]
    return paths


def route_regex(path: str) -> re.Pattern[str]:
    """``/v1/x/{job_id}`` as a pattern matching ``/v1/x/$JOB`` (or a literal id)."""
    return re.compile(
        "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in re.split(r"(\{[^/]+\})", path)) + "$"
    )


def body_model(operation: dict[str, Any]) -> type[BaseModel] | None:
    """The pydantic model of the operation's JSON body (``scenedex.api.schemas`` or the route
    modules, ``scenedex.api.routes.*``), if any."""
    import importlib
    import pkgutil

    from scenedex.api import routes, schemas

    body = operation.get("requestBody")
    if body is None:
        return None
    name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    modules = [schemas] + [
        importlib.import_module(f"{routes.__name__}.{m.name}") for m in pkgutil.iter_modules(routes.__path__)
    ]
    found = [getattr(module, name) for module in modules if isinstance(getattr(module, name, None), type)]
    assert found, f"no model {name} in scenedex.api.schemas or scenedex.api.routes"
    model: type[BaseModel] = found[0]
    return model


def query_names(operation: dict[str, Any]) -> set[str]:
    """The query parameters a URL may name: the declared ones (all scalar: ``GET /v1/search``
    takes ``text`` or ``person_id`` and ``k``)."""
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}


@pytest.mark.parametrize("request_", curl_requests(), ids=lambda r: f"{r.method} {r.path}")
def test_curl_calls_a_route_of_the_api(request_: CurlRequest, api_paths: dict[str, dict[str, Any]]) -> None:
    matches = {path: item for path, item in api_paths.items() if route_regex(path).match(request_.path)}
    assert matches, f"no route for {request_.path} ({request_.line})"
    operations = [
        item[request_.method.lower()] for item in matches.values() if request_.method.lower() in item
    ]
    assert len(operations) == 1, (
        f"{request_.method} {request_.path}: the route takes {[list(m) for m in matches.values()]}"
    )
    operation = operations[0]
    query = query_names(operation)
    for name, _ in parse_qsl(request_.query):
        assert name in query, f"{request_.path}: no query parameter {name!r} (only {sorted(query)})"
    model = body_model(operation)
    if request_.body is None:
        assert model is None or not operation["requestBody"].get("required"), f"{request_.line}: needs a body"
    else:
        assert model is not None, f"{request_.method} {request_.path} takes no body"
        body = model.model_validate_json(PLACEHOLDER.sub(str(uuid.uuid4()), request_.body))
        if hasattr(body, "to_request"):
            body.to_request()  # what the route does next: a scope needs its id (else 422)
