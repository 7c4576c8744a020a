"""``scenedex scheduler``: periodic batch reindexing and the job sweeper, one leader at a time.

Any number of scheduler processes may run; one acts. Leadership is a lease in Redis
(``RedisLease``): ``SET key token NX PX lease``, renewed by its holder every third of the lease
with a compare-and-set script, so a holder that dies (or hangs) loses it within ``lease_ms``
and another instance takes over on its next tick. A holder that stops cleanly releases it.

Each tick of the leader:

1. sends ``sweep_jobs`` once ``sweep_interval_s`` has passed (re-sends lost job messages);
2. finds the latest cron period (the last fire time at or before now, UTC); a period older than
   ``misfire_grace_s`` is not run (a scheduler started at 10:00 does not run the 03:00 job);
3. claims the period with ``SET scenedex:scheduler:period:<time> NX``: a period is claimed
   once, whichever instance ticks, however often (so two leaders during a lease hand-over
   cannot both create its job);
4. enqueues a non-forced ``all`` job (trigger ``scheduler``) with
   the application's ``app.reprocess.enqueue``, the API's code path; an active ``all`` job
   (``ActiveJobError``) covers the period and none is created. If enqueuing fails otherwise
   (database down), the claim is dropped so the next tick tries again.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from croniter import croniter  # type: ignore[import-untyped]

from scenedex.application.app import Application
from scenedex.domain.jobs import ActiveJobError, Job, JobTrigger
from scenedex.domain.model import utcnow
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.settings import SchedulerSettings

if TYPE_CHECKING:
    from scenedex.application import JobRuntime

log = logging.getLogger("scenedex.scheduler")

LEADER_KEY = "scenedex:scheduler:leader"
PERIOD_KEY = "scenedex:scheduler:period:"

_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
if not holder then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class SchedulerConfigError(ValueError):
    """The scheduler settings are unusable (e.g. an invalid cron expression)."""


class RedisLease:
    """A lease on ``key`` held under ``token`` for ``lease_ms`` at a time.

    ``hold()`` takes the lease if free or renews it if ours, atomically (one Lua script);
    ``release()`` deletes it only if it is still ours. Both raise redis-py's errors when Redis
    is unreachable (the caller then counts as not holding it).
    """

    def __init__(self, client: Any, key: str, lease_ms: int, token: str | None = None) -> None:
        self.key = key
        self.lease_ms = lease_ms
        self.token = token or uuid.uuid4().hex
        self._hold = client.register_script(_HOLD)
        self._release = client.register_script(_RELEASE)

    def hold(self) -> bool:
        """True when this token holds the lease for the next ``lease_ms``."""
        return bool(self._hold(keys=[self.key], args=[self.token, self.lease_ms]))

    def release(self) -> bool:
        """Give the lease up (if still ours) so another holder need not wait for its expiry."""
        return bool(self._release(keys=[self.key], args=[self.token]))


@dataclass(frozen=True)
class TickResult:
    """What one tick did: ``outcome`` is ``standby`` (not the leader), ``disabled``,
    ``not_due`` (the latest period is past its grace), ``done`` (the period was claimed
    before), ``active_job`` (an ``all`` job was running: ``job_id``) or ``created``
    (``job_id``). ``period``: the cron period considered (UTC)."""

    outcome: str
    period: datetime | None = None
    job_id: uuid.UUID | None = None
    swept: bool = False

    @property
    def leader(self) -> bool:
        return self.outcome != "standby"


class Scheduler:
    """One scheduler instance on ``runtime`` (a ``JobRuntime`` built with services, passed in
    by the entry point). ``enqueue`` defaults to the enqueue use case with trigger
    ``scheduler`` under the services' spec; ``send_sweep`` to sending ``sweep_jobs``. Raises
    ``SchedulerConfigError`` for an invalid cron expression."""

    def __init__(
        self,
        settings: SchedulerSettings,
        client: Any,
        runtime: JobRuntime,
        *,
        enqueue: Callable[[ReprocessRequest], Job] | None = None,
        send_sweep: Callable[[], Any] | None = None,
        instance_id: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not croniter.is_valid(settings.cron):
            raise SchedulerConfigError(f"SCENEDEX_SCHEDULER__CRON: invalid cron expression {settings.cron!r}")
        self.settings = settings
        self.client = client
        self.instance_id = instance_id or f"scheduler-{uuid.uuid4().hex[:12]}"
        self.lease = RedisLease(client, LEADER_KEY, settings.lease_ms, token=self.instance_id)
        self.runtime = runtime
        self.app = Application(runtime.services, runtime)
        self._enqueue = enqueue or self._enqueue_reprocess
        self._send_sweep = send_sweep or runtime.sender.send_sweep
        self._clock = clock
        self._last_sweep: float | None = None
        self.is_leader = False

    @property
    def tick_interval_s(self) -> float:
        """Seconds between ticks: a third of the lease, so two renewals can fail before it ends."""
        return self.settings.lease_ms / 3000

    def period(self, now: datetime) -> datetime:
        """The latest fire time at or before ``now`` (UTC, whole seconds)."""
        base = now.replace(microsecond=0) + timedelta(seconds=1)
        fire_time: datetime = croniter(self.settings.cron, base).get_prev(datetime)
        return fire_time

    def tick(self, now: datetime | None = None) -> TickResult:
        """One step: hold the lease, then (as leader) sweep and run the current period once.
        Raises redis-py or database errors (``run`` logs them and goes on)."""
        now = now or self._clock()
        try:
            self.is_leader = self.lease.hold()
        except Exception:
            self.is_leader = False
            raise
        if not self.is_leader:
            return TickResult("standby")
        swept = self._maybe_sweep()
        if not self.settings.enabled:
            return TickResult("disabled", swept=swept)
        period = self.period(now)
        if (now - period).total_seconds() > self.settings.misfire_grace_s:
            return TickResult("not_due", period, swept=swept)
        key = PERIOD_KEY + period.isoformat()
        ttl_s = int(max(2 * self.settings.misfire_grace_s, 86_400))
        if not self.client.set(key, self.instance_id, nx=True, ex=ttl_s):
            return TickResult("done", period, swept=swept)
        try:
            job = self._enqueue(ReprocessRequest(ReprocessScope.ALL))
        except ActiveJobError as active:
            log.info("period %s: not enqueued, %s", period.isoformat(), active)
            return TickResult("active_job", period, active.active_job_id, swept=swept)
        except Exception:
            self.client.delete(key)  # let the next tick try this period again
            raise
        self.client.set(key, str(job.id), xx=True, keepttl=True)
        log.info("period %s: reprocess job %s enqueued (scope all)", period.isoformat(), job.id)
        return TickResult("created", period, job.id, swept=swept)

    def run(self, stop: threading.Event, *, release: bool = True) -> None:
        """Tick every ``tick_interval_s`` until ``stop`` is set; errors of a tick are logged
        and the next tick goes on. Releases the lease at the end unless ``release`` is False
        (tests use that to play a holder that died)."""
        log.info(
            "scheduler %s: cron %r (UTC), lease %d ms, sweep every %s s",
            self.instance_id,
            self.settings.cron,
            self.settings.lease_ms,
            self.settings.sweep_interval_s,
        )
        was_leader = False
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception as error:
                    log.error("scheduler tick failed: %s", error)
                if self.is_leader != was_leader:
                    log.info(
                        "scheduler %s is %s", self.instance_id, "leader" if self.is_leader else "standby"
                    )
                    was_leader = self.is_leader
                stop.wait(self.tick_interval_s)
        finally:
            if release:
                try:
                    self.lease.release()
                except Exception as error:
                    log.warning("could not release the scheduler lease: %s", error)

    def _maybe_sweep(self) -> bool:
        interval = self.settings.sweep_interval_s
        if interval <= 0:
            return False
        now = time.monotonic()
        if self._last_sweep is not None and now - self._last_sweep < interval:
            return False
        self._send_sweep()
        self._last_sweep = now
        return True

    def _enqueue_reprocess(self, request: ReprocessRequest) -> Job:
        return self.app.reprocess.enqueue(request, JobTrigger.SCHEDULER).job


def build_scheduler(runtime: JobRuntime, **options: Any) -> Scheduler:
    """A scheduler on ``runtime`` (its settings' ``scheduler`` group; Redis from their
    ``redis_url``, where the runtime's broker sends jobs and sweeps too); ``options`` go to
    ``Scheduler``. Raises ``SchedulerConfigError`` for an invalid cron expression."""
    import redis

    settings = runtime.settings
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5.0, socket_timeout=5.0)
    return Scheduler(settings.scheduler, client, runtime, **options)
