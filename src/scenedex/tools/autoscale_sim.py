"""Replay a recorded backlog through KEDA's and the HPA's scaling rules: scenedex's backlog metric
against KEDA's Redis list scaler (docs/SCALING.md, "Simulation").

    python -m scenedex.tools.autoscale_sim tests/fixtures/backlog_burst.json --copies 10 --stretch 1 30

The recording (``tests/record_backlog.py``, a real ``scenedex worker`` here) gives the messages of
each queue: when they were sent and how long each ran. ``--copies N`` sends each N times (a burst N
times larger), ``--stretch F`` runs each F times longer (videos with F times the scenes: a video
item's time grows with its scenes). Each queue is one Deployment, simulated second by second:

- pods: ``slots`` messages at once (processes x threads), ready ``boot_s`` after they are created
  (the recording's worker boot), fetching the oldest waiting message into a free slot;
- every ``polling_s`` KEDA reads the metric: ``backlog`` (scenedex_queue_backlog: waiting +
  running) or ``list`` (the Redis list: waiting alone). Above ``activation`` it is active; at 0
  replicas it scales to 1. Not active for ``cooldown_s`` with ``min_replicas`` 0: scaled to 0;
- the HPA (replicas >= 1): ``desired = ceil(metric / threshold)`` in [1, max]; up at once (100 %
  or 4 pods per poll, whichever is more); down to the highest recommendation of the last
  ``window_s``, at most ``down_percent`` of the pods per ``down_period_s``;
- a removed pod (the newest first, as a ReplicaSet picks among ready pods) fetches nothing more and
  finishes its running messages; after ``grace_s`` those still running are cut (their work lost)
  and go back to the head of the queue (dramatiq's requeue).

Figures per run: seconds until every message is done, worker-minutes (pods alive, booting and
terminating included, until the deployment is back at its minimum), peak replicas, pods removed
while they ran messages, messages cut.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEDA_POLLING_S = 15
"""deploy/k8s/base/scaling.yaml: pollingInterval."""
KEDA_COOLDOWN_S = 300
"""scaling.yaml: cooldownPeriod (KEDA's default too)."""
HPA_WINDOW_S = 300
"""scaling.yaml: scaleDown stabilizationWindowSeconds (the HPA's default too)."""
HPA_DOWN_PERIOD_S = 60
HPA_DOWN_PERCENT = 50
"""scaling.yaml: scaleDown policy, at most half the pods per 60 s."""
GRACE_S = 3660
"""workers.yaml: terminationGracePeriodSeconds (above the 1 h actor time limit)."""
KUBERNETES_DEFAULT_GRACE_S = 30
"""A pod's terminationGracePeriodSeconds when the manifest does not set it."""
MIN_REPLICAS = {"embeddings": 1, "reprocessing": 0}
"""scaling.yaml: minReplicaCount per worker Deployment."""


@dataclass(frozen=True)
class Policy:
    """One autoscaler configuration (``metric``: ``backlog`` or ``list``)."""

    metric: str
    threshold: float = 2
    activation: float = 0
    min_replicas: int = 0
    max_replicas: int = 20
    polling_s: int = KEDA_POLLING_S
    cooldown_s: int = KEDA_COOLDOWN_S
    window_s: int = HPA_WINDOW_S
    down_period_s: int = HPA_DOWN_PERIOD_S
    down_percent: int = HPA_DOWN_PERCENT
    grace_s: int = GRACE_S
    slots: int = 2
    boot_s: float = 30.0


@dataclass
class _Pod:
    created: float
    ready_at: float
    running: list[list[float]] = field(default_factory=list)  # [remaining s, duration s]
    stopping_at: float | None = None


@dataclass(frozen=True)
class Outcome:
    """What one run did: ``drain_s`` (last message done, s from the first sent; None: not done
    within the run's limit), ``worker_minutes``,
    ``peak_replicas``, ``pods_stopped_running`` (pods removed while they ran messages),
    ``messages_cut`` (messages killed with their pod and run again), ``replicas``: (second,
    replicas) at each change."""

    drain_s: float | None
    worker_minutes: float
    peak_replicas: int
    pods_stopped_running: int
    messages_cut: int
    replicas: list[tuple[int, int]]


def simulate(messages: list[tuple[float, float]], policy: Policy, limit_s: int = 20_000) -> Outcome:
    """Run ``messages`` ((sent s, duration s), one queue) under ``policy``, one-second steps, for
    at most ``limit_s`` seconds (then ``drain_s`` is None: a message cut again on every run never
    finishes)."""
    pending = deque(sorted(messages))
    waiting: deque[float] = deque()
    pods: list[_Pod] = []
    recommendations: deque[tuple[int, int]] = deque()
    last_active, last_down = -math.inf, -math.inf
    stopped_running = cut = 0
    worker_s = 0.0
    history: list[tuple[int, int]] = [(0, 0)]
    done = 0
    total = len(messages)
    drained: int | None = None
    for now in range(limit_s):
        while pending and pending[0][0] <= now:
            waiting.append(pending.popleft()[1])
        live = [p for p in pods if p.stopping_at is None]
        if now % policy.polling_s == 0:
            running = sum(len(p.running) for p in pods)
            metric = len(waiting) + (running if policy.metric == "backlog" else 0)
            target = _scale(policy, metric, len(live), now, recommendations, last_active, last_down)
            if metric > policy.activation:
                last_active = now
            if target < len(live):
                last_down = now
                for pod in sorted(live, key=lambda p: p.created, reverse=True)[: len(live) - target]:
                    pod.stopping_at = now
                    stopped_running += bool(pod.running)
            elif target > len(live):
                pods += [_Pod(now, now + policy.boot_s) for _ in range(target - len(live))]
            if target != history[-1][1]:
                history.append((now, target))
        for pod in pods:
            worker_s += 1
            if pod.stopping_at is None and pod.ready_at <= now:
                while waiting and len(pod.running) < policy.slots:
                    duration = waiting.popleft()
                    pod.running.append([duration, duration])
            for slot in pod.running:
                slot[0] -= 1
            done += sum(1 for slot in pod.running if slot[0] <= 0)
            pod.running = [slot for slot in pod.running if slot[0] > 0]
            if pod.stopping_at is not None and pod.running and now - pod.stopping_at >= policy.grace_s:
                cut += len(pod.running)
                waiting.extendleft(slot[1] for slot in pod.running)
                pod.running = []
        pods = [p for p in pods if p.stopping_at is None or p.running]
        if done == total and not pending:
            drained = now + 1 if drained is None else drained
            if len(pods) <= policy.min_replicas:
                break
    return Outcome(drained, worker_s / 60, max(n for _, n in history), stopped_running, cut, history)


def _scale(
    policy: Policy,
    metric: float,
    current: int,
    now: int,
    recommendations: deque[tuple[int, int]],
    last_active: float,
    last_down: float,
) -> int:
    """KEDA's activation and the HPA's rules: the replicas after this poll."""
    if metric > policy.activation:
        if current == 0:
            current = 1
    elif (
        current > policy.min_replicas and now - last_active >= policy.cooldown_s and policy.min_replicas == 0
    ):
        recommendations.clear()
        return 0
    if current == 0:
        return 0
    desired = max(1, policy.min_replicas, min(policy.max_replicas, math.ceil(metric / policy.threshold)))
    recommendations.append((now, desired))
    while recommendations and recommendations[0][0] <= now - policy.window_s:
        recommendations.popleft()
    if desired > current:
        return min(desired, current + max(current, 4))
    stable = max(n for _, n in recommendations)
    if stable < current and now - last_down >= policy.down_period_s:
        return max(stable, current - max(1, math.ceil(current * policy.down_percent / 100)))
    return current


def workload(recording: dict[str, Any], queue: str, copies: int, stretch: float) -> list[tuple[float, float]]:
    """(sent s, duration s) of the queue's recorded messages: the uploads all sent at 0 (the
    burst), the planner at 0, the video items when the planner's run ended; each ``copies``
    times, ``stretch`` times as long."""
    found = []
    planned = next((m["end_s"] - m["start_s"] for m in recording["messages"] if m["kind"] == "planner"), 0.0)
    for message in recording["messages"]:
        if message["queue"] != queue:
            continue
        duration = max(1.0, (message["end_s"] - message["start_s"]) * stretch)
        sent = planned * stretch if message["kind"] == "reprocess_video" else 0.0
        found += [(sent, duration)] * copies
    return found


def run(recording: dict[str, Any], copies: int, stretches: list[float]) -> list[dict[str, Any]]:
    """Every queue x stretch x policy of the comparison: scenedex's backlog, the Redis list with the
    manifests' grace period, the Redis list with Kubernetes' default grace period."""
    boot = float(recording["worker"]["boot_s"])
    slots = recording["worker"]["processes"] * recording["worker"]["threads"]
    rows = []
    for stretch in stretches:
        for queue, low in MIN_REPLICAS.items():
            messages = workload(recording, queue, copies, stretch)
            policies = {
                "backlog (scenedex)": Policy("backlog", min_replicas=low, boot_s=boot, slots=slots),
                "Redis list, grace 3660 s": Policy("list", min_replicas=low, boot_s=boot, slots=slots),
                "Redis list, grace 30 s": Policy(
                    "list", min_replicas=low, boot_s=boot, slots=slots, grace_s=KUBERNETES_DEFAULT_GRACE_S
                ),
            }
            for name, policy in policies.items():
                outcome = simulate(messages, policy)
                rows.append(
                    {
                        "queue": queue,
                        "messages": len(messages),
                        "stretch": stretch,
                        "scaler": name,
                        "drain_s": outcome.drain_s,
                        "worker_minutes": round(outcome.worker_minutes, 1),
                        "peak_replicas": outcome.peak_replicas,
                        "pods_stopped_running": outcome.pods_stopped_running,
                        "messages_cut": outcome.messages_cut,
                        "replicas": outcome.replicas,
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("recording", type=Path)
    parser.add_argument("--copies", type=int, default=10, help="send each recorded message this many times")
    parser.add_argument("--stretch", type=float, nargs="+", default=[1.0], help="duration factors")
    parser.add_argument("--json", action="store_true", help="one JSON object per row, replicas included")
    args = parser.parse_args(argv)
    rows = run(json.loads(args.recording.read_text()), args.copies, args.stretch)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    columns = (
        "queue",
        "messages",
        "stretch",
        "scaler",
        "drain s",
        "worker-min",
        "peak pods",
        "pods stopped running",
        "cut",
    )
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for r in rows:
        cells: tuple[Any, ...] = (
            r["queue"],
            r["messages"],
            f"x{r['stretch']:g}",
            r["scaler"],
            r["drain_s"] or "never",
        )
        cells += (r["worker_minutes"], r["peak_replicas"], r["pods_stopped_running"], r["messages_cut"])
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
