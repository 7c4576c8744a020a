"""The autoscaler simulation (``scenedex.tools.autoscale_sim``) on the recorded backlog
(``tests/fixtures/backlog_burst.json``, a real worker here): the figures docs/SCALING.md quotes,
and the rules on small hand-made workloads. Milliseconds to a second."""

from __future__ import annotations

import json
from pathlib import Path

from scenedex.tools.autoscale_sim import Policy, run, simulate

RECORDING = Path(__file__).resolve().parents[1] / "fixtures" / "backlog_burst.json"


def test_a_message_longer_than_the_cooldown_keeps_its_pod_on_the_backlog_only() -> None:
    messages = [(0.0, 400.0)]  # one 400 s item: the list is empty once it is fetched
    ours = simulate(messages, Policy("backlog", boot_s=10))
    assert (ours.drain_s, ours.pods_stopped_running, ours.messages_cut) == (410, 0, 0)
    drained = simulate(messages, Policy("list", boot_s=10))  # the manifests' grace: drains
    assert drained.pods_stopped_running == 1 and drained.messages_cut == 0 and drained.drain_s == 410
    cut = simulate(messages, Policy("list", boot_s=10, grace_s=30), limit_s=3000)
    assert cut.drain_s is None and cut.messages_cut >= 5  # cut after 330 s, every time


def test_the_recorded_burst_as_docs_scaling_reports_it() -> None:
    rows = run(json.loads(RECORDING.read_text()), copies=10, stretches=[1.0, 30.0])
    ours = [r for r in rows if r["scaler"] == "backlog (scenedex)"]
    assert all(r["pods_stopped_running"] == 0 and r["messages_cut"] == 0 for r in ours)
    assert all(r["drain_s"] is not None for r in ours)
    short_list = [r for r in rows if r["scaler"] == "Redis list, grace 30 s" and r["stretch"] == 30.0]
    assert all(r["messages_cut"] > 0 for r in short_list)
    assert any(r["drain_s"] is None for r in short_list)
