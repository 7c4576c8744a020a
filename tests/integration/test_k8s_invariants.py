"""What the manifests must hold in both overlays (``tests.k8s_manifests.problems``): probes,
resources and a PodDisruptionBudget for every Deployment, worker grace period above the shutdown
timeout above the longest actor time limit, images pinned to the project's version, no secret in
a ConfigMap, settings by their names, non-root pods on a read-only root, the migration Job first,
workers scaled on their queue's backlog; and each check fails when its invariant is broken."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.k8s_manifests import OVERLAYS, broken, kubectl, problems, render

pytestmark = pytest.mark.skipif(kubectl() is None, reason="kubectl not installed (apt-get install kubectl)")

Objects = list[dict[str, Any]]


def _find(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _container(objects: Objects, name: str) -> dict[str, Any]:
    return _find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


def _drop_probe(objects: Objects) -> None:
    del _container(objects, "scenedex-api")["readinessProbe"]


def _drop_pdb(objects: Objects) -> None:
    objects.remove(_find(objects, "PodDisruptionBudget", "scenedex-worker-reprocessing"))


def _short_grace(objects: Objects) -> None:
    pod = _find(objects, "Deployment", "scenedex-worker-embeddings")["spec"]["template"]["spec"]
    pod["terminationGracePeriodSeconds"] = 30


def _short_shutdown(objects: Objects) -> None:
    _find(objects, "ConfigMap", "scenedex-config")["data"]["SCENEDEX_WORKER__SHUTDOWN_TIMEOUT_MS"] = "25000"


def _latest_image(objects: Objects) -> None:
    _container(objects, "scenedex-scheduler")["image"] = "scenedex:latest"


def _secret_in_config(objects: Objects) -> None:
    _find(objects, "ConfigMap", "scenedex-config")["data"]["SCENEDEX_API__JWT_SECRET"] = "x" * 32


def _password_url_in_config(objects: Objects) -> None:
    data = _find(objects, "ConfigMap", "scenedex-config")["data"]
    data["SCENEDEX_REDIS_URL"] = "redis://default:hunter2@redis:6379/0"


def _unknown_setting(objects: Objects) -> None:
    _container(objects, "scenedex-api")["env"].append({"name": "SCENEDEX_API__PORTT", "value": "1"})


def _no_resources(objects: Objects) -> None:
    del _container(objects, "scenedex-backlog-exporter")["resources"]["limits"]


def _root(objects: Objects) -> None:
    _find(objects, "Deployment", "scenedex-api")["spec"]["template"]["spec"]["securityContext"][
        "runAsUser"
    ] = 0


def _list_scaler(objects: Objects) -> None:
    trigger = _find(objects, "ScaledObject", "scenedex-worker-reprocessing")["spec"]["triggers"][0]
    trigger.update(type="redis", metadata={"listName": "dramatiq:reprocessing", "listLength": "2"})


def _wrong_threshold(objects: Objects) -> None:
    trigger = _find(objects, "ScaledObject", "scenedex-worker-embeddings")["spec"]["triggers"][0]
    trigger["metadata"]["threshold"] = "5"


def _no_stabilisation(objects: Objects) -> None:
    scaled = _find(objects, "ScaledObject", "scenedex-worker-reprocessing")
    del scaled["spec"]["advanced"]


def _no_migration_wait(objects: Objects) -> None:
    pod = _find(objects, "Deployment", "scenedex-scheduler")["spec"]["template"]["spec"]
    pod["initContainers"] = []


def _model_override(objects: Objects) -> None:
    _container(objects, "scenedex-worker-reprocessing")["env"].append(
        {"name": "SCENEDEX_CLIP__PRECISION", "value": "bf16"}
    )


BREAKS: dict[str, tuple[Callable[[Objects], None], str]] = {
    "probe": (_drop_probe, "no readinessProbe"),
    "pdb": (_drop_pdb, "no PodDisruptionBudget"),
    "grace": (_short_grace, "need grace > shutdown >= limit"),
    "shutdown": (_short_shutdown, "need grace > shutdown >= limit"),
    "image": (_latest_image, "not pinned"),
    "secret": (_secret_in_config, "secret setting SCENEDEX_API__JWT_SECRET in a ConfigMap"),
    "password-url": (_password_url_in_config, "URL with a password"),
    "setting": (_unknown_setting, "SCENEDEX_API__PORTT is not a setting"),
    "resources": (_no_resources, "no cpu/memory requests or memory limit"),
    "root": (_root, "may run as root"),
    "list-scaler": (_list_scaler, "is not the reprocessing backlog"),
    "threshold": (_wrong_threshold, "slots per pod"),
    "stabilisation": (_no_stabilisation, "stabilisation window"),
    "migrations": (_no_migration_wait, "without waiting for the migrations"),
    "model": (_model_override, "outside scenedex-config"),
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_manifests_hold_every_invariant(overlay: str) -> None:
    assert problems(list(render(overlay)), overlay) == []


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_breaking_an_invariant_is_caught(name: str) -> None:
    objects = broken(render("cpu"))
    breaker, expected = BREAKS[name]
    breaker(objects)
    found = problems(objects, "cpu")
    assert any(expected in problem for problem in found), found


def test_the_gpu_overlay_puts_only_the_embedding_service_on_a_gpu() -> None:
    objects = broken(render("gpu"))
    pod = _find(objects, "Deployment", "scenedex-embed-server")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    del pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
    assert any("has no nvidia.com/gpu" in p for p in problems(objects, "gpu"))
    cpu = broken(render("cpu"))
    _container(cpu, "scenedex-api")["resources"]["limits"]["nvidia.com/gpu"] = "1"
    assert any("requests a GPU" in p for p in problems(cpu, "cpu"))
