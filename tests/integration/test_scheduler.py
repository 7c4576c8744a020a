"""The scheduler against real Redis (lease, period records, sweeper messages) and Postgres (jobs
through ``scenedex.services.enqueue.enqueue_reprocess``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from scenedex.domain.jobs import JobTrigger
from scenedex.domain.request import ReprocessScope
from scenedex.settings import SchedulerSettings
from scenedex.worker.scheduler import LEADER_KEY, Scheduler, SchedulerConfigError
from tests.job_harness import Harness

pytestmark = pytest.mark.integration

NIGHTLY_3AM = datetime(2026, 11, 2, 3, 0, 5, tzinfo=UTC)


def scheduler_jobs(harness: Harness) -> list[Any]:
    return harness.store.list(trigger=JobTrigger.SCHEDULER)


def make(harness: Harness, name: str, **settings: Any) -> Scheduler:
    options: dict[str, Any] = {"cron": "0 3 * * *", "lease_ms": 1000, "sweep_interval_s": 0} | settings
    return Scheduler(
        SchedulerSettings(**options),
        redis.Redis.from_url(harness.runtime.settings.redis_url),
        harness.runtime,
        instance_id=name,
    )


class Running:
    """A scheduler's ``run`` loop in a thread; ``kill`` stops it as if it died (the lease is
    not released), ``stop`` as a clean shutdown does."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=scheduler.run, args=(self.stopping,), daemon=True)
        self.thread.start()

    def kill(self) -> None:
        self.scheduler.lease.release = lambda: False  # a dead process releases nothing
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)


@pytest.fixture
def launch() -> Iterator[Any]:
    """Start schedulers in threads; all are stopped at the end of the test, whatever happens."""
    started: list[Running] = []

    def start(scheduler: Scheduler) -> Running:
        started.append(Running(scheduler))
        return started[-1]

    yield start
    for running in started:
        running.stop()


def test_two_schedulers_one_leader_and_takeover_after_the_lease(harness: Harness, launch: Any) -> None:
    sweeps = {"a": 0, "b": 0}
    schedulers = {}
    for name in ("a", "b"):
        schedulers[name] = make(harness, name, cron="* * * * *", sweep_interval_s=0.2)
        schedulers[name]._send_sweep = lambda name=name: sweeps.__setitem__(name, sweeps[name] + 1)
    runs = {name: launch(s) for name, s in schedulers.items()}

    leaders = set()
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        now_leading = {name for name, s in schedulers.items() if s.is_leader}
        assert len(now_leading) <= 1, "two leaders at once"
        leaders |= now_leading
        time.sleep(0.02)
    [leader] = leaders
    standby = "b" if leader == "a" else "a"
    [job] = scheduler_jobs(harness)
    assert job.request.scope is ReprocessScope.ALL and not job.request.force
    assert sweeps[leader] >= 2 and sweeps[standby] == 0

    runs[leader].kill()  # died: the lease is still held until it expires
    killed_at = time.monotonic()
    assert harness.redis.get(LEADER_KEY) == leader.encode()
    while not schedulers[standby].is_leader and time.monotonic() - killed_at < 30:
        time.sleep(0.01)
    took_over_after = time.monotonic() - killed_at
    lease_s, tick_s = 1.0, schedulers[standby].tick_interval_s
    assert schedulers[standby].is_leader
    # Not before the lease expires (it was renewed at most a third of it before the kill); the
    # upper bound only says "at a later tick": on a loaded 2-core machine a tick can be seconds
    # late, so it is not a timing claim (issue 27: no wall-clock bound tighter than the load).
    assert lease_s * 2 / 3 - 0.05 < took_over_after < 30, took_over_after
    print(f"standby took over {took_over_after:.2f} s after the kill (lease {lease_s} s, tick {tick_s} s)")
    time.sleep(2 * tick_s)
    assert len(scheduler_jobs(harness)) == 1  # the period was run once, by the first leader
    assert sweeps[standby] >= 1

    runs[standby].stop()  # a clean stop releases the lease at once
    assert harness.redis.get(LEADER_KEY) is None


def test_a_period_creates_one_job_and_never_one_beside_an_active_job(harness: Harness) -> None:
    first = make(harness, "first")
    created = first.tick(NIGHTLY_3AM)
    assert created.outcome == "created" and created.period == NIGHTLY_3AM.replace(second=0)
    harness.store.cancel(created.job_id)  # over: only the period record can stop a second job now

    assert first.tick(NIGHTLY_3AM + timedelta(minutes=30)).outcome == "done"
    first.lease.release()
    second = make(harness, "second")  # another instance sees the same record
    assert second.tick(NIGHTLY_3AM + timedelta(minutes=40)).outcome == "done"
    assert first.tick(NIGHTLY_3AM).outcome == "standby"
    assert len(scheduler_jobs(harness)) == 1

    next_night = second.tick(NIGHTLY_3AM + timedelta(days=1))
    assert next_night.outcome == "created"
    blocked = second.tick(NIGHTLY_3AM + timedelta(days=2))  # last night's job still runs
    assert blocked.outcome == "active_job" and blocked.job_id == next_night.job_id
    assert second.tick(NIGHTLY_3AM + timedelta(days=3, hours=7)).outcome == "not_due"  # past the grace
    jobs = scheduler_jobs(harness)
    assert [j.id for j in jobs] == [next_night.job_id, created.job_id]
    assert all(j.request.scope is ReprocessScope.ALL and not j.request.force for j in jobs)


def test_a_failed_enqueue_leaves_the_period_to_the_next_tick(harness: Harness) -> None:
    scheduler = make(harness, "flaky")
    real_enqueue = scheduler._enqueue

    def broken(request: Any) -> Any:
        raise ConnectionError("database down")

    scheduler._enqueue = broken
    with pytest.raises(ConnectionError):
        scheduler.tick(NIGHTLY_3AM)
    scheduler._enqueue = real_enqueue
    assert scheduler.tick(NIGHTLY_3AM + timedelta(seconds=10)).outcome == "created"
    assert len(scheduler_jobs(harness)) == 1


def test_the_leader_sends_the_sweeper_on_its_interval(harness: Harness) -> None:
    scheduler = make(harness, "sweeper", enabled=False, sweep_interval_s=0.3)
    assert scheduler.tick().swept and scheduler.tick().outcome == "disabled"
    assert not scheduler.tick().swept
    time.sleep(0.35)
    assert scheduler.tick().swept
    messages = harness.redis.hvals("dramatiq:reprocessing.msgs")
    assert len(messages) == 2 and all(b'"actor_name":"sweep_jobs"' in m for m in messages)
    assert scheduler_jobs(harness) == []


def test_invalid_cron_is_refused(harness: Harness) -> None:
    with pytest.raises(SchedulerConfigError, match="invalid cron"):
        make(harness, "bad", cron="every night")
