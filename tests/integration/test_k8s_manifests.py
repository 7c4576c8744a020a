"""deploy/k8s renders with ``kubectl kustomize`` alone and every object is valid: core objects
against the Kubernetes schemas of ``KUBERNETES_VERSION`` (kubernetes-validate, strict: unknown
fields refused), KEDA ScaledObjects and Prometheus-operator ServiceMonitors against the schemas
of ``deploy/k8s/schemas``; both validators refuse a broken object. Needs kubectl (``.ci/run``
installs it) and ``npm ci`` in ``deploy/k8s/schemas``; a few seconds."""

from __future__ import annotations

from typing import Any

import pytest

from tests.k8s_manifests import (
    KUBERNETES_VERSION,
    OVERLAYS,
    broken,
    crd_validator_ready,
    is_crd_object,
    kubectl,
    render,
    validate_core,
    validate_crds,
)

pytestmark = pytest.mark.skipif(kubectl() is None, reason="kubectl not installed (apt-get install kubectl)")

needs_node = pytest.mark.skipif(
    not crd_validator_ready(), reason="node or deploy/k8s/schemas/node_modules missing (npm ci there)"
)


def _kinds(objects: tuple[dict[str, Any], ...]) -> set[str]:
    return {obj["kind"] for obj in objects}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_every_part(overlay: str) -> None:
    objects = render(overlay)
    assert {"Deployment", "Service", "ConfigMap", "Job", "PodDisruptionBudget"} <= _kinds(objects)
    assert {"ScaledObject", "ServiceMonitor", "PersistentVolumeClaim"} <= _kinds(objects)
    deployments = {o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"}
    assert deployments == {
        "scenedex-api",
        "scenedex-embed-server",
        "scenedex-worker-embeddings",
        "scenedex-worker-reprocessing",
        "scenedex-scheduler",
        "scenedex-backlog-exporter",
    }
    assert {o["metadata"].get("namespace") for o in objects} == {"scenedex"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_objects_are_valid_kubernetes(overlay: str) -> None:
    objects = [o for o in render(overlay) if not is_crd_object(o)]
    assert validate_core(objects) == [], KUBERNETES_VERSION


@needs_node
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_and_prometheus_operator_objects_are_valid(overlay: str) -> None:
    crds = [o for o in render(overlay) if is_crd_object(o)]
    assert len(crds) == 6  # 3 ScaledObjects, 3 ServiceMonitors
    assert validate_crds(crds) == []


def test_kubernetes_validate_refuses_a_misspelt_field_and_a_wrong_type() -> None:
    objects = broken(render("cpu"))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 60
    service = next(o for o in objects if o["kind"] == "Service")
    service["spec"]["ports"][0]["port"] = "http"
    errors = validate_core([deployment, service])
    assert len(errors) == 2, errors


@needs_node
def test_crd_schemas_refuse_a_wrong_type_and_a_missing_field() -> None:
    objects = broken(render("gpu"))
    scaled = next(o for o in objects if o["kind"] == "ScaledObject")
    scaled["spec"]["minReplicaCount"] = "0"
    monitor = next(o for o in objects if o["kind"] == "ServiceMonitor")
    del monitor["spec"]["selector"]
    errors = validate_crds([scaled, monitor])
    assert len(errors) == 2, errors
