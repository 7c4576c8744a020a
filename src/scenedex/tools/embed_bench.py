"""``scenedex embed-bench``: the embedding service under concurrent load, its dynamic batcher on
and off.

The models are loaded once (``EmbedModels``); two apps are built from them, one with the batcher
on and one with it off, each served by uvicorn on loopback (``serve_in_thread``). For each client
count, each app in turn gets a run: ``clients`` threads, each with its own keep-alive
``httpx.Client``, send signed ``POST /v1/embed/image`` requests back to back, one base64
1280x720 JPEG keyframe each (the ``scenedex bench`` keyframes, ~200 kB; one in five with a real
face), until ``requests`` have been sent or ``max_seconds`` have passed. Every client first sends
``warmup`` requests that are not measured.

Figures per run: images/s (successful responses / wall seconds from the start signal to the last
response), client-side latency (ms; the HTTP exchange, not building and signing the body), and
the server's model batches, from the deltas of its Prometheus histograms
``scenedex_embed_batch_size`` and ``scenedex_embed_queue_wait_seconds`` across the measured
phase: batches, mean images per batch, batches per size bucket, mean queue wait (ms). A batch is
one call of the model with the batcher's items (the adapter splits calls larger than
``SCENEDEX_CLIP__BATCH_SIZE`` into several forward passes).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from scenedex.adapters.request_signing import signed_headers
from scenedex.api.embed_app import create_embed_app
from scenedex.api.embed_models import EmbedModels
from scenedex.api.serve import serve_in_thread
from scenedex.domain.errors import ModelLoadError
from scenedex.settings import UNTRAINED, Settings
from scenedex.tools.bench_library import FACE_EVERY, FRAME_SIZE, face_crop, face_photo, keyframe
from scenedex.tools.machine import machine

PATH = "/v1/embed/image"
REQUEST_TIMEOUT_S = 60.0
"""Per-request timeout (seconds); a request that takes longer counts as failed."""
START_TIMEOUT_S = 300.0
"""Longest wait (seconds) for every client's warm-up before a run starts."""
BATCH_METRIC = "scenedex_embed_batch_size"
WAIT_METRIC = "scenedex_embed_queue_wait_seconds"


# ----------------------------------------------------------------------------- inputs


def keyframes_b64(count: int, real_media: Path | None = None) -> list[str]:
    """``count`` distinct 1280x720 JPEG keyframes (``scenedex.tools.bench_library.keyframe``, the face
    pasted into one in ``FACE_EVERY``), base64-encoded as request bodies carry them."""
    face = face_crop(Image.open(face_photo(real_media)))
    frames = (keyframe(index, face if index % FACE_EVERY == 0 else None) for index in range(count))
    return [base64.b64encode(frame).decode() for frame in frames]


def request_body(image_b64: str) -> bytes:
    """One ``/v1/embed/image`` body; its fresh ``request_id`` makes every body (and so every
    signature) unique, which the server's replay check requires."""
    return json.dumps({"image": {"data": image_b64}, "request_id": uuid.uuid4().hex}).encode()


# ----------------------------------------------------------------------------- server metrics


@dataclass(frozen=True)
class BatchCounters:
    """The server's cumulative batch counters at one moment (Prometheus histograms)."""

    batches: float
    images: float
    buckets: dict[str, float]
    """Upper bound ``le`` of a ``scenedex_embed_batch_size`` bucket -> cumulative batches."""
    wait_seconds: float
    waits: float

    @classmethod
    def scrape(cls, url: str) -> BatchCounters:
        """Read ``GET {url}/metrics``."""
        text = httpx.get(f"{url}/metrics", timeout=REQUEST_TIMEOUT_S).raise_for_status().text
        values: dict[str, float] = {}
        buckets: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            if family.name not in (BATCH_METRIC, WAIT_METRIC):
                continue
            for sample in family.samples:
                if sample.name == f"{BATCH_METRIC}_bucket":
                    buckets[sample.labels["le"]] = sample.value
                else:
                    values[sample.name] = sample.value
        return cls(
            batches=values.get(f"{BATCH_METRIC}_count", 0.0),
            images=values.get(f"{BATCH_METRIC}_sum", 0.0),
            buckets=buckets,
            wait_seconds=values.get(f"{WAIT_METRIC}_sum", 0.0),
            waits=values.get(f"{WAIT_METRIC}_count", 0.0),
        )


def batch_figures(before: BatchCounters, after: BatchCounters) -> dict[str, Any]:
    """What happened between two scrapes: ``batches``, ``images`` (in those batches),
    ``mean_batch`` (images per batch), ``batch_sizes`` (bucket label ``<=N`` -> batches whose size
    is in (previous bound, N], empty buckets left out) and ``queue_wait_ms_mean``."""
    batches = int(after.batches - before.batches)
    images = int(after.images - before.images)
    sizes: dict[str, int] = {}
    below = 0
    for bound, cumulative in sorted(after.buckets.items(), key=lambda item: float(item[0])):
        total = int(cumulative - before.buckets.get(bound, 0.0))
        if total > below:
            label = "+Inf" if bound == "+Inf" else f"<={float(bound):g}"
            sizes[label] = total - below
        below = total
    waits = after.waits - before.waits
    wait_ms = (after.wait_seconds - before.wait_seconds) / waits * 1000 if waits else 0.0
    return {
        "batches": batches,
        "images": images,
        "mean_batch": round(images / batches, 3) if batches else 0.0,
        "batch_sizes": sizes,
        "queue_wait_ms_mean": round(wait_ms, 2),
    }


# ----------------------------------------------------------------------------- load generation


class Tickets:
    """Numbers the measured requests, thread-safe: ``take()`` gives the next one, or ``None``
    once ``total`` have been given or the deadline (``time.perf_counter`` seconds) has passed
    (``expired`` is then true)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.given = 0
        self.deadline = float("inf")
        self.expired = False
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self.given >= self.total:
                return None
            if time.perf_counter() >= self.deadline:
                self.expired = True
                return None
            self.given += 1
            return self.given - 1


@dataclass
class Outcome:
    """One request: ``status`` (HTTP status code, or the exception's name when no response came)
    and ``seconds`` (wall, the HTTP exchange only)."""

    status: int | str
    seconds: float


def send(http: httpx.Client, secret: str, image_b64: str) -> Outcome:
    """One signed ``POST /v1/embed/image``."""
    body = request_body(image_b64)
    headers = {"Content-Type": "application/json", **signed_headers(secret, "POST", PATH, body)}
    started = time.perf_counter()
    try:
        status: int | str = http.post(PATH, content=body, headers=headers).status_code
    except httpx.HTTPError as error:
        status = type(error).__name__
    return Outcome(status, time.perf_counter() - started)


@dataclass
class Client:
    """One load-generating client (a thread): ``warmup`` unmeasured requests, then it waits at
    ``ready`` and for ``go``, then sends measured requests while ``tickets`` gives numbers."""

    url: str
    secret: str
    images: Sequence[str]
    warmup: int
    tickets: Tickets
    ready: threading.Barrier
    go: threading.Event

    def __call__(self, index: int) -> list[Outcome]:
        outcomes: list[Outcome] = []
        try:
            with httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT_S) as http:
                for count in range(self.warmup):
                    send(http, self.secret, self.images[(index + count) % len(self.images)])
                self.ready.wait(START_TIMEOUT_S)
                self.go.wait()
                while (ticket := self.tickets.take()) is not None:
                    outcomes.append(send(http, self.secret, self.images[ticket % len(self.images)]))
        except BaseException:
            self.ready.abort()  # the others and the coordinator stop waiting for this client
            raise
        return outcomes


def latency_figures(seconds: Sequence[float]) -> dict[str, float]:
    """``mean``, ``p50``, ``p90``, ``p99`` and ``max`` of request latencies, ms (0 when none)."""
    if not seconds:
        return dict.fromkeys(("mean", "p50", "p90", "p99", "max"), 0.0)
    ms = np.asarray(seconds) * 1000
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "mean": round(float(ms.mean()), 1),
        "p50": round(float(p50), 1),
        "p90": round(float(p90), 1),
        "p99": round(float(p99), 1),
        "max": round(float(ms.max()), 1),
    }


@dataclass
class LoadRun:
    """One run: one batcher setting (``batcher`` ``on`` | ``off``) at one client count.

    ``requests``: measured requests sent; ``ok``: of them answered 200; ``failures``: the others
    by status code or exception name; ``seconds``: wall, start signal to last response;
    ``images_per_s``: ok / seconds; ``latency_ms``: see ``latency_figures``; ``batch``: see
    ``batch_figures``; ``stopped_early``: ``max_seconds`` passed before ``requests`` were sent."""

    batcher: str
    clients: int
    requests: int
    ok: int
    failures: dict[str, int]
    seconds: float
    images_per_s: float
    latency_ms: dict[str, float]
    batch: dict[str, Any]
    stopped_early: bool


def load_run(
    url: str,
    secret: str,
    images: Sequence[str],
    *,
    batcher: str,
    clients: int,
    requests: int,
    max_seconds: float,
    warmup: int,
) -> LoadRun:
    """Drive the server at ``url`` with ``clients`` concurrent clients (see the module doc)."""
    tickets = Tickets(requests)
    ready = threading.Barrier(clients + 1)
    go = threading.Event()
    client = Client(url, secret, images, warmup, tickets, ready, go)
    with ThreadPoolExecutor(clients, thread_name_prefix="embed-bench-client") as pool:
        futures = [pool.submit(client, index) for index in range(clients)]
        try:
            ready.wait(START_TIMEOUT_S)
            before = BatchCounters.scrape(url)
        except BaseException:
            ready.abort()
            tickets.deadline = 0.0  # released clients send nothing
            go.set()
            for future in futures:  # a client's own error explains the broken barrier best
                if (error := future.exception()) and not isinstance(error, threading.BrokenBarrierError):
                    raise error from None
            raise
        started = time.perf_counter()
        tickets.deadline = started + max_seconds
        go.set()
        outcomes = [outcome for future in futures for outcome in future.result()]
        seconds = time.perf_counter() - started
    after = BatchCounters.scrape(url)
    ok = [outcome.seconds for outcome in outcomes if outcome.status == 200]
    failures = Counter(str(outcome.status) for outcome in outcomes if outcome.status != 200)
    return LoadRun(
        batcher=batcher,
        clients=clients,
        requests=len(outcomes),
        ok=len(ok),
        failures=dict(failures),
        seconds=round(seconds, 3),
        images_per_s=round(len(ok) / seconds, 2) if seconds > 0 else 0.0,
        latency_ms=latency_figures(ok),
        batch=batch_figures(before, after),
        stopped_early=tickets.expired,
    )


# ----------------------------------------------------------------------------- the bench


def models_with_usable_clip(settings: Settings, say: Callable[[str], None]) -> tuple[EmbedModels, str | None]:
    """The service's models from ``settings``, loaded, and a note when pretrained CLIP weights
    could not be loaded and untrained ones (``SCENEDEX_CLIP__PRETRAINED=none``, the same compute
    cost) are used instead (said through ``say``). Other ``ModelLoadError``s propagate."""
    models = EmbedModels.from_settings(settings)
    note = None
    try:
        models.clip.load()
    except ModelLoadError as error:
        note = (
            f"Pretrained CLIP weights ({models.clip.model_id}) are not available offline here ({error}). "
            f"The bench uses SCENEDEX_CLIP__PRETRAINED={UNTRAINED} instead: untrained random weights, "
            "the same compute cost."
        )
        say(note)
        untrained = settings.clip.model_copy(update={"pretrained": UNTRAINED})
        models = EmbedModels.from_settings(settings.model_copy(update={"clip": untrained}))
    models.load()
    return models, note


def app_settings(
    settings: Settings, *, secret: str, enabled: bool, max_wait_ms: float, max_batch: int
) -> Settings:
    """``settings`` with the bench's signing secret and batcher."""
    embed = settings.embed.model_copy(
        update={
            "hmac_secret": SecretStr(secret),
            "batcher_enabled": enabled,
            "batcher_max_wait_ms": max_wait_ms,
            "batcher_max_batch": max_batch,
        }
    )
    return settings.model_copy(update={"embed": embed})


@dataclass
class EmbedBenchReport:
    """Every figure of one ``embed-bench``; ``to_dict()`` is what ``--json`` prints."""

    machine: dict[str, Any]
    model: dict[str, Any]
    images: dict[str, Any]
    settings: dict[str, Any]
    runs: list[LoadRun] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_embed_bench(
    settings: Settings,
    *,
    clients: int | Sequence[int] = (8, 16),
    requests: int = 300,
    max_seconds: float = 30.0,
    max_wait_ms: float | None = None,
    max_batch: int | None = None,
    warmup: int = 2,
    images: int = 16,
    real_media: Path | None = None,
    models: EmbedModels | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Load-test the embedding service on loopback, batcher on and off (see the module doc).

    - ``clients``: concurrent clients per run; several counts give a run pair per count.
    - ``requests``: measured requests per run (each one image), all clients together.
    - ``max_seconds``: per run, wall seconds after which no new request is sent (requests in
      flight finish; the run is then ``stopped_early``).
    - ``max_wait_ms``, ``max_batch``: the batcher's (default ``settings.embed``'s).
    - ``warmup``: unmeasured requests per client before each run.
    - ``images``: distinct keyframes the requests cycle through.
    - ``models``: loaded models to serve (default: from ``settings``, with untrained CLIP
      weights when the pretrained ones are not available, said through ``say``).

    Returns ``EmbedBenchReport.to_dict()``: ``machine`` (``scenedex.tools.machine.machine()``
    and ``load_1m`` [start, end]); ``model`` {clip_model_id, precision, device, note};
    ``images`` {distinct, width, height, kib_mean (JPEG), body_kib_mean (request body)};
    ``settings`` {clients, requests, max_seconds, max_wait_ms, max_batch, warmup}; ``runs``
    (``LoadRun`` dicts, batcher on then off per client count); ``seconds`` (wall, whole bench);
    ``stopped_early`` (any run); ``warnings`` (failed requests, batches that do not add up)."""
    counts = (clients,) if isinstance(clients, int) else tuple(clients)
    if not counts or min(counts) < 1 or requests < 1 or max_seconds <= 0:
        raise ValueError("clients and requests must be >= 1 and max_seconds > 0")
    started, load_at_start = time.perf_counter(), os.getloadavg()[0]
    note = None
    if models is None:
        models, note = models_with_usable_clip(settings, say)
    wait_ms = settings.embed.batcher_max_wait_ms if max_wait_ms is None else max_wait_ms
    batch = settings.embed.batcher_max_batch if max_batch is None else max_batch
    say(f"building {images} keyframes ({FRAME_SIZE[0]}x{FRAME_SIZE[1]} JPEG)...")
    frames = keyframes_b64(images, real_media)
    jpeg_kib = [len(frame) * 3 / 4 / 1024 for frame in frames]
    report = EmbedBenchReport(
        machine=machine(),
        model={
            "clip_model_id": models.clip.model_id,
            "precision": str(models.clip.precision),
            "device": str(models.clip.device),
            "note": note,
        },
        images={
            "distinct": images,
            "width": FRAME_SIZE[0],
            "height": FRAME_SIZE[1],
            "kib_mean": round(sum(jpeg_kib) / len(jpeg_kib), 1),
            "body_kib_mean": round(sum(len(request_body(f)) for f in frames) / len(frames) / 1024, 1),
        },
        settings={
            "clients": list(counts),
            "requests": requests,
            "max_seconds": max_seconds,
            "max_wait_ms": wait_ms,
            "max_batch": batch,
            "warmup": warmup,
        },
    )
    secret = secrets.token_urlsafe(32)
    with ExitStack() as stack:
        urls = {
            name: stack.enter_context(
                serve_in_thread(
                    create_embed_app(
                        app_settings(
                            settings, secret=secret, enabled=enabled, max_wait_ms=wait_ms, max_batch=batch
                        ),
                        models,
                    )
                )
            )
            for name, enabled in (("on", True), ("off", False))
        }
        for count, name in _run_order(counts):
            say(f"batcher {name}, {count} clients, {requests} requests (at most {max_seconds:g} s)...")
            run = load_run(
                urls[name],
                secret,
                frames,
                batcher=name,
                clients=count,
                requests=requests,
                max_seconds=max_seconds,
                warmup=warmup,
            )
            report.runs.append(run)
            report.warnings.extend(_run_warnings(run))
    report.seconds = round(time.perf_counter() - started, 3)
    report.stopped_early = any(run.stopped_early for run in report.runs)
    report.machine["load_1m"] = [round(load_at_start, 2), round(os.getloadavg()[0], 2)]
    return report.to_dict()


def _run_order(counts: Sequence[int]) -> Iterator[tuple[int, str]]:
    """Per client count, batcher on then off (adjacent, so both see the same machine load)."""
    for count in counts:
        yield count, "on"
        yield count, "off"


def _run_warnings(run: LoadRun) -> list[str]:
    where = f"batcher {run.batcher}, {run.clients} clients"
    warnings = []
    if run.failures:
        warnings.append(f"{where}: {run.requests - run.ok} of {run.requests} requests failed {run.failures}")
    elif run.batch["images"] != run.ok:
        warnings.append(
            f"{where}: the server's batches hold {run.batch['images']} images, not the {run.ok} "
            "requests answered (another client of this process?)"
        )
    return warnings
