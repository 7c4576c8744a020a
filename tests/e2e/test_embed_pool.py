"""A list of embedding services (``SCENEDEX_EMBEDDER__URLS``) on real ``scenedex embed-server``
processes (the tiny random test CLIP, ``TINY_CLIP``: these tests are about the pool, not the
model): one killed mid-job -> its requests go to the others and
no item fails, the killed one rejoins after its restart and probe; one started with another
model id -> refused (the pool's state, ``scenedex doctor``); all down -> the embedding outage
(``DependencyUnavailableError``: the worker's hold), then recovery; two instances share the
requests (each at least a third).

The breakers live in the tests' Redis database (flushed first); the processes are stopped by
their process group."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from scenedex.adapters.embed_pool import EmbedServicePool
from scenedex.adapters.http_embedder import HttpImageEmbedder
from scenedex.application.wiring import embed_pool
from scenedex.domain.errors import DependencyUnavailableError
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.settings import Settings
from tests.conftest import World, make_world
from tests.outage_stack import SECRET, free_port
from tests.worker_processes import TINY_CLIP, scenedex_command, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


class Server:
    """``scenedex embed-server`` on a fixed loopback port (restartable), in its own session."""

    def __init__(self, root: Path, name: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / f"{name}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SCENEDEX_")}
        self.env.update(TINY_CLIP)
        self.env.update(
            SCENEDEX_CLIP__DEVICE="cpu",
            SCENEDEX_TEXT__PRECISION="fp32",
            SCENEDEX_EMBED__HMAC_SECRET=SECRET,
            SCENEDEX_EMBED__BATCHER_ENABLED="false",
            HF_HUB_OFFLINE="1",
            OMP_NUM_THREADS="1",
        )
        self.env.update(env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                scenedex_command("embed-server", "--host", "127.0.0.1", "--port", str(self.port)),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait(self, timeout: float = 240) -> None:
        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"embed-server exited:\n{self.log.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.url}/health", timeout=2, trust_env=False).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, timeout, f"{self.url}/health", interval=0.3)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    """Three services with the same models, and one whose text model runs in bf16 (another
    text model id), started together (about a minute on two cores)."""
    root = tmp_path_factory.mktemp("embed-pool")
    started = [Server(root, f"s{i}") for i in range(3)] + [
        Server(root, "other", SCENEDEX_TEXT__PRECISION="bf16")
    ]
    try:
        for server in started:
            server.start()
        for server in started:
            server.wait()
        yield started
    finally:
        for server in started:
            server.kill()


@pytest.fixture
def store(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    return client


def settings_for(urls: list[str], **breakers: Any) -> Settings:
    return Settings(
        embed={"hmac_secret": SECRET},
        embedder={"backend": "http", "urls": tuple(urls), "max_retries": 2, "backoff_s": 0.05},
        breakers={"failure_threshold": 1, "open_s": 0.5, "max_open_s": 1.0, **breakers},
    )


def pool_of(urls: list[str], store: redis.Redis) -> EmbedServicePool:
    pool = embed_pool(settings_for(urls), tuple(urls), store=store)
    assert isinstance(pool, EmbedServicePool)
    return pool


def jpeg(seed: int) -> bytes:
    import io

    from PIL import Image

    image = Image.new("RGB", (64, 48), ((seed * 37) % 255, (seed * 91) % 255, (seed * 13) % 255))
    out = io.BytesIO()
    image.save(out, "JPEG")
    return out.getvalue()


def test_one_instance_killed_mid_job_fails_no_item_and_rejoins_after_restart(
    servers: list[Server], store: redis.Redis, request: pytest.FixtureRequest
) -> None:
    """A reprocess (real runner, Postgres, CLIP on the pool of three) while one instance is
    killed after the first requests: every CLIP record is computed; restarted, it gets
    requests again once its breaker's probe found it answering."""
    a, b, c, _ = servers
    pool = pool_of([a.url, b.url, c.url], store)
    world: World = make_world(request, "postgres")
    world.clip = HttpImageEmbedder(pool, batch_size=2)  # type: ignore[assignment]
    owner = world.add_video
    from tests.unit.test_runner_contract import OWNER_A

    owner(OWNER_A, [jpeg(i) for i in range(36)])
    killed = threading.Event()

    def kill_after_some_requests() -> None:
        wait_for(lambda: sum(i.sent for i in pool.instances) >= 4, 120, "the first requests")
        b.kill()
        killed.set()

    killer = threading.Thread(target=kill_after_some_requests)
    killer.start()
    progress = world.runner(batch_size=4).run(ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER_A))
    killer.join()
    assert killed.is_set()
    assert progress.ok, progress.errors
    clip = {s.value: c for s, c in progress.steps.items()}["scene_clip_embeddings"]
    assert clip.computed == 36 and clip.failed == 0
    states = {s["url"]: s for s in pool.statuses()}
    assert states[b.url]["state"] == "down"
    sent_before = states[b.url]["sent"]

    b.start().wait()
    time.sleep(1.1)  # the breaker's probe is due (max_open_s 1 s)
    for i in range(12):
        (vector,) = HttpImageEmbedder(pool, batch_size=1).embed_images([jpeg(100 + i)])
        assert not isinstance(vector, Exception)
    states = {s["url"]: s for s in pool.statuses()}
    assert states[b.url]["state"] == "ok" and states[b.url]["sent"] >= sent_before + 3, states


def test_an_instance_with_another_model_id_is_refused_and_reported(
    servers: list[Server], store: redis.Redis, tmp_path: Path
) -> None:
    a, _, _, other = servers
    pool = pool_of([a.url, other.url], store)
    for i in range(6):
        pool.post("/v1/embed/text", {"texts": [f"t{i}"], "models": ["text"], "normalize": True})
    states = {s["url"]: s for s in pool.statuses()}
    assert states[other.url]["state"] == "refused" and states[other.url]["sent"] == 0
    assert "text model_id" in states[other.url]["refused"] and "bf16" in states[other.url]["refused"]
    assert states[a.url]["sent"] == 6

    env = {k: v for k, v in os.environ.items() if not k.startswith("SCENEDEX_")}
    env.update(
        SCENEDEX_EMBEDDER__BACKEND="http",
        SCENEDEX_EMBEDDER__URLS=json.dumps([a.url, other.url]),
        SCENEDEX_DATABASE_URL=f"sqlite:///{tmp_path}/x.db",
        SCENEDEX_REDIS_URL=os.environ["SCENEDEX_REDIS_URL"],
        HF_HUB_OFFLINE="1",
    )
    doctor = subprocess.run(
        [sys.executable, "-m", "scenedex.scripts.cli", "doctor", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks[f"embedding service {a.url}"]["status"] == "ok"
    refused = checks[f"embedding service {other.url}"]
    assert refused["status"] == "fail" and "the workers refuse it" in refused["detail"], refused
    assert doctor.returncode == 1


def test_all_down_is_the_embedding_outage_then_recovery(servers: list[Server], store: redis.Redis) -> None:
    a, _, c, _ = servers
    pool = pool_of([a.url, c.url], store)
    pool.post("/v1/embed/text", {"texts": ["x"], "models": ["text"], "normalize": True})
    a.kill()
    c.kill()
    with pytest.raises(DependencyUnavailableError) as outage:
        pool.post("/v1/embed/text", {"texts": ["x"], "models": ["text"], "normalize": True})
    assert outage.value.dependency == "embedding"
    started = time.monotonic()
    with pytest.raises(DependencyUnavailableError):  # breakers open: refused at once
        pool.post("/v1/embed/text", {"texts": ["x"], "models": ["text"], "normalize": True})
    assert time.monotonic() - started < 1.0
    c.start().wait()
    time.sleep(1.1)
    answer = pool.post("/v1/embed/text", {"texts": ["x"], "models": ["text"], "normalize": True})
    assert answer["embeddings"]["text"]
    a.start().wait()


def run_requests(pool: EmbedServicePool, threads: int = 4, each: int = 30) -> tuple[Counter[str], float]:
    """``threads`` threads of ``each`` single-image requests on ``pool``: the requests each
    instance answered (counted by the instance the pool chose) and the seconds it took."""
    embedder = HttpImageEmbedder(pool, batch_size=1)
    served: Counter[str] = Counter()
    lock = threading.Lock()
    original = pool._send

    def counting(instance: Any, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        answer = original(instance, path, payload)
        with lock:
            served[instance.url] += 1
        return answer

    pool._send = counting  # type: ignore[method-assign]

    def work(offset: int) -> None:
        for i in range(each):
            (vector,) = embedder.embed_images([jpeg(offset * 100 + i)])
            assert not isinstance(vector, Exception)

    started = time.monotonic()
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return served, time.monotonic() - started


def test_two_instances_share_the_requests(servers: list[Server], store: redis.Redis) -> None:
    """Four threads, 120 image requests over two instances, then the same over one (they share
    two cores, so this shows the spreading, not a speedup). Each instance answers at least a
    third: ``least_outstanding`` sends more to whichever answers faster, and two equal instances
    on a shared 2-core machine differ by scheduling alone, more so with the tiny test CLIP's
    8 ms requests (seen 53/67 beside another pytest-xdist worker; 20 % was the bound while the
    servers ran ViT-B-32)."""
    a, _, c, _ = servers
    served, seconds = run_requests(pool_of([a.url, c.url], store))
    counts = [served[a.url], served[c.url]]
    alone, alone_seconds = run_requests(pool_of([a.url], store))
    print(
        f"\ntwo instances: requests per instance {counts} in {seconds:.1f} s "
        f"({sum(counts) / seconds:.2f} req/s); one instance: {alone[a.url]} in {alone_seconds:.1f} s "
        f"({alone[a.url] / alone_seconds:.2f} req/s)"
    )
    assert sum(counts) == 120 and alone[a.url] == 120
    assert min(counts) >= 120 / 3, counts
