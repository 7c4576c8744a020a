"""Events and webhooks (issue 29) on real Postgres and Redis: the outbox written with the change,
the feed's owner scoping and cursor, webhook delivery to a local receiver that verifies every
request with the ``standardwebhooks`` library, retries with the same ``webhook-id``, 410, the
per-endpoint breaker, the SSRF guard at creation and at delivery, lost messages, rotation, and
the HTTP routes. Deliveries are sent by ``app.webhooks.dispatch()`` (the workers' dispatcher
loop, called here) and run by an in-process dramatiq worker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from scenedex.adapters.db import tables as t
from scenedex.api import create_app
from scenedex.api.console.session import CSRF_FIELD, csrf_token_for
from scenedex.application import Application
from scenedex.domain.errors import InvalidRequestError, NotFoundError
from scenedex.domain.events import Event, EventType
from scenedex.domain.face_decisions import DecisionKind, FaceDecision
from scenedex.domain.jobs import JobTrigger
from scenedex.domain.model import utcnow
from scenedex.settings import ApiSettings, WebhookSettings
from tests.conftest import truncate_all
from tests.fakes import face_image
from tests.integration.test_api import SECRET, bearer, make_token
from tests.integration.test_token_revocation import sign_in
from tests.job_harness import Harness
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.integration

OWNER_A = uuid.UUID("00000000-0000-0000-0000-0000000000a1")
OWNER_B = uuid.UUID("00000000-0000-0000-0000-0000000000b2")
FAST = {
    "allow_private_addresses": True,
    "retry_schedule_s": (0.05,) * 8,
    "timeout_s": 2.0,
    "breaker_failures": 20,
    "breaker_open_s": 0.3,
    "lease_s": 5.0,
}


@pytest.fixture
def make_harness(postgres_engine: sa.Engine, redis_url: str) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**webhooks: Any) -> Harness:
        truncate_all(postgres_engine)
        h = Harness(postgres_engine, redis_url, webhooks=WebhookSettings(**{**FAST, **webhooks}))
        h.redis.flushdb()
        h.start_worker()
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
        h.redis.flushdb()


def application(h: Harness) -> Application:
    return Application(h.runtime.services, h.runtime)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def pump(app: Application, until: Callable[[], bool], timeout: float = 20.0) -> None:
    """Run the dispatcher (as the worker's loop does) until ``until()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.webhooks.dispatch()
        if until():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def record(app: Application, *events: Event) -> None:
    with app.services.uow_factory() as uow:
        uow.events.add(*events)
        uow.commit()


def video_ready(owner: uuid.UUID, n: int = 0) -> Event:
    return Event(EventType.VIDEO_READY, owner, {"id": str(uuid.uuid4()), "status": "ready", "n": n})


def test_events_are_written_with_their_change_and_routed_by_owner_and_type(make_harness: Any) -> None:
    h = make_harness()
    app = application(h)
    a_all = app.webhooks.create(OWNER_A, "http://127.0.0.1:9/a").endpoint
    a_persons = app.webhooks.create(OWNER_A, "http://127.0.0.1:9/p", types=["person.deleted"]).endpoint
    b_all = app.webhooks.create(OWNER_B, "http://127.0.0.1:9/b").endpoint
    admin = app.webhooks.create(None, "http://127.0.0.1:9/admin").endpoint
    person = h.world.add_person(OWNER_A, "alice", [face_image("alice", salt="p")])
    video, _ = h.world.add_video(OWNER_A, [face_image(salt="v")])
    h.world.add_video(OWNER_B, [face_image(salt="w")])

    app.persons.delete(OWNER_A, person.id)
    app.videos.delete(OWNER_A, video.id)
    with app.services.uow_factory() as uow:  # rolled back: no event, no delivery
        uow.events.add(video_ready(OWNER_A))

    a_feed = app.events.page(OWNER_A)
    assert [e.type for e in a_feed.events] == [EventType.PERSON_DELETED, EventType.VIDEO_DELETED]
    assert a_feed.events[0].data == {"id": str(person.id), "name": "alice"}
    assert a_feed.events[1].data["id"] == str(video.id) and a_feed.events[1].data["scenes"] == 1
    assert app.events.page(OWNER_B).events == []
    assert len(app.events.page(None).events) == 2
    assert app.events.page(OWNER_A, after=a_feed.next_cursor).events == []
    assert [e.type for e in app.events.page(OWNER_A, types=["video.deleted"]).events] == [
        EventType.VIDEO_DELETED
    ]
    with pytest.raises(InvalidRequestError):
        app.events.page(OWNER_A, types=["reprocess_job.finished"])  # the admins' type
    counts = {e.id: len(app.webhooks.deliveries(None, e.id)) for e in (a_all, a_persons, b_all, admin)}
    assert counts == {a_all.id: 2, a_persons.id: 1, b_all.id: 0, admin.id: 2}
    with pytest.raises(NotFoundError):
        app.webhooks.get(OWNER_B, a_all.id)  # another owner's endpoint is unknown


def test_a_job_end_records_reprocess_job_finished_and_person_searchable(make_harness: Any) -> None:
    h = make_harness()
    app = application(h)
    _, scenes = h.world.add_video(OWNER_A, [face_image("alice", salt="v")])
    person = h.world.add_person(OWNER_A, "alice", [face_image("alice", salt="p")])
    assert not app.persons.get(OWNER_A, person.id).person.searchable
    done = app.reprocess.after_change(OWNER_A, JobTrigger.API)
    assert done is not None
    h.wait(done.job_id)
    types = [e.type for e in app.events.page(None).events]
    assert EventType.REPROCESS_JOB_FINISHED in types and EventType.PERSON_SEARCHABLE in types
    searchable = app.events.page(OWNER_A, types=["person.searchable"]).events
    assert [e.data["id"] for e in searchable] == [str(person.id)]
    assert app.persons.get(OWNER_A, person.id).person.searchable
    finished = app.events.page(None, types=["reprocess_job.finished"]).events[0]
    assert finished.owner_id is None and finished.data["status"] == "succeeded"
    assert app.events.page(OWNER_A, types=["person.deleted"]).events == []
    # a face decision about the person changes its matching: not searchable until the next job
    with app.services.uow_factory() as uow:
        face = np.ones(128) / np.sqrt(128)
        rejected = FaceDecision(
            uuid.uuid4(), OWNER_A, DecisionKind.REJECT, scenes[0].id, person.id, uuid.uuid4(), face
        )
        uow.face_decisions.add_many([rejected])
        uow.commit()
    assert not app.persons.get(OWNER_A, person.id).person.searchable
    again = app.reprocess.after_change(OWNER_A, JobTrigger.API)
    assert again is not None
    h.wait(again.job_id)
    assert app.persons.get(OWNER_A, person.id).person.searchable
    assert len(app.events.page(OWNER_A, types=["person.searchable"]).events) == 2


def test_delivery_is_signed_retried_with_the_same_id_and_recorded(
    make_harness: Any, receiver: Receiver
) -> None:
    h = make_harness()
    app = application(h)
    made = app.webhooks.create(OWNER_A, receiver.url)
    receiver.secrets = [made.secret]
    receiver.answers = [500] * 5
    record(app, video_ready(OWNER_A))

    def delivered() -> bool:  # the receiver logs the 200 before the worker marks the row delivered
        rows = app.webhooks.deliveries(OWNER_A, made.endpoint.id)
        return len(receiver.delivered()) == 1 and [d.status for d in rows] == ["delivered"]

    pump(app, delivered)
    assert [r.status for r in receiver.received] == [500] * 5 + [200]
    assert len({r.webhook_id for r in receiver.received}) == 1  # the same id on every retry
    assert all(r.verified for r in receiver.received)
    body = receiver.received[-1].payload()
    assert body["type"] == "video.ready" and set(body) == {"type", "timestamp", "data"}
    [delivery] = app.webhooks.deliveries(OWNER_A, made.endpoint.id)
    assert delivery.status == "delivered" and delivery.attempts == 6 and delivery.last_status == 200
    assert delivery.webhook_id == receiver.received[0].webhook_id
    assert app.webhooks.deliver(delivery.id) == "skipped"  # a duplicate message sends nothing


def test_410_disables_the_endpoint_and_says_why(make_harness: Any, receiver: Receiver) -> None:
    h = make_harness()
    app = application(h)
    endpoint = app.webhooks.create(OWNER_A, receiver.url).endpoint
    receiver.default = 410
    record(app, video_ready(OWNER_A, 1), video_ready(OWNER_A, 2))
    pump(app, lambda: not app.webhooks.get(OWNER_A, endpoint.id).enabled)
    time.sleep(0.3)
    app.webhooks.dispatch()
    disabled = app.webhooks.get(OWNER_A, endpoint.id)
    assert "410" in (disabled.disabled_reason or "")
    statuses = sorted(d.status for d in app.webhooks.deliveries(OWNER_A, endpoint.id))
    assert statuses in (["cancelled", "failed"], ["failed", "failed"])
    record(app, video_ready(OWNER_A, 3))  # a disabled endpoint gets no new delivery
    assert len(app.webhooks.deliveries(OWNER_A, endpoint.id)) == 2


def test_a_down_receiver_costs_one_probe_per_breaker_interval_and_loses_nothing(
    make_harness: Any, receiver: Receiver
) -> None:
    h = make_harness(breaker_failures=3, breaker_open_s=0.5, breaker_max_open_s=1.0)
    app = application(h)
    made = app.webhooks.create(OWNER_A, receiver.url)
    receiver.secrets = [made.secret]
    receiver.default = 503
    record(app, *(video_ready(OWNER_A, i) for i in range(20)))
    down_until = time.monotonic() + 3.0
    pump(app, lambda: time.monotonic() > down_until)
    failed = len(receiver.received)
    # 3 failures open the breaker; then one probe per interval (0.5 s, 1 s, 1 s ...): a few, not 20 x retries
    assert 3 <= failed <= 3 + 6, [r.status for r in receiver.received]
    receiver.default = 200

    def all_delivered() -> bool:
        # The receiver logs a request before its 200 reaches the worker, which then marks the
        # row delivered: wait for both (a row left pending fails the wait after 30 s).
        answered = len({r.webhook_id for r in receiver.delivered()}) == 20
        return answered and {d.status for d in app.webhooks.deliveries(OWNER_A, made.endpoint.id)} == {
            "delivered"
        }

    pump(app, all_delivered, timeout=30)
    assert all(r.verified for r in receiver.received)
    assert len(receiver.delivered()) == len({r.webhook_id for r in receiver.delivered()}) == 20  # once each


def test_ssrf_refused_at_creation_and_again_at_delivery(make_harness: Any, receiver: Receiver) -> None:
    h = make_harness()
    lenient = application(h)
    strict_settings = h.runtime.settings.model_copy(
        update={"webhooks": WebhookSettings(**{**FAST, "allow_private_addresses": False})}
    )
    strict = Application(h.runtime.services.with_settings(strict_settings), h.runtime)
    for url in ("https://127.0.0.1/hook", "https://localhost/x", "https://169.254.169.254/", receiver.url):
        with pytest.raises(InvalidRequestError, match="refused"):
            strict.webhooks.create(OWNER_A, url)
    # https, and created while private addresses were allowed: refused at delivery for its address
    endpoint = lenient.webhooks.create(OWNER_A, f"https://localhost:{receiver.port}/hook").endpoint
    record(lenient, video_ready(OWNER_A))
    [delivery_id] = lenient.webhooks._store.claim_due(10, 5.0)
    assert strict.webhooks.deliver(delivery_id) == "refused"  # DNS may have changed since creation
    [delivery] = strict.webhooks.deliveries(OWNER_A, endpoint.id)
    assert delivery.status == "failed" and "private" in (delivery.last_error or "")
    assert receiver.received == []


def test_a_lost_message_is_sent_again_after_its_lease(make_harness: Any, receiver: Receiver) -> None:
    h = make_harness(lease_s=0.3)
    app = application(h)
    made = app.webhooks.create(OWNER_A, receiver.url)
    receiver.secrets = [made.secret]
    record(app, video_ready(OWNER_A))
    store = app.webhooks._store
    first = store.claim_due(10, 0.3)  # leased, but its message is "lost" (never sent)
    assert len(first) == 1 and store.claim_due(10, 0.3) == []
    time.sleep(0.4)
    pump(app, lambda: len(receiver.delivered()) == 1)
    assert receiver.received[0].webhook_id == f"msg_{first[0].hex}"


def test_rotation_signs_with_both_secrets_during_the_overlap(make_harness: Any, receiver: Receiver) -> None:
    h = make_harness()
    app = application(h)
    made = app.webhooks.create(OWNER_A, receiver.url)
    rotated = app.webhooks.rotate(OWNER_A, made.endpoint.id, overlap_s=60)
    assert rotated.secret != made.secret and rotated.secret.startswith("whsec_")
    record(app, video_ready(OWNER_A))
    pump(app, lambda: len(receiver.received) == 1)
    request = receiver.received[0]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (made.secret, rotated.secret):
        Webhook(secret).verify(request.body, request.headers)
    app.webhooks.rotate(OWNER_A, made.endpoint.id, overlap_s=0)
    with sa.create_engine(str(h.engine.url)).connect() as connection:
        row = connection.execute(sa.select(t.webhook_endpoints)).one()
    assert row.previous_secret is None


def test_replay_sends_again_under_the_same_id(make_harness: Any, receiver: Receiver) -> None:
    h = make_harness()
    app = application(h)
    made = app.webhooks.create(OWNER_A, receiver.url)
    record(app, video_ready(OWNER_A))

    def delivered() -> bool:
        return [d.status for d in app.webhooks.deliveries(OWNER_A, made.endpoint.id)] == ["delivered"]

    pump(app, delivered)  # written after the receiver's answer: wait for the row, not the request
    assert app.webhooks.replay(OWNER_A, made.endpoint.id, utcnow() - timedelta(hours=1)) == 1
    pump(app, lambda: len(receiver.delivered()) == 2)
    assert receiver.received[0].webhook_id == receiver.received[1].webhook_id


def test_routes(make_harness: Any, receiver: Receiver) -> None:
    h = make_harness()
    settings = h.runtime.settings.model_copy(update={"api": ApiSettings(jwt_secret=SECRET)})
    a, b = bearer(make_token(OWNER_A, ())), bearer(make_token(OWNER_B, ()))
    admin = bearer(make_token(OWNER_A, ("admin",)))
    with TestClient(create_app(settings, runtime=h.runtime), raise_server_exceptions=False) as client:
        created = client.post(
            "/v1/webhooks", json={"url": receiver.url, "event_types": ["video.ready"]}, headers=a
        )
        assert created.status_code == 201, created.text
        hook = created.json()
        assert hook["secret"].startswith("whsec_") and hook["owner_id"] == str(OWNER_A)
        listed = client.get("/v1/webhooks", headers=a).json()["webhooks"]
        assert [w["id"] for w in listed] == [hook["id"]] and "secret" not in listed[0]
        assert client.get("/v1/webhooks", headers=b).json()["webhooks"] == []
        assert client.get(f"/v1/webhooks/{hook['id']}", headers=b).status_code == 404
        bad = client.post("/v1/webhooks", json={"url": receiver.url, "event_types": ["nope"]}, headers=a)
        assert bad.status_code == 422
        admin_only = client.post(
            "/v1/webhooks", json={"url": receiver.url, "event_types": ["reprocess_job.finished"]}, headers=a
        )
        assert admin_only.status_code == 422
        patched = client.patch(f"/v1/webhooks/{hook['id']}", json={"description": "ops"}, headers=a)
        assert patched.json()["description"] == "ops"
        rotated = client.post(f"/v1/webhooks/{hook['id']}/rotate-secret", json={"overlap_s": 10}, headers=a)
        assert rotated.json()["secret"] != hook["secret"] and rotated.json()["previous_secret_expires_at"]
        record(application(h), video_ready(OWNER_A), video_ready(OWNER_B))
        feed = client.get("/v1/events", params={"limit": 1}, headers=a).json()
        assert [e["type"] for e in feed["events"]] == ["video.ready"] and feed["next_cursor"]
        assert (
            client.get("/v1/events", params={"after": feed["next_cursor"]}, headers=a).json()["events"] == []
        )
        assert client.get("/v1/events", params={"after": "x"}, headers=a).status_code == 422
        assert len(client.get("/v1/admin/events", headers=admin).json()["events"]) == 2
        assert client.get("/v1/admin/events", headers=a).status_code == 403
        deliveries = client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=a).json()["deliveries"]
        assert len(deliveries) == 1 and deliveries[0]["webhook_id"].startswith("msg_")
        record(application(h), video_ready(OWNER_A, 1), video_ready(OWNER_A, 2))
        path = f"/v1/webhooks/{hook['id']}/deliveries"
        every = [d["id"] for d in client.get(path, headers=a).json()["deliveries"]]
        first = client.get(path, params={"limit": 1}, headers=a).json()
        assert [d["id"] for d in first["deliveries"]] == every[:1] and len(every) == 3
        with h.engine.begin() as connection:  # the one shown goes (offset 1 would skip one)
            connection.execute(
                sa.delete(t.webhook_deliveries).where(t.webhook_deliveries.c.id == uuid.UUID(every[0]))
            )
        second = client.get(path, params={"limit": 1, "cursor": first["next_cursor"]}, headers=a).json()
        third = client.get(path, params={"limit": 1, "cursor": second["next_cursor"]}, headers=a).json()
        assert [second["deliveries"][0]["id"], third["deliveries"][0]["id"]] == every[1:]
        assert third["next_cursor"] is None
        assert client.get(path, params={"cursor": "x"}, headers=a).status_code == 422
        assert client.get(path, params={"limit": 101}, headers=a).status_code == 422
        assert len(client.get("/v1/admin/webhooks", headers=admin).json()["webhooks"]) == 1
        assert client.delete(f"/v1/webhooks/{hook['id']}", headers=b).status_code == 404
        assert client.delete(f"/v1/webhooks/{hook['id']}", headers=a).status_code == 204
        assert client.get(f"/v1/webhooks/{hook['id']}", headers=a).status_code == 404


def test_console_page_lists_every_owners_endpoints_and_sends_a_test_event(
    make_harness: Any, receiver: Receiver
) -> None:
    h = make_harness()
    app = application(h)
    failing = app.webhooks.create(OWNER_B, receiver.url, description="b's").endpoint
    made = app.webhooks.create(OWNER_A, receiver.url, types=["video.deleted"])
    receiver.secrets = [made.secret]
    app.webhooks._store.mark_failing(failing.id, True)
    settings = h.runtime.settings.model_copy(update={"api": ApiSettings(jwt_secret=SECRET)})
    token = make_token(OWNER_A, ("admin",))
    with TestClient(create_app(settings, runtime=h.runtime), follow_redirects=False) as client:
        sign_in(client, token)
        page = client.get("/admin/webhooks")
        assert page.status_code == 200
        text = page.text
        assert text.index("b&#39;s") < text.index("video.deleted")  # the failing one first
        assert "failing since" in text and "Send test event" in text
        sent = client.post(
            f"/admin/webhooks/{made.endpoint.id}/test", data={CSRF_FIELD: csrf_token_for(token)}
        )
        assert sent.status_code == 303
        refused = client.post(f"/admin/webhooks/{made.endpoint.id}/test", data={})
        assert refused.status_code == 403
    pump(app, lambda: len(receiver.delivered()) == 1)  # sent although its filter is video.deleted
    [request] = receiver.received
    assert request.payload()["type"] == "webhook.test" and request.verified
    assert [e.type for e in app.events.page(OWNER_A).events] == [EventType.WEBHOOK_TEST]


def test_the_bench_delivers_everything_and_cleans_up(postgres_engine: sa.Engine, redis_url: str) -> None:
    from scenedex.settings import Settings
    from scenedex.tools.webhook_bench import run_webhook_bench

    truncate_all(postgres_engine)
    settings = Settings(
        database_url=str(postgres_engine.url.render_as_string(hide_password=False)), redis_url=redis_url
    )
    figures = run_webhook_bench(settings, events=60, endpoints=6, threads=2, batch=20, timeout_s=60)
    assert (
        figures["delivered"] == 60
        and figures["lost"] == 0
        and figures["delay_p99_s"] >= figures["delay_p50_s"]
    )
    with postgres_engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(t.webhook_endpoints)) == 0
        assert connection.scalar(sa.select(sa.func.count()).select_from(t.events)) == 0


def test_an_endpoint_failing_too_long_is_disabled_saying_why(make_harness: Any, receiver: Receiver) -> None:
    h = make_harness(disable_after_s=0.5)
    app = application(h)
    endpoint = app.webhooks.create(OWNER_A, receiver.url).endpoint
    receiver.default = 503
    record(app, video_ready(OWNER_A))
    pump(app, lambda: not app.webhooks.get(OWNER_A, endpoint.id).enabled)
    disabled = app.webhooks.get(OWNER_A, endpoint.id)
    assert (disabled.disabled_reason or "").startswith("failing since") and "503" in (
        disabled.disabled_reason or ""
    )
    [delivery] = app.webhooks.deliveries(OWNER_A, endpoint.id)
    assert delivery.status in ("pending", "cancelled") and delivery.last_status == 503
    updated = app.webhooks.update(OWNER_A, endpoint.id, {"enabled": True})  # its owner turns it back on
    assert updated.enabled and updated.disabled_reason is None and updated.failing_since is None
