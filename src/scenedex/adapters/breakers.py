"""Circuit breakers, one per dependency, shared by every worker process through Redis.

The pattern is Nygard's (*Release It!*, 2007; Fowler, "CircuitBreaker", 2014): **closed** (work
runs; dependency errors are counted), **open** (``failure_threshold`` errors within
``failure_window_s``: work that needs the dependency is held, nothing is sent to it),
**half-open** (``open_s`` after opening, one process probes the dependency's own health call:
an answer closes the breaker, a failure opens it again for twice as long, up to
``max_open_s``). Here the half-open trial is that probe, not a real item, so an item is never
the one that finds the dependency still down.

State lives in Redis under ``scenedex:breaker:<name>:*`` so that one worker seeing the
embedding service down stops every other worker from sending to it:

- ``:open``: JSON ``{"opened_at", "retry_at", "wait_s", "last_error"}`` (epoch seconds) while
  the breaker is open; absent when it is closed;
- ``:failures``: the error count of the current window (``INCR``, expiring after the window);
- ``:probe``: the lock of the process probing it now (``SET NX PX``), which makes it half-open.

Every transition is one atomic Redis command (``SET NX`` opens once, ``DEL`` closes), so racing
workers at worst count one extra failure. Redis's own breaker cannot live in the Redis it
guards: it is kept in the process (``LocalKeyValue``), and when Redis is down the shared
breakers read as closed (a worker that cannot reach Redis cannot fetch or hold work anyway).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from scenedex.domain.errors import REDIS

log = logging.getLogger("scenedex.breakers")

KEY_PREFIX = "scenedex:breaker:"


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def gauge(self) -> int:
        """The Prometheus gauge value: 0 closed, 1 half-open, 2 open."""
        return {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}[self]


@dataclass(frozen=True)
class BreakerConfig:
    """Thresholds (``SCENEDEX_BREAKERS__*``, ``settings.BreakerSettings``); seconds."""

    failure_threshold: int = 3
    failure_window_s: float = 60.0
    open_s: float = 5.0
    max_open_s: float = 30.0
    probe_timeout_s: float = 5.0


@dataclass(frozen=True)
class BreakerStatus:
    """One breaker as read now: ``failures`` in the current window; ``opened_at`` /
    ``retry_at`` epoch seconds (None while closed); ``last_error`` the error that opened it or
    the last failed probe's."""

    name: str
    state: BreakerState
    failures: int = 0
    opened_at: float | None = None
    retry_at: float | None = None
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "failures": self.failures,
            "opened_at": self.opened_at,
            "retry_at": self.retry_at,
            "last_error": self.last_error,
        }


class KeyValue(Protocol):
    """The few Redis commands a breaker uses (redis-py's ``Redis`` has them)."""

    def get(self, name: str) -> Any: ...

    def set(self, name: str, value: str, *, nx: bool = False, px: int | None = None) -> Any: ...

    def delete(self, *names: str) -> Any: ...

    def incr(self, name: str) -> int: ...

    def expire(self, name: str, time: int) -> Any: ...


class LocalKeyValue:
    """``KeyValue`` in this process's memory (Redis's own breaker; tests). Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: dict[str, tuple[str, float | None]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def _live(self, name: str) -> str | None:
        value = self._data.get(name)
        if value is None:
            return None
        if value[1] is not None and value[1] <= self._clock():
            del self._data[name]
            return None
        return value[0]

    def get(self, name: str) -> Any:
        with self._lock:
            return self._live(name)

    def set(self, name: str, value: str, *, nx: bool = False, px: int | None = None) -> Any:
        with self._lock:
            if nx and self._live(name) is not None:
                return None
            self._data[name] = (value, self._clock() + px / 1000 if px else None)
            return True

    def delete(self, *names: str) -> Any:
        with self._lock:
            return sum(self._data.pop(name, None) is not None for name in names)

    def incr(self, name: str) -> int:
        with self._lock:
            current = self._live(name)
            expires = self._data[name][1] if current is not None else None
            value = int(current or 0) + 1
            self._data[name] = (str(value), expires)
            return value

    def expire(self, name: str, time: int) -> Any:
        with self._lock:
            current = self._live(name)
            if current is not None:
                self._data[name] = (current, self._clock() + time)
            return current is not None


class CircuitBreaker:
    """The breaker of dependency ``name`` on ``store`` (Redis, or ``LocalKeyValue``).

    ``clock``: epoch seconds (``time.time``; the state is shared between hosts). Redis errors
    propagate; ``BreakerBoard`` decides what they mean.
    """

    def __init__(
        self, name: str, store: KeyValue, config: BreakerConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.name = name
        self.config = config
        self._store = store
        self._clock = clock
        self._open_key = f"{KEY_PREFIX}{name}:open"
        self._failures_key = f"{KEY_PREFIX}{name}:failures"
        self._probe_key = f"{KEY_PREFIX}{name}:probe"

    def _opened(self) -> dict[str, Any] | None:
        raw = self._store.get(self._open_key)
        return json.loads(raw) if raw else None

    def status(self) -> BreakerStatus:
        """The breaker now (three reads)."""
        opened = self._opened()
        failures = int(self._store.get(self._failures_key) or 0)
        if opened is None:
            return BreakerStatus(self.name, BreakerState.CLOSED, failures)
        state = BreakerState.HALF_OPEN if self._store.get(self._probe_key) else BreakerState.OPEN
        return BreakerStatus(
            self.name, state, failures, opened["opened_at"], opened["retry_at"], opened.get("last_error")
        )

    def is_open(self) -> bool:
        """Open or half-open: work that needs the dependency must be held (one read)."""
        return self._store.get(self._open_key) is not None

    def retry_in(self) -> float:
        """Seconds until the next probe is due (0 when closed or due now)."""
        opened = self._opened()
        return max(0.0, opened["retry_at"] - self._clock()) if opened else 0.0

    def record_failure(self, error: BaseException | str) -> bool:
        """Count a dependency error; open the breaker when the window holds
        ``failure_threshold`` of them. True when the breaker is open after this call."""
        failures = self._store.incr(self._failures_key)
        if failures == 1:
            self._store.expire(self._failures_key, max(1, round(self.config.failure_window_s)))
        if failures >= self.config.failure_threshold:
            now = self._clock()
            opened = {
                "opened_at": now,
                "retry_at": now + self.config.open_s,
                "wait_s": self.config.open_s,
                "last_error": str(error)[:500],
            }
            if self._store.set(self._open_key, json.dumps(opened), nx=True):
                log.error(
                    "circuit breaker %s OPEN after %d errors: %s; work needing it is held",
                    self.name,
                    failures,
                    opened["last_error"],
                )
            return True
        return self.is_open()

    def record_success(self) -> None:
        """Work that used the dependency succeeded: forget the window's errors."""
        self._store.delete(self._failures_key)

    def claim_probe(self) -> bool:
        """True when the breaker is open, its probe is due, and this caller won the right to
        probe (half-open) until ``probe_result`` or ``2 x probe_timeout_s``."""
        opened = self._opened()
        if opened is None or opened["retry_at"] > self._clock():
            return False
        ttl_ms = int(self.config.probe_timeout_s * 2000)
        return bool(self._store.set(self._probe_key, "1", nx=True, px=ttl_ms))

    def probe_result(self, error: BaseException | None) -> None:
        """The probe's outcome: None closes the breaker; an error opens it again for twice the
        last wait (at most ``max_open_s``)."""
        if error is None:
            self._store.delete(self._open_key, self._failures_key, self._probe_key)
            log.warning("circuit breaker %s CLOSED: the dependency answers again", self.name)
            return
        opened = self._opened() or {"opened_at": self._clock(), "wait_s": self.config.open_s}
        wait = min(self.config.max_open_s, opened["wait_s"] * 2)
        opened.update(retry_at=self._clock() + wait, wait_s=wait, last_error=str(error)[:500])
        self._store.set(self._open_key, json.dumps(opened))
        self._store.delete(self._probe_key)
        log.warning(
            "circuit breaker %s still open: probe failed (%s); next probe in %.0f s", self.name, error, wait
        )

    def reset(self) -> None:
        """Close the breaker and forget its errors (operators, tests)."""
        self._store.delete(self._open_key, self._failures_key, self._probe_key)


Probe = Callable[[], object]
"""A dependency's own health call: returns when the dependency answers, raises otherwise."""


class BreakerBoard:
    """The breakers of the dependencies this process uses, and their probes.

    ``breakers``: by dependency name (``scenedex.domain.errors.DEPENDENCIES``); ``probes``: the
    health call of each. The shared breakers' Redis errors never escape: the Redis breaker
    (local) counts them and the shared ones read as closed.
    """

    def __init__(self, breakers: Mapping[str, CircuitBreaker], probes: Mapping[str, Probe]) -> None:
        self.breakers = dict(breakers)
        self.probes = dict(probes)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.breakers)

    def _safely(self, name: str, action: Callable[[CircuitBreaker], Any], default: Any) -> Any:
        breaker = self.breakers.get(name)
        if breaker is None:
            return default
        try:
            return action(breaker)
        except Exception as error:  # Redis unreachable: its own breaker counts it
            if name != REDIS and REDIS in self.breakers:
                self.breakers[REDIS].record_failure(error)
            log.warning("circuit breaker %s unreadable: %s", name, error)
            return default

    def open_among(self, names: Iterable[str]) -> CircuitBreaker | None:
        """The first breaker among ``names`` that is open (or half-open), else None."""
        for name in names:
            if self._safely(name, lambda b: b.is_open(), False):
                return self.breakers[name]
        return None

    def record_failure(self, name: str, error: BaseException) -> bool:
        """Count ``error`` on ``name``'s breaker; True when it is open after that."""
        return bool(self._safely(name, lambda b: b.record_failure(error), False))

    def record_success(self, names: Iterable[str]) -> None:
        for name in names:
            self._safely(name, lambda b: b.record_success(), None)

    def statuses(self) -> list[BreakerStatus]:
        """Every breaker now (a shared one whose state cannot be read shows closed)."""
        return [
            self._safely(name, lambda b: b.status(), BreakerStatus(name, BreakerState.CLOSED))
            for name in self.breakers
        ]

    def probe_due(self) -> dict[str, bool]:
        """Probe every open breaker whose probe is due and that this process wins the right to
        probe; returns ``{name: answered}`` for the probes run (none: ``{}``)."""
        results = {}
        for name in self.breakers:
            if not self._safely(name, lambda b: b.claim_probe(), False):
                continue
            probe = self.probes.get(name)
            error: BaseException | None = None
            try:
                if probe is not None:
                    probe()
            except Exception as failure:
                error = failure
            self._safely(name, lambda b, e=error: b.probe_result(e), None)  # type: ignore[misc]
            results[name] = error is None
        return results
