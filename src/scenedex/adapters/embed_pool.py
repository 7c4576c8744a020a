"""A list of embedding services behind one client (``SCENEDEX_EMBEDDER__URLS``).

``EmbedServicePool`` has ``EmbedServiceClient``'s surface (``health``, ``model``,
``max_batch_size``, ``post``), so the HTTP embedders run on one service or several unchanged.
Per instance:

- a circuit breaker, shared by every worker through Redis (``adapters.breakers``, named
  ``embedding@host:port``): ``failure_threshold`` failures open it, the instance gets no
  request while it is open, and after ``open_s`` one process probes its ``GET /health``; an
  answer (with the right model ids) closes it: the instance rejoins;
- the model ids: the first instance that answers ``GET /health`` (in the configured order)
  gives the ids the spec is built from; an instance reporting another id for a role (model,
  preprocessing or detection id, or dimension) is refused (fail closed) until a probe finds it
  agreeing, logged as an error and reported to ``events`` (the ``scenedex_embed_instances``
  gauge, ``scenedex doctor``).

A request goes to the usable instance with the fewest requests in flight from this process
(``least_outstanding``; ties in turn) or to the next in turn (``round_robin``). A transient
failure (connection, timeout, 429/5xx) counts on that instance's breaker and the request is
sent again at once to another usable instance; only when every usable instance failed does it
back off (``backoff_s``, doubling) and, after ``max_retries`` such rounds, raise
``DependencyUnavailableError`` (``embedding``), as it does when no instance is usable: the
worker then holds the item (``tasks.holds``) until the embedding breaker's probe finds one.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from scenedex.adapters.breakers import BreakerConfig, CircuitBreaker, KeyValue
from scenedex.adapters.http_embedder import EmbedServiceClient
from scenedex.domain.errors import EMBEDDING, DependencyUnavailableError, ModelLoadError, TransientError

log = logging.getLogger(__name__)

Balance = Literal["least_outstanding", "round_robin"]
IDENTITY_FIELDS = ("model_id", "preprocessing_id", "detection_id", "dim")
"""What instances must agree on, per role: what the step fingerprints are made of."""


class PoolEvents(Protocol):
    """What the pool reports (the worker's Prometheus metrics implement it)."""

    def instance_state(self, url: str, state: str) -> None:
        """``state``: ``ok``, ``down`` (breaker open) or ``refused`` (other model ids)."""

    def request(self, url: str, outcome: str) -> None:
        """One request sent to ``url``: ``outcome`` ``ok`` or ``failed``."""


def instance_name(url: str) -> str:
    """The breaker name of an instance: ``embedding@host:port``."""
    parts = urlsplit(url)
    return f"{EMBEDDING}@{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


@dataclass
class Instance:
    """One embedding service: its client (no retries of its own), breaker and counters."""

    url: str
    client: EmbedServiceClient
    breaker: CircuitBreaker
    outstanding: int = 0
    sent: int = 0
    refused: str | None = None
    recheck_at: float = 0.0
    checked: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def identity(health: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{role: {field: value}}`` of a ``/health`` body, for the ``IDENTITY_FIELDS``."""
    models = health.get("models") or {}
    return {
        str(role): {f: description.get(f) for f in IDENTITY_FIELDS if f in description}
        for role, description in models.items()
        if isinstance(description, dict)
    }


def disagreement(reference: dict[str, Any], other: dict[str, Any]) -> str | None:
    """Why ``other``'s ``/health`` is not the same models as ``reference``'s (None: same)."""
    mine, theirs = identity(reference), identity(other)
    for role in sorted(set(mine) | set(theirs)):
        for name in IDENTITY_FIELDS:
            a, b = mine.get(role, {}).get(name), theirs.get(role, {}).get(name)
            if a != b:
                return f"{role} {name} {b!r}, not {a!r}"
    return None


class EmbedServicePool:
    """``EmbedServiceClient``'s surface over ``urls`` (see the module docstring).

    ``store``: where the instance breakers live (Redis, or ``LocalKeyValue``); Redis errors
    leave them closed. ``client_factory(url)`` builds each instance's client (tests pass
    transports)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        client_factory: Callable[[str], EmbedServiceClient],
        store: KeyValue,
        breaker_config: BreakerConfig,
        balance: Balance = "least_outstanding",
        max_retries: int = 4,
        backoff_s: float = 0.5,
        events: PoolEvents | None = None,
    ) -> None:
        if not urls:
            raise ModelLoadError("no embedding service URL configured (SCENEDEX_EMBEDDER__URLS)")
        self.instances = [
            Instance(
                u.rstrip("/"), client_factory(u), CircuitBreaker(instance_name(u), store, breaker_config)
            )
            for u in dict.fromkeys(urls)
        ]
        self.url = ", ".join(i.url for i in self.instances)
        self.events = events
        self._balance = balance
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._turn = itertools.count()
        self._recheck_s = breaker_config.max_open_s
        self._health: dict[str, Any] | None = None
        self.reference_url: str | None = None

    def close(self) -> None:
        for instance in self.instances:
            instance.client.close()

    # -- identity ------------------------------------------------------------------------

    def health(self, *, refresh: bool = False) -> dict[str, Any]:
        """The reference ``/health``: of the first instance that answers, in order (cached).
        ``ModelLoadError`` when none does: the worker cannot know its models."""
        if self._health is None or refresh:
            errors = []
            for instance in self.instances:
                try:
                    answer = instance.client.health(refresh=True)
                except ModelLoadError as error:
                    errors.append(str(error))
                    continue
                self._health, self.reference_url = answer, instance.url
                break
            else:
                raise ModelLoadError("no embedding service answers: " + "; ".join(errors))
        return self._health

    def model(self, role: str) -> dict[str, Any]:
        return dict(self.health()["models"][role])

    @property
    def max_batch_size(self) -> int:
        return int(self.health()["max_batch_size"])

    def check(self, instance: Instance) -> bool:
        """Compare ``instance``'s ``/health`` with the reference (``refused`` set or cleared);
        True when it may take requests. ``ModelLoadError`` when it does not answer."""
        reason = disagreement(self.health(), instance.client.health(refresh=True))
        if reason is not None and instance.refused != reason:
            log.error(
                "embedding service %s refused: it reports %s (the spec's models are those of %s); "
                "give every instance the same model settings",
                instance.url,
                reason,
                self.reference_url,
            )
        elif reason is None and instance.refused is not None:
            log.warning("embedding service %s agrees on the models again: it takes requests", instance.url)
        instance.refused, instance.checked = reason, True
        instance.recheck_at = time.monotonic() + self._recheck_s
        self._report(instance, "refused" if reason else "ok")
        return reason is None

    def check_all(self) -> None:
        """Check every instance now (worker boot): refusals and unreachable instances are known
        (logged, reported, counted on their breakers) before the first request."""
        for instance in self.instances:
            self._usable(instance)

    def statuses(self) -> list[dict[str, Any]]:
        """Per instance: ``url``, ``state`` (ok, down, refused, unchecked), ``refused`` (why),
        ``sent`` (requests this process sent it)."""
        return [
            {
                "url": i.url,
                "state": "refused"
                if i.refused
                else "down"
                if self._open(i)
                else "ok"
                if i.checked
                else "unchecked",
                "refused": i.refused,
                "sent": i.sent,
            }
            for i in self.instances
        ]

    # -- requests ------------------------------------------------------------------------

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST to a usable instance, failing over (see the module docstring). Raises what
        ``EmbedServiceClient.post`` raises; ``DependencyUnavailableError`` when no instance
        could answer."""
        failures: list[str] = []
        for round_ in range(self._max_retries + 1):
            tried: set[int] = set()
            while (instance := self._pick(tried)) is not None:
                tried.add(id(instance))
                try:
                    answer = self._send(instance, path, payload)
                except TransientError as error:
                    failures.append(f"{instance.url}: {error}")
                    continue
                return answer
            if not tried:
                break  # nothing usable: no point waiting here, the breakers' probes decide
            if round_ < self._max_retries:
                time.sleep(random.uniform(0, self._backoff_s * 2**round_))
        raise DependencyUnavailableError(
            EMBEDDING,
            "no embedding service instance could answer: " + ("; ".join(failures[-3:]) or self._why_none()),
        )

    def _send(self, instance: Instance, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        with instance.lock:
            instance.outstanding += 1
            instance.sent += 1
        try:
            answer = instance.client.post(path, payload)
        except TransientError as error:
            self._safely(instance.breaker.record_failure, None, error)
            log.warning("embedding service %s failed (%s); trying another instance", instance.url, error)
            self._request(instance, "failed")
            if self._open(instance):
                self._report(instance, "down")
            raise
        finally:
            with instance.lock:
                instance.outstanding -= 1
        self._safely(instance.breaker.record_success)
        self._request(instance, "ok")
        return answer

    def _pick(self, tried: set[int]) -> Instance | None:
        """The next usable instance not in ``tried``, by the balance rule (probing due ones)."""
        usable = [i for i in self.instances if id(i) not in tried and self._usable(i)]
        if not usable:
            return None
        turn = next(self._turn) % len(usable)
        ordered = usable[turn:] + usable[:turn]
        if self._balance == "round_robin":
            return ordered[0]
        return min(ordered, key=lambda i: i.outstanding)  # min keeps the first of equals

    def _usable(self, instance: Instance) -> bool:
        if self._open(instance):
            return self._probe(instance)
        due = instance.refused is not None and time.monotonic() >= instance.recheck_at
        if due or not instance.checked:
            try:
                return self.check(instance)
            except ModelLoadError as error:
                self._safely(instance.breaker.record_failure, None, error)
                if self._open(instance):
                    self._report(instance, "down")
                return False
        return instance.refused is None

    def _probe(self, instance: Instance) -> bool:
        """If this process wins the instance's due probe: its ``/health`` and models decide."""
        if not self._safely(instance.breaker.claim_probe, False):
            return False
        try:
            agrees = self.check(instance)
        except ModelLoadError as error:
            self._safely(instance.breaker.probe_result, None, error)
            return False
        self._safely(instance.breaker.probe_result, None, None)
        log.warning("embedding service %s answers again: it rejoins", instance.url)
        return agrees

    def _open(self, instance: Instance) -> bool:
        return bool(self._safely(instance.breaker.is_open, False))

    def _why_none(self) -> str:
        states = ", ".join(f"{s['url']} {s['state']}" for s in self.statuses())
        return f"every instance is down or refused ({states})"

    @staticmethod
    def _safely(action: Callable[..., Any], default: Any = None, *args: Any) -> Any:
        try:
            return action(*args)
        except Exception as error:  # Redis unreachable: the breakers read as closed
            log.warning("embedding instance breaker unreadable: %s", error)
            return default

    def _report(self, instance: Instance, state: str) -> None:
        if self.events is not None:
            self.events.instance_state(instance.url, state)

    def _request(self, instance: Instance, outcome: str) -> None:
        if self.events is not None:
            self.events.request(instance.url, outcome)
