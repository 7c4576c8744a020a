"""``EmbedServicePool`` over in-process services (httpx ``MockTransport``): failover on a
transient failure, refusal of an instance with other model ids, the outage when every instance
fails, the spreading rules, the role routing settings and the instance metrics. The real
``scenedex embed-server`` processes run in tests/e2e/test_embed_pool.py."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest

from scenedex.adapters.breakers import BreakerConfig, LocalKeyValue
from scenedex.adapters.embed_pool import EmbedServicePool, disagreement, instance_name
from scenedex.adapters.http_embedder import EmbedServiceClient
from scenedex.domain.errors import DependencyUnavailableError
from scenedex.settings import EmbedderSettings, Settings


def health(text_model: str = "text-a") -> dict[str, Any]:
    return {
        "status": "ok",
        "max_batch_size": 8,
        "models": {
            "clip": {"model_id": "clip-a", "preprocessing_id": "p", "dim": 4},
            "text": {"model_id": text_model, "dim": 2},
            "faces": {"model_id": "faces-a", "detection_id": "d", "dim": 128},
        },
    }


class Service:
    """One fake embedding service: ``/health`` and ``/v1/embed/text``; ``failing``: 503s."""

    def __init__(self, text_model: str = "text-a") -> None:
        self.text_model = text_model
        self.failing = False
        self.served = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(503) if self.failing else httpx.Response(200, json=health(self.text_model))
        if self.failing:
            return httpx.Response(503, json={"detail": "down"})
        self.served += 1
        texts = json.loads(request.content)["texts"]
        return httpx.Response(
            200,
            json={"embeddings": {"text": [[1.0, 0.0]] * len(texts)}, "model_ids": {"text": self.text_model}},
        )


class Events:
    def __init__(self) -> None:
        self.states: dict[str, str] = {}
        self.requests: Counter[tuple[str, str]] = Counter()

    def instance_state(self, url: str, state: str) -> None:
        self.states[url] = state

    def request(self, url: str, outcome: str) -> None:
        self.requests[(url, outcome)] += 1


def pool_of(services: dict[str, Service], **options: Any) -> EmbedServicePool:
    def client(url: str) -> EmbedServiceClient:
        return EmbedServiceClient(
            url, secret=None, max_retries=0, transport=httpx.MockTransport(services[url])
        )

    return EmbedServicePool(
        list(services),
        client_factory=client,
        store=LocalKeyValue(),
        breaker_config=BreakerConfig(failure_threshold=1, open_s=60, max_open_s=60),
        backoff_s=0.0,
        max_retries=1,
        **options,
    )


def embed(pool: EmbedServicePool) -> dict[str, Any]:
    return pool.post("/v1/embed/text", {"texts": ["x"], "models": ["text"]})


def test_a_failed_request_goes_to_another_instance_and_the_failing_one_is_left_out() -> None:
    services = {"http://a:1": Service(), "http://b:1": Service(), "http://c:1": Service()}
    events = Events()
    pool = pool_of(services, events=events)
    services["http://b:1"].failing = True
    for _ in range(30):
        assert embed(pool)["embeddings"]["text"]
    assert services["http://b:1"].served == 0
    assert services["http://a:1"].served + services["http://c:1"].served == 30
    assert events.requests[("http://b:1", "failed")] <= 1 and events.states["http://b:1"] == "down"
    assert {s["url"]: s["state"] for s in pool.statuses()}["http://b:1"] == "down"
    assert instance_name("http://b:1") == "embedding@b:1"


def test_an_instance_with_other_model_ids_is_refused() -> None:
    services = {"http://a:1": Service(), "http://odd:1": Service(text_model="text-b")}
    events = Events()
    pool = pool_of(services, events=events)
    pool.check_all()
    for _ in range(10):
        embed(pool)
    assert services["http://odd:1"].served == 0 and services["http://a:1"].served == 10
    refused = {s["url"]: s for s in pool.statuses()}["http://odd:1"]
    assert refused["state"] == "refused" and refused["refused"] == "text model_id 'text-b', not 'text-a'"
    assert events.states == {"http://a:1": "ok", "http://odd:1": "refused"}
    assert disagreement(health(), health()) is None


def test_every_instance_failing_is_the_embedding_outage() -> None:
    services = {"http://a:1": Service(), "http://b:1": Service()}
    pool = pool_of(services)
    embed(pool)
    for service in services.values():
        service.failing = True
    with pytest.raises(DependencyUnavailableError) as outage:
        embed(pool)
    assert outage.value.dependency == "embedding"
    with pytest.raises(DependencyUnavailableError, match="every instance is down or refused"):
        embed(pool)  # both breakers open: nothing is sent


@pytest.mark.parametrize("balance", ["round_robin", "least_outstanding"])
def test_sequential_requests_alternate(balance: str) -> None:
    services = {"http://a:1": Service(), "http://b:1": Service()}
    pool = pool_of(services, balance=balance)
    for _ in range(40):
        embed(pool)
    assert services["http://a:1"].served == services["http://b:1"].served == 20


def test_urls_and_role_routing_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCENEDEX_EMBEDDER__BACKEND", "http")
    monkeypatch.setenv("SCENEDEX_EMBEDDER__URLS", '["http://gpu1:8090", "http://gpu2:8090"]')
    monkeypatch.setenv("SCENEDEX_EMBEDDER__FACES", "local")
    embedder = Settings().embedder
    assert embedder.urls_of("clip") == ("http://gpu1:8090", "http://gpu2:8090")
    assert [embedder.backend_of(r) for r in ("clip", "text", "faces")] == ["http", "http", "local"]
    single = EmbedderSettings(backend="http", url="http://one:8090")
    assert single.urls_of("text") == ("http://one:8090",)  # the single URL still works
    routed = EmbedderSettings(backend="local", clip="http", clip_urls=("http://gpu:8090",))
    assert routed.backend_of("clip") == "http" and routed.backend_of("text") == "local"
    assert routed.urls_of("clip") == ("http://gpu:8090",)
    assert EmbedderSettings(clip="off").backend_of("clip") == "off"


def test_instance_metrics() -> None:
    import prometheus_client as prom

    from scenedex.worker.metrics import EmbedPoolMetrics

    registry = prom.CollectorRegistry()
    metrics = EmbedPoolMetrics(registry)
    metrics.instance_state("http://odd:1", "refused")
    metrics.request("http://a:1", "ok")
    assert registry.get_sample_value("scenedex_embed_instance_state", {"instance": "http://odd:1"}) == 2
    assert (
        registry.get_sample_value(
            "scenedex_embed_instance_requests_total", {"instance": "http://a:1", "outcome": "ok"}
        )
        == 1
    )
