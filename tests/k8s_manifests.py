"""The Kubernetes manifests of ``deploy/k8s`` as the tests see them: each overlay rendered by
``kubectl kustomize`` (no other tool), validated with ``kubernetes-validate`` (core objects, the
schemas of ``KUBERNETES_VERSION``) and with the KEDA and Prometheus-operator schemas of
``deploy/k8s/schemas`` (node), and the invariants ``problems`` checks on them.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("cpu", "gpu")
SCHEMAS = K8S / "schemas"
KUBERNETES_VERSION = "1.32.0"
"""The Kubernetes API the objects are validated against: kubectl's own minor (v1.32 here) and the
oldest with every field the manifests use (``preStop.sleep``: beta and on by default since 1.30)."""
CRD_GROUPS = ("keda.sh/", "monitoring.coreos.com/")
WORKER_SLOTS_SETTINGS = ("SCENEDEX_WORKER__PROCESSES", "SCENEDEX_WORKER__THREADS")
NON_SETTINGS_ENV = {"HF_HUB_OFFLINE", "HOME", "XDG_CACHE_HOME"}
"""Environment variables the pods set that are not scenedex settings (libraries' own)."""


def kubectl() -> str | None:
    return shutil.which("kubectl")


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    """The objects of ``deploy/k8s/overlays/<overlay>`` as ``kubectl kustomize`` renders them.
    Raises ``AssertionError`` with kubectl's message when it does not render."""
    command = [str(kubectl()), "kustomize", str(K8S / "overlays" / overlay)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def is_crd_object(obj: dict[str, Any]) -> bool:
    return str(obj["apiVersion"]).startswith(CRD_GROUPS)


def validate_core(objects: list[dict[str, Any]]) -> list[str]:
    """kubernetes-validate's errors (strict: unknown fields too) for the core objects, one line each."""
    import kubernetes_validate

    errors = []
    for obj in objects:
        if is_crd_object(obj):
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {error.message}")
        except kubernetes_validate.InvalidSchemaError as error:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: no schema: {error}")
    return errors


def crd_validator_ready() -> bool:
    return shutil.which("node") is not None and (SCHEMAS / "node_modules" / "@kubernetes-models").is_dir()


def validate_crds(objects: list[dict[str, Any]]) -> list[str]:
    """The KEDA and Prometheus-operator objects' errors (``deploy/k8s/schemas/validate-crds.mjs``)."""
    crds = [obj for obj in objects if is_crd_object(obj)]
    result = subprocess.run(
        ["node", str(SCHEMAS / "validate-crds.mjs")],
        input=json.dumps(crds),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [f"{e['kind']}/{e['name']}: {e['error']}" for e in json.loads(result.stdout)]


# ----------------------------------------------------------------------------- invariants


def settings_names() -> tuple[set[str], set[str]]:
    """Every ``SCENEDEX_*`` name in ``.env.example`` (generated from ``Settings``), and those of
    secrets (``(secret`` in their description)."""
    names, secret, described = set(), set(), ""
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"#?\s*(SCENEDEX_[A-Z0-9_]+)=", line)
        if match:
            names.add(match.group(1))
            if "(secret" in described:
                secret.add(match.group(1))
            described = ""
        elif line.startswith("# "):
            described = line
    return names, secret


def actor_time_limit_s() -> float:
    """The longest ``time_limit`` of the actors (``src/scenedex/tasks/actors.py``), seconds."""
    text = (ROOT / "src" / "scenedex" / "tasks" / "actors.py").read_text()
    limits = [int(n.replace("_", "")) for n in re.findall(r"time_limit\W{1,4}([\d_]+)", text)]
    assert limits, "no time_limit found in tasks/actors.py"
    return max(limits) / 1000


def project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """``(object, pod spec)`` of every Deployment and Job."""
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            yield obj, obj["spec"]["template"]["spec"]


def _name(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _config(objects: list[dict[str, Any]]) -> dict[str, str]:
    return next(
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "scenedex-config"
    )["data"]


def problems(objects: list[dict[str, Any]], overlay: str) -> list[str]:
    """What breaks an invariant of the rendered ``objects`` (empty: none). See docs/SCALING.md,
    "What the tests hold the manifests to"."""
    found: list[str] = []
    names, secrets = settings_names()
    config = _config(objects)
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    version = project_version()
    limit_s = actor_time_limit_s()
    shutdown_s = int(config.get("SCENEDEX_WORKER__SHUTDOWN_TIMEOUT_MS", "25000")) / 1000
    slots = 1
    for setting in WORKER_SLOTS_SETTINGS:
        slots *= int(config.get(setting, "1"))

    # configuration: settings names, no secret value in a ConfigMap
    for cm in (o for o in objects if o["kind"] == "ConfigMap"):
        for key, value in (cm.get("data") or {}).items():
            if key.startswith("SCENEDEX_") and key not in names:
                found.append(f"{_name(cm)}: {key} is not a setting (.env.example)")
            if key in secrets or key == "SCENEDEX_DATABASE_URL" or re.search(r"SECRET|PASSWORD|TOKEN", key):
                found.append(f"{_name(cm)}: secret setting {key} in a ConfigMap")
            if re.search(r"://[^/@\s]+:[^/@\s]+@", str(value)):
                found.append(f"{_name(cm)}: {key} holds a URL with a password")
    for obj in objects:
        if obj["kind"] == "Secret":
            found.append(f"{_name(obj)}: secrets are created apart from the manifests (docs/SCALING.md)")

    for obj, pod in pod_specs(objects):
        security = pod.get("securityContext", {})
        if not security.get("runAsNonRoot") or security.get("runAsUser") in (None, 0):
            found.append(f"{_name(obj)}: pod may run as root")
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            where = f"{_name(obj)} container {container['name']}"
            image = container["image"]
            if not re.fullmatch(rf"[^:@\s]+:{re.escape(version)}-(cpu|gpu)", image):
                found.append(f"{where}: image {image} not pinned to {version}-cpu|gpu")
            resources = container.get("resources", {})
            if not {"cpu", "memory"} <= set(resources.get("requests", {})) or "memory" not in resources.get(
                "limits", {}
            ):
                found.append(f"{where}: no cpu/memory requests or memory limit")
            context = container.get("securityContext", {})
            if context.get("readOnlyRootFilesystem") is not True or context.get("allowPrivilegeEscalation"):
                found.append(f"{where}: root filesystem writable or privilege escalation allowed")
            if "/tmp" not in {m["mountPath"] for m in container.get("volumeMounts", [])}:
                found.append(f"{where}: no /tmp volume under a read-only root filesystem")
            for env in container.get("env", []):
                key = env["name"]
                if key not in names and key not in NON_SETTINGS_ENV:
                    found.append(f"{where}: env {key} is not a setting (.env.example)")
                if "value" in env and (key in secrets or key == "SCENEDEX_DATABASE_URL"):
                    found.append(f"{where}: secret {key} given as a literal value")
                if key.startswith(("SCENEDEX_CLIP__", "SCENEDEX_TEXT__", "SCENEDEX_FACES__")):
                    found.append(f"{where}: model setting {key} outside scenedex-config (fingerprints)")
            gpus = resources.get("limits", {}).get("nvidia.com/gpu")
            wants_gpu = overlay == "gpu" and obj["metadata"]["name"] == "scenedex-embed-server"
            if wants_gpu and container["name"] == "embed-server" and gpus != "1":
                found.append(f"{where}: the gpu overlay's embedding service has no nvidia.com/gpu")
            if gpus and not wants_gpu:
                found.append(f"{where}: requests a GPU")
        uses_database = any(
            env["name"] == "SCENEDEX_DATABASE_URL" for c in pod["containers"] for env in c.get("env", [])
        )
        waits = "wait-for-migrations" in {c["name"] for c in pod.get("initContainers", [])}
        if obj["kind"] == "Deployment" and uses_database and not waits:
            found.append(f"{_name(obj)}: uses the database without waiting for the migrations")
        tolerates = any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", []))
        if overlay == "gpu" and obj["metadata"]["name"] == "scenedex-embed-server" and not tolerates:
            found.append(f"{_name(obj)}: no toleration of the GPU nodes' taint")

    migrations = [o for o in objects if o["kind"] == "Job"]
    if not any(
        job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"] for job in migrations
    ):
        found.append("no migration Job running `scenedex db upgrade`")

    for deployment in deployments:
        template = deployment["spec"]["template"]
        labels = template["metadata"]["labels"]
        for container in template["spec"]["containers"]:
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in container:
                    found.append(f"{_name(deployment)} container {container['name']}: no {probe}")
        if not any(_selects(pdb["spec"]["selector"], labels) for pdb in pdbs):
            found.append(f"{_name(deployment)}: no PodDisruptionBudget")
        args = template["spec"]["containers"][0].get("args", [])
        if args[:1] == ["worker"]:
            grace = template["spec"].get("terminationGracePeriodSeconds", 30)
            if not grace > shutdown_s >= limit_s:
                found.append(
                    f"{_name(deployment)}: grace period {grace} s, shutdown timeout {shutdown_s} s, "
                    f"longest actor time limit {limit_s} s (need grace > shutdown >= limit)"
                )

    # autoscaling: every worker Deployment on its queue's backlog
    scaled = {o["spec"]["scaleTargetRef"]["name"]: o for o in objects if o["kind"] == "ScaledObject"}
    for deployment in deployments:
        args = deployment["spec"]["template"]["spec"]["containers"][0].get("args", [])
        name = deployment["metadata"]["name"]
        if args[:1] != ["worker"]:
            continue
        queues = [args[i + 1] for i, arg in enumerate(args) if arg == "--queues"]
        scaler = scaled.get(name)
        if scaler is None or len(queues) != 1:
            found.append(f"{_name(deployment)}: not scaled by a ScaledObject on one queue")
            continue
        behavior = (
            scaler["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {})
        )
        if behavior.get("scaleDown", {}).get("stabilizationWindowSeconds", 0) < 300:
            found.append(f"{_name(scaler)}: scale-down stabilisation window under 300 s")
        for trigger in scaler["spec"]["triggers"]:
            query = trigger.get("metadata", {}).get("query", "")
            if (
                trigger["type"] != "prometheus"
                or f'scenedex_queue_backlog{{queue="{queues[0]}"}}' not in query
            ):
                found.append(f"{_name(scaler)}: trigger {trigger['type']} is not the {queues[0]} backlog")
            elif float(trigger["metadata"]["threshold"]) != slots:
                found.append(
                    f"{_name(scaler)}: threshold {trigger['metadata']['threshold']} != {slots} slots per pod"
                )
    for name, scaler in scaled.items():
        if name not in {d["metadata"]["name"] for d in deployments}:
            found.append(f"{_name(scaler)}: targets no Deployment")
    return found


def broken(objects: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """A deep copy of ``objects`` to break on purpose."""
    return copy.deepcopy(list(objects))
