"""Circuit breakers (``adapters.breakers``) and the outage classification of ``tasks.holds``:
the state machine on a fake clock, and the same breaker shared by two "processes" on Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
import redis.exceptions
import sqlalchemy.exc

from scenedex.adapters.breakers import (
    BreakerBoard,
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    LocalKeyValue,
)
from scenedex.domain.errors import (
    BLOBS,
    EMBEDDING,
    REDIS,
    BadInputError,
    DependencyUnavailableError,
    TransientError,
)
from scenedex.tasks.holds import dependency_of

CONFIG = BreakerConfig(failure_threshold=3, failure_window_s=60, open_s=5, max_open_s=30, probe_timeout_s=1)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def local_breaker(clock: Clock, name: str = EMBEDDING) -> CircuitBreaker:
    return CircuitBreaker(name, LocalKeyValue(clock), CONFIG, clock=clock)


def test_threshold_errors_open_the_breaker_and_a_success_resets_the_count() -> None:
    clock = Clock()
    breaker = local_breaker(clock)
    assert not breaker.record_failure("refused") and not breaker.record_failure("refused")
    breaker.record_success()
    assert not breaker.record_failure("refused") and not breaker.record_failure("refused")
    assert breaker.status().state is BreakerState.CLOSED and breaker.status().failures == 2
    assert breaker.record_failure("connection refused")
    status = breaker.status()
    assert status.state is BreakerState.OPEN and status.last_error == "connection refused"
    assert status.retry_at == clock.now + CONFIG.open_s and breaker.retry_in() == CONFIG.open_s


def test_errors_older_than_the_window_are_forgotten() -> None:
    clock = Clock()
    breaker = local_breaker(clock)
    breaker.record_failure("a")
    breaker.record_failure("b")
    clock.now += CONFIG.failure_window_s + 1
    assert not breaker.record_failure("c")
    assert breaker.status().failures == 1


def test_probe_is_due_after_open_s_and_only_one_caller_gets_it() -> None:
    clock = Clock()
    breaker = local_breaker(clock)
    for _ in range(3):
        breaker.record_failure("down")
    assert not breaker.claim_probe()  # not due yet
    clock.now += CONFIG.open_s
    assert breaker.claim_probe()
    assert breaker.status().state is BreakerState.HALF_OPEN
    assert not breaker.claim_probe()  # a second process does not probe at the same time
    assert breaker.is_open()  # half-open still holds work


def test_a_failed_probe_doubles_the_wait_up_to_max_open_s_and_an_answer_closes() -> None:
    clock = Clock()
    breaker = local_breaker(clock)
    for _ in range(3):
        breaker.record_failure("down")
    waits = []
    for _ in range(5):
        clock.now = breaker.status().retry_at or clock.now
        assert breaker.claim_probe()
        breaker.probe_result(ConnectionRefusedError("still down"))
        status = breaker.status()
        assert status.state is BreakerState.OPEN and status.last_error == "still down"
        waits.append(round((status.retry_at or 0) - clock.now, 3))
    assert waits == [10, 20, 30, 30, 30]
    clock.now = breaker.status().retry_at or clock.now
    assert breaker.claim_probe()
    breaker.probe_result(None)
    assert breaker.status().state is BreakerState.CLOSED and breaker.status().failures == 0
    assert not breaker.is_open()


def test_board_runs_due_probes_and_reports_every_breaker() -> None:
    clock = Clock()
    answers = {"up": False}
    probed = []

    def probe() -> None:
        probed.append(clock.now)
        if not answers["up"]:
            raise ConnectionRefusedError("refused")

    board = BreakerBoard(
        {EMBEDDING: local_breaker(clock), BLOBS: local_breaker(clock, BLOBS)}, {EMBEDDING: probe}
    )
    for _ in range(3):
        board.record_failure(EMBEDDING, TransientError("down"))
    assert board.open_among([BLOBS, EMBEDDING]) is board.breakers[EMBEDDING]
    assert board.probe_due() == {}  # not due
    clock.now += CONFIG.open_s
    assert board.probe_due() == {EMBEDDING: False}
    answers["up"] = True
    clock.now += 2 * CONFIG.open_s
    assert board.probe_due() == {EMBEDDING: True}
    assert len(probed) == 2
    assert [s.state for s in board.statuses()] == [BreakerState.CLOSED, BreakerState.CLOSED]
    assert board.open_among([EMBEDDING, BLOBS]) is None


def test_an_unreachable_redis_reads_as_closed_and_counts_on_the_redis_breaker() -> None:
    class Unreachable:
        def __getattr__(self, name: str) -> object:
            def fail(*args: object, **kwargs: object) -> None:
                raise redis.exceptions.ConnectionError("Connection refused")

            return fail

    clock = Clock()
    shared = CircuitBreaker(EMBEDDING, Unreachable(), CONFIG, clock=clock)  # type: ignore[arg-type]
    board = BreakerBoard({EMBEDDING: shared, REDIS: local_breaker(clock, REDIS)}, {})
    for _ in range(3):
        assert board.open_among([EMBEDDING]) is None
    assert board.breakers[REDIS].is_open()
    assert board.statuses()[0].state is BreakerState.CLOSED


@pytest.fixture
def shared_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as error:
        pytest.skip(f"Redis unreachable: {error}")
    yield client
    for key in client.scan_iter("scenedex:breaker:test-*"):
        client.delete(key)


@pytest.mark.integration
def test_two_processes_share_one_breaker_through_redis(shared_redis: redis.Redis) -> None:
    """What one worker sees (three errors) holds the other's work; one of them probes."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    worker_a = CircuitBreaker(name, shared_redis, CONFIG)
    worker_b = CircuitBreaker(name, shared_redis, CONFIG)
    worker_a.record_failure("refused")
    worker_b.record_failure("refused")
    assert not worker_b.is_open()
    assert worker_a.record_failure("refused")
    assert worker_b.is_open() and worker_b.status().state is BreakerState.OPEN
    opened = worker_b.status()
    assert opened.opened_at is not None and opened.retry_at == pytest.approx(opened.opened_at + CONFIG.open_s)
    worker_a.reset()
    assert not worker_b.is_open() and worker_b.status().failures == 0


def test_dependency_of_names_the_dependency_of_an_outage_and_nothing_else() -> None:
    assert dependency_of(DependencyUnavailableError(EMBEDDING, "refused")) == EMBEDDING
    try:
        try:
            raise DependencyUnavailableError(BLOBS, "EIO")
        except DependencyUnavailableError as inner:
            raise RuntimeError("while reading a keyframe") from inner
    except RuntimeError as outer:
        assert dependency_of(outer) == BLOBS
    operational = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    assert dependency_of(operational) == "database"
    assert dependency_of(redis.exceptions.ConnectionError("refused")) == REDIS
    assert dependency_of(redis.exceptions.TimeoutError("timeout")) == REDIS
    for not_an_outage in (
        BadInputError("cannot identify image file"),
        TransientError("video is busy"),
        ValueError("bad"),
        sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
    ):
        assert dependency_of(not_an_outage) is None, not_an_outage


def test_a_held_message_comes_back_within_hold_max_s_however_often_it_was_held() -> None:
    """The delay doubles per hold up to ``hold_max_s`` (+20 % jitter), also after thousands of
    holds (a day-long outage), and keeps the message's retry count."""
    from types import SimpleNamespace

    from scenedex.settings import BreakerSettings
    from scenedex.tasks.holds import HeldItem, hold

    sent: list[dict[str, object]] = []
    actor = SimpleNamespace(send_with_options=lambda **options: sent.append(options))
    board = BreakerBoard({EMBEDDING: local_breaker(Clock())}, {})
    rt = SimpleNamespace(
        settings=SimpleNamespace(breakers=BreakerSettings(hold_min_s=2, hold_max_s=15)), breakers=board
    )
    for holds in (0, 1, 5000):
        message = SimpleNamespace(
            args=("a",), kwargs={}, options={"retries": 2, "holds": holds}, actor_name="x"
        )
        hold(rt, actor, message, EMBEDDING, "refused", HeldItem(), refund=False)  # type: ignore[arg-type]
    delays = [options["delay"] for options in sent]
    assert 2000 <= delays[0] <= 2400 and 4000 <= delays[1] <= 4800 and 15000 <= delays[2] <= 18000, delays
    assert [options["retries"] for options in sent] == [2, 2, 2]
    assert [options["holds"] for options in sent] == [1, 2, 5001]
