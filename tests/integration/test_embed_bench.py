"""``scenedex embed-bench`` as a user runs it, with tiny counts: the real models (CLIP with
explicitly untrained weights) behind two loopback servers, batcher on and off; and the bench's
own bookkeeping (request tickets, batch histogram deltas) without models."""

from __future__ import annotations

import time
from typing import Any

import pytest

from scenedex.tools.embed_bench import BatchCounters, Tickets, batch_figures
from tests.conftest import cli_json

KEYS = {"machine", "model", "images", "settings", "runs", "seconds", "stopped_early", "warnings"}
RUN_KEYS = {
    "batcher", "clients", "requests", "ok", "failures", "seconds", "images_per_s", "latency_ms", "batch",
    "stopped_early",
}  # fmt: skip
BATCH_KEYS = {"batches", "images", "mean_batch", "batch_sizes", "queue_wait_ms_mean"}


def embed_bench(*args: str) -> dict[str, Any]:
    # The bench measures CLIP itself: ViT-B-32, not cli_json's tiny test architecture.
    report: dict[str, Any] = cli_json("embed-bench", *args, SCENEDEX_CLIP__MODEL="ViT-B-32")
    return report


@pytest.mark.integration
@pytest.mark.models
def test_concurrent_clients_share_batches_only_with_the_batcher_on() -> None:
    # 4 clients keep 4 requests in flight: while one batch runs (tens of ms or more) the others
    # queue, and a 40 ms wait gathers them even on a busy 2-core machine. Off, every request is
    # its own batch by construction.
    report = embed_bench(
        "--clients", "4", "--requests", "12", "--max-seconds", "120", "--max-wait-ms", "40",
        "--max-batch", "32",
    )  # fmt: skip
    assert set(report) == KEYS and report["warnings"] == [] and not report["stopped_early"]
    assert (
        report["model"]["clip_model_id"] == "open_clip:ViT-B-32:untrained" and report["model"]["note"] is None
    )
    assert report["images"]["width"] == 1280 and 100 < report["images"]["kib_mean"] < 300
    assert report["settings"]["max_wait_ms"] == 40 and report["settings"]["clients"] == [4]
    runs = {(run["clients"], run["batcher"]): run for run in report["runs"]}
    assert list(runs) == [(4, "on"), (4, "off")]
    for run in runs.values():
        assert set(run) == RUN_KEYS and set(run["batch"]) == BATCH_KEYS
        assert run["requests"] == run["ok"] == 12 and run["failures"] == {} and not run["stopped_early"]
        latency = run["latency_ms"]
        assert 0 < latency["p50"] <= latency["p99"] <= latency["max"] and run["images_per_s"] > 0
        assert run["batch"]["images"] == 12  # the server saw exactly the measured requests
    on, off = runs[4, "on"]["batch"], runs[4, "off"]["batch"]
    assert on["mean_batch"] > 1 and on["batches"] < 12
    assert off["mean_batch"] == 1 and off["batches"] == 12 and off["batch_sizes"] == {"<=1": 12}


def test_tickets_stop_at_the_total_or_the_deadline() -> None:
    tickets = Tickets(3)
    assert [tickets.take() for _ in range(4)] == [0, 1, 2, None] and not tickets.expired
    late = Tickets(3)
    late.deadline = time.perf_counter() - 0.001
    assert late.take() is None and late.expired and late.given == 0


def test_batch_figures_are_deltas_between_two_scrapes() -> None:
    before = BatchCounters(
        batches=5, images=5, buckets={"1.0": 5, "2.0": 5, "4.0": 5, "+Inf": 5}, wait_seconds=1, waits=5
    )
    after = BatchCounters(
        batches=9, images=15, buckets={"1.0": 6, "2.0": 7, "4.0": 9, "+Inf": 9}, wait_seconds=1.2, waits=15
    )
    figures = batch_figures(before, after)
    assert figures == {
        "batches": 4,
        "images": 10,
        "mean_batch": 2.5,
        "batch_sizes": {"<=1": 1, "<=2": 1, "<=4": 2},
        "queue_wait_ms_mean": 20.0,
    }
