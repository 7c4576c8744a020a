"""The deployment files, checked without a Docker engine: the compose files are valid Compose
Specification documents and name only what exists (build targets, ``scenedex`` subcommands and
their options, settings); the images and ``make install`` install the same lock file; the
Dockerfile bakes no secrets and its build context holds what it copies; ``.env.example`` is the
one generated from the settings model."""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest
import typer
import yaml
from pydantic import BaseModel

from scenedex.api.routes.health import router as health_router
from scenedex.scripts import env_example
from scenedex.scripts.cli import app
from scenedex.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_SCHEMA = ROOT / ".." / "shared" / "schemas" / "compose-spec.json"
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.reprocess.yml")
ENTRYPOINT = "scenedex"
THIRD_PARTY_IMAGES = {
    # image (without tag) -> the environment variables it reads
    "postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"},
    "redis": set(),
    "opensearchproject/opensearch": {
        "discovery.type",
        "bootstrap.memory_lock",
        "DISABLE_SECURITY_PLUGIN",
        "DISABLE_INSTALL_DEMO_CONFIG",
        "OPENSEARCH_JAVA_OPTS",
    },
}
# Variables other than SCENEDEX_* that the scenedex images read, and who reads them.
OTHER_VARIABLES = {
    "HF_HOME": "huggingface_hub: the model cache (a volume)",
    "HF_HUB_OFFLINE": "huggingface_hub: never download",
    "TORCH_HOME": "torch hub cache",
    "HEALTHCHECK_URL": "the Dockerfile's HEALTHCHECK",
    "PATH": "the virtualenv first",
    "PYTHONUNBUFFERED": "python",
    "PYTHONDONTWRITEBYTECODE": "python",
    "PIP_DISABLE_PIP_VERSION_CHECK": "pip",
    "DEBIAN_FRONTEND": "apt-get",
    "NVIDIA_VISIBLE_DEVICES": "NVIDIA container toolkit",
    "NVIDIA_DRIVER_CAPABILITIES": "NVIDIA container toolkit",
    "POSTGRES_PASSWORD": "the postgres image (and the database URL built from it)",
}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
PLACEHOLDER = "placeholder-0123456789abcdef0123456789abcdef"


# --- compose -----------------------------------------------------------------------------------


def load_compose(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def interpolate(value: str) -> str:
    """Compose interpolation with a placeholder for required (``:?``) or unset variables."""

    def replace(match: re.Match[str]) -> str:
        return match.group(3) if match.group(2) in ("-", ":-") else PLACEHOLDER

    return INTERPOLATION.sub(replace, value)


def command(service: dict[str, Any]) -> list[str]:
    value = service["command"]
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def all_services() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for file in COMPOSE_FILES:
        for name, service in load_compose(file)["services"].items():
            yield file, name, service


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_compose_file_is_valid_compose_specification(file: str) -> None:
    if not COMPOSE_SCHEMA.is_file():
        pytest.skip(
            f"{COMPOSE_SCHEMA.resolve()} not found: the Compose Specification schema comes with the "
            "shared/ checkout beside the repository"
        )
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(load_compose(file))
    ]
    assert errors == []


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_compose_builds_name_dockerfile_targets(file: str) -> None:
    stages = dockerfile_stages()
    image_targets: dict[str, str] = {}
    for name, service in load_compose(file)["services"].items():
        if "build" not in service:
            image, _, tag = service["image"].rpartition(":")
            assert image in THIRD_PARTY_IMAGES and tag not in ("", "latest"), (name, service["image"])
            continue
        build = service["build"]
        context = (ROOT / build["context"]).resolve()
        assert context == ROOT, name
        assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        assert build["target"] in {s.name for s in stages}, name
        # one image name per target, so services sharing an image share a build
        assert image_targets.setdefault(service["image"], build["target"]) == build["target"], name


def _resolve_cli(args: list[str], where: str = "") -> tuple[list[str], Any]:
    """Parse ``scenedex ARGS`` with the real typer app; the subcommand path and its parameters."""
    current: Any = typer.main.get_command(app)
    path: list[str] = []
    while hasattr(current, "commands"):
        assert args and args[0] in current.commands, f"{where}: no command {' '.join([*path, *args[:1]])!r}"
        path.append(args[0])
        current, args = current.commands[args[0]], args[1:]
    try:
        context = current.make_context(" ".join([ENTRYPOINT, *path]), list(args))
    except Exception as error:  # typer's usage errors: unknown option, missing value...
        pytest.fail(f"{where}: scenedex {' '.join([*path, *args])}: {error}")
    return path, context.params


def test_every_scenedex_command_exists_with_its_options() -> None:
    stages = {stage.name: stage for stage in dockerfile_stages()}
    commands = [(f"{file}:{name}", command(s)) for file, name, s in all_services() if "build" in s]
    commands += [(f"Dockerfile:{t}", json.loads(stages[t].last("CMD"))) for t in ("cpu", "gpu")]
    seen = set()
    for where, args in commands:
        path, _ = _resolve_cli(args, where)
        seen.add(" ".join(path))
    assert {"db upgrade", "embed-server", "worker", "api", "scheduler", "reprocess"} <= seen


def test_entrypoint_is_the_scenedex_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert ENTRYPOINT in scripts
    for target in ("cpu", "gpu"):
        assert json.loads(stage(target).last("ENTRYPOINT")) == [ENTRYPOINT]


def test_workers_consume_their_queues_and_gpu_services_reserve_a_gpu() -> None:
    services = load_compose("docker-compose.yml")["services"]
    queues = {name: _resolve_cli(command(services[name]))[1]["queues"] for name in ("worker", "worker-cpu")}
    assert queues == {"worker": ["embeddings", "reprocessing"], "worker-cpu": ["reprocessing", "webhooks"]}
    for name in ("worker", "embed-server"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert any("gpu" in d["capabilities"] for d in devices), name
        assert services[name]["build"]["target"] == "gpu", name
    assert environment(services["worker"])["SCENEDEX_EMBEDDER__BACKEND"] == "local"
    for name in ("worker-cpu", "api"):
        env = environment(services[name])
        assert env["SCENEDEX_EMBEDDER__BACKEND"] == "http", name
        assert urlparse(env["SCENEDEX_EMBEDDER__URL"]).hostname == "embed-server", name
    redis = " ".join(command(services["redis"]))
    for flag in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert flag in redis


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_services_start_in_order_on_health(file: str) -> None:
    services = load_compose(file)["services"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            target = services[dependency]
            if target.get("restart") == "no":  # a one-shot job
                assert condition["condition"] == "service_completed_successfully", (name, dependency)
            else:
                assert condition["condition"] == "service_healthy", (name, dependency)
                assert not target.get("healthcheck", {}).get("disable"), dependency
                assert target["healthcheck"]["test"], dependency
        env = environment(service) if "build" in service else {}
        if file == "docker-compose.yml" and "SCENEDEX_DATABASE_URL" in env and name != "migrate":
            assert "migrate" in service.get("depends_on", {}), name
        if env.get("SCENEDEX_EMBEDDER__BACKEND") == "http":  # the service's model ids are in the spec
            assert "embed-server" in service.get("depends_on", {}), name


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_long_running_services_come_back_when_they_exit(file: str) -> None:
    """``restart: unless-stopped`` on every service but the one-shot jobs: a worker's supervisor
    restarts dramatiq after a worker process died, and exits only for what a restart in place
    cannot fix (a model that cannot be loaded, exit 78; dramatiq's master killed), which the
    container's restart starts afresh."""
    services = load_compose(file)["services"]
    one_shots = {name for name, service in services.items() if service.get("restart") == "no"}
    assert one_shots <= {"migrate", "models", "cli-reprocess"}, one_shots
    workers = {
        name for name, service in services.items() if "build" in service and command(service)[0] == "worker"
    }
    assert workers, file
    for name in set(services) - one_shots:
        assert services[name].get("restart") == "unless-stopped", (file, name)
        if name in workers:  # the supervisor passes SIGTERM on; running messages get the shutdown timeout
            assert services[name]["stop_grace_period"] == "30s", (file, name)


def test_http_health_checks_ask_the_real_endpoints() -> None:
    assert "/health" in {route.path for route in health_router.routes}
    ports = {"api": ("SCENEDEX_API__PORT", "/health"), "embed-server": ("SCENEDEX_EMBED__PORT", "/health")}
    for file, name, service in all_services():
        if name not in ports:
            continue
        variable, path = ports[name]
        url = urlparse(re.search(r"http://[^'\" ]+", " ".join(service["healthcheck"]["test"])).group(0))
        port = environment(service)[variable]
        assert (url.path, str(url.port)) == (path, port), (file, name)
        assert any(str(p).endswith(f":{port}") for p in service.get("ports", [])), (file, name)


def _setting_exists(variable: str) -> bool:
    parts = variable.removeprefix("SCENEDEX_").lower().split("__")
    fields = Settings.model_fields
    if parts[0] not in fields:
        return False
    if len(parts) == 1:
        return True
    group = fields[parts[0]].annotation
    return (
        len(parts) == 2
        and isinstance(group, type)
        and issubclass(group, BaseModel)
        and parts[1] in group.model_fields
    )


def test_every_variable_named_exists() -> None:
    named: list[tuple[str, str]] = []
    for file in COMPOSE_FILES:
        named += [(file, m.group(1)) for m in INTERPOLATION.finditer((ROOT / file).read_text())]
        for name, service in load_compose(file)["services"].items():
            env = environment(service)
            if "build" in service:
                named += [(f"{file}:{name}", variable) for variable in env]
            else:
                image = service["image"].rpartition(":")[0]
                assert set(env) <= THIRD_PARTY_IMAGES[image], (name, set(env) - THIRD_PARTY_IMAGES[image])
    for each in dockerfile_stages():
        named += [(f"Dockerfile:{each.name}", v) for rest in each.all("ENV") for v in env_names(rest)]
    unknown = [
        (where, variable)
        for where, variable in named
        if not (
            _setting_exists(variable) if variable.startswith("SCENEDEX_") else variable in OTHER_VARIABLES
        )
    ]
    assert unknown == []


def test_compose_settings_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    for file, name, service in all_services():
        if "build" not in service:
            continue
        for variable in [v for v in os.environ if v.startswith("SCENEDEX_")]:
            monkeypatch.delenv(variable)
        for variable, value in environment(service).items():
            if variable.startswith("SCENEDEX_"):
                monkeypatch.setenv(variable, interpolate(value))
        try:
            Settings(_env_file=None)  # type: ignore[call-arg]
        except Exception as error:
            pytest.fail(f"{file}:{name}: {error}")


def test_one_model_configuration_everywhere() -> None:
    """Device and precision explicit, the same in every scenedex service of both files: the step
    fingerprints derive from them, and workers that disagree mark each other's records stale."""
    configurations = {}
    for file, name, service in all_services():
        if "build" in service and command(service) != ["db", "upgrade"]:  # migrations load no model
            env = environment(service)
            configurations[f"{file}:{name}"] = {
                k: v
                for k, v in env.items()
                if k.startswith(("SCENEDEX_CLIP__", "SCENEDEX_TEXT__", "SCENEDEX_FACES__"))
            }
    reference = configurations["docker-compose.yml:embed-server"]
    assert reference["SCENEDEX_CLIP__PRECISION"] != "auto" and reference["SCENEDEX_TEXT__PRECISION"] != "auto"
    assert {where: c for where, c in configurations.items() if c != reference} == {}


# --- Dockerfile --------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [rest for name, rest in self.instructions if name == instruction]

    def last(self, instruction: str) -> str:
        return self.all(instruction)[-1]


def dockerfile_stages() -> list[Stage]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)\s+AS\s+(\S+)", rest.strip(), re.IGNORECASE)
            assert match, f"every stage is named: FROM {rest}"
            stages.append(Stage(match.group(2), match.group(1)))
        elif stages:
            stages[-1].instructions.append((instruction.upper(), " ".join(rest.split())))
    return stages


def stage(name: str) -> Stage:
    return next(s for s in dockerfile_stages() if s.name == name)


def env_names(rest: str) -> list[str]:
    return [item.split("=", 1)[0] for item in shlex.split(rest)]


def makefile_locks() -> set[str]:
    """The lock files ``make install`` installs, with those they include (``-r``)."""
    recipe = re.search(r"^install:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert recipe, "Makefile has an install target"
    assert re.search(r"pip install --no-deps -e \.", recipe.group(1)), (
        "then the project, without dependencies"
    )
    pending = re.findall(r"pip install (?:-\S+ )*-r (\S+)", recipe.group(1))
    locks: set[str] = set()
    while pending:
        lock = pending.pop()
        if lock not in locks:
            locks.add(lock)
            pending += re.findall(r"^-r\s+(\S+)", (ROOT / lock).read_text(), re.MULTILINE)
    return locks


def dockerfile_locks(each: Stage) -> set[str]:
    """Files of the build context that the stage installs with ``pip install -r``."""
    copied = {}
    for rest in each.all("COPY"):
        if not rest.startswith("--from"):
            *sources, destination = shlex.split(rest)
            if len(sources) == 1:
                copied[destination] = sources[0]
    installed = {m for rest in each.all("RUN") for m in re.findall(r"pip install (?:-\S+ )*-r (\S+)", rest)}
    return {copied.get(path, path) for path in installed}


def test_images_install_the_lock_file_make_install_uses() -> None:
    stages = {s.name: s for s in dockerfile_stages()}
    locks = makefile_locks()
    assert locks >= {"requirements.lock", "requirements-dev.lock"}
    for target in ("cpu", "gpu"):
        (venv_from,) = [rest.split()[0].removeprefix("--from=") for rest in stages[target].all("COPY")]
        build = stages[venv_from]
        assert dockerfile_locks(build) == {"requirements.lock"} <= locks, target
        assert any("pip install --no-cache-dir --no-deps" in rest for rest in build.all("RUN")), target


def lock_pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#") or line.startswith("-r "):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line.strip())
        assert match, f"{name}: not a pin: {line!r}"
        pins[normalize(match.group(1))] = match.group(2)
    return pins


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_lock_files_pin_every_dependency_once() -> None:
    runtime, dev = lock_pins("requirements.lock"), lock_pins("requirements-dev.lock")
    assert set(runtime) & set(dev) == set(), "a package pinned in both lock files"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        "runtime": project["dependencies"] + project["optional-dependencies"]["ml"],
        "dev": project["optional-dependencies"]["dev"],
    }
    pinned = {"runtime": set(runtime), "dev": set(runtime) | set(dev)}
    for group, requirements in declared.items():
        names = {normalize(re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0]) for r in requirements}
        assert names - {"scenedex"} <= pinned[group], (group, names - pinned[group])
    # PyPI's CUDA build of torch (it runs on CPU too), never a CPU-only local version (+cpu)
    assert "+" not in runtime["torch"] and "nvidia-cudnn-cu13" in runtime


def test_dockerfile_runs_as_non_root_with_a_health_check_and_no_secret() -> None:
    for target in ("cpu", "gpu"):
        each = stage(target)
        assert each.last("USER") not in ("root", "0"), target
        assert "CMD" in each.last("HEALTHCHECK"), target
        assert "HEALTHCHECK_URL" in {n for rest in each.all("ENV") for n in env_names(rest)}, target
    names = [n for each in dockerfile_stages() for rest in each.all("ENV") for n in env_names(rest)]
    names += [rest.split("=")[0] for each in dockerfile_stages() for rest in each.all("ARG")]
    assert [n for n in names if re.search(r"SECRET|PASSWORD|TOKEN|_KEY", n)] == []


def _glob(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: ``*`` and ``?`` stay within a path element, ``**/``
    matches any number of directories."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern[i] in "*?":
            regex, i = regex + ("[^/]*" if pattern[i] == "*" else "[^/]"), i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            regex, i = regex + pattern[i : end + 1], end + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.compile(regex + r"\Z")


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins, ``!`` re-includes, and a
    pattern matching a directory covers everything under it."""
    excluded = False
    parts = path.split("/")
    for raw in patterns:
        pattern = _glob(raw.removeprefix("!").rstrip("/"))
        if any(pattern.match("/".join(parts[: i + 1])) for i in range(len(parts))):
            excluded = not raw.startswith("!")
    return excluded


def test_build_context_holds_what_the_dockerfile_copies_and_no_secret() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        source
        for each in dockerfile_stages()
        for rest in each.all("COPY")
        if not rest.startswith("--from")
        for source in shlex.split(rest)[:-1]
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _dockerignored(source.rstrip("/"), patterns), source
    for private in (
        ".env",
        ".venv/bin/python",
        ".git/config",
        "scenedex-data/scenedex.db",
        "src/x/__pycache__/a.pyc",
    ):
        assert _dockerignored(private, patterns), private


# --- .env.example ------------------------------------------------------------------------------


def test_env_example_is_generated_from_the_settings() -> None:
    checked_in = (ROOT / ".env.example").read_text()
    assert checked_in == env_example.render(), (
        "regenerate: python -m scenedex.scripts.env_example > .env.example"
    )


def test_env_example_lists_every_setting_and_reads_back_as_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^(?:# )?(SCENEDEX_[A-Z0-9_]+)=", text, re.MULTILINE))
    expected = set()
    for name, info in Settings.model_fields.items():
        group = info.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            expected |= {f"SCENEDEX_{name}__{sub}".upper() for sub in group.model_fields}
        else:
            expected.add(f"SCENEDEX_{name}".upper())
    assert listed == expected
    for variable in [v for v in os.environ if v.startswith("SCENEDEX_")]:
        monkeypatch.delenv(variable)
    from_file = Settings(_env_file=ROOT / ".env.example")  # type: ignore[call-arg]
    assert from_file.model_dump() == Settings(_env_file=None).model_dump()  # type: ignore[call-arg]
