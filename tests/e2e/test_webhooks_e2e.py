"""Webhooks end to end (issue 29) with real processes: a ``scenedex api``, a ``scenedex worker``
(the real adapters, explicitly untrained CLIP) and a local receiver process
(``tests/webhook_receiver.py``) that verifies every request with the ``standardwebhooks``
library, against the test Postgres database and the tests' Redis database.

Ordered steps on one stack (a step runs only after the previous one passed):

1. an upload (``POST /v1/videos``) delivers exactly one ``video.ready`` per ``webhook-id``,
   signed; another owner's endpoint and feed see nothing of it;
2. a person added to that owner: ``person.searchable`` arrives after the re-match, and a person
   search then finds the scene (the person resource says ``searchable``);
3. the receiver down (killed) while events happen: nothing is lost, every id is delivered once
   it is back, and meanwhile the endpoint's breaker lets through one probe per interval;
4. the receiver answers 500 five times, then 200: six requests, one id;
5. ``kill -9`` of the worker process during a delivery: the delivery is sent again with the same
   id once its lease runs out (at least once: the receiver may see an id twice);
6. Redis flushed with delivery messages in it: the dispatcher sends them again from the table;
7. a 410 disables the endpoint, and says why.

Events for steps 3 to 7 are recorded straight into the outbox (``uow.events.add``), as a use
case records them; the worker's dispatcher and actors do the rest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.repositories import SqlUnitOfWorkFactory
from scenedex.domain.blobs import upload_key
from scenedex.domain.events import Event, EventType
from scenedex.settings import Settings, WebhookSettings
from tests.conftest import REAL_MEDIA
from tests.e2e.test_http_lifecycle import UPSTREAM, Stack, astronaut_jpeg, running_stack, step
from tests.e2e.test_reprocessing_guide import free_port
from tests.integration.test_api import bearer, make_token
from tests.worker_processes import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.models,
    pytest.mark.skipif(not REAL_MEDIA.is_dir(), reason=f"real sample media not found at {REAL_MEDIA}"),
]

HOOK_ENV = {
    "SCENEDEX_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES": "true",
    "SCENEDEX_WEBHOOKS__RETRY_SCHEDULE_S": "[0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]",
    "SCENEDEX_WEBHOOKS__DISPATCH_INTERVAL_S": "0.2",
    "SCENEDEX_WEBHOOKS__TIMEOUT_S": "10",
    "SCENEDEX_WEBHOOKS__LEASE_S": "15",
    "SCENEDEX_WEBHOOKS__BREAKER_FAILURES": "3",
    "SCENEDEX_WEBHOOKS__BREAKER_OPEN_S": "2",
    "SCENEDEX_WEBHOOKS__BREAKER_MAX_OPEN_S": "2",
}
WAIT_S = 120.0


class Hooks:
    """The receiver process and what it logged (one JSON line per request)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.log = root / "receiver.jsonl"
        self.log.touch()
        self.proc: subprocess.Popen[bytes] | None = None
        self.secret = ""

    def start(self, *args: str) -> None:
        self.stop()
        command = [sys.executable, "-m", "tests.webhook_receiver", str(self.port), self.secret, str(self.log)]
        cwd = Path(__file__).resolve().parents[2]
        with (self.root / "receiver.out").open("ab") as out:
            self.proc = subprocess.Popen([*command, *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        wait_for(self._listening, 20, "the receiver to listen", interval=0.1)

    def _listening(self) -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{self.port}/", timeout=1)
            return True
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def requests(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def ok(self, event_type: str | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.requests()
            if r["status"] == 200 and (event_type is None or r["payload"]["type"] == event_type)
        ]


@pytest.fixture(scope="module")
def stack(postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(postgres_url, redis_url, tmp_path_factory.mktemp("webhooks"), **HOOK_ENV)


@pytest.fixture(scope="module")
def hooks(stack: Stack) -> Iterator[Hooks]:
    h = Hooks(stack.root)
    yield h
    h.stop()


def record(stack: Stack, n: int, tag: str) -> list[uuid.UUID]:
    """``n`` events of the stack's owner recorded in the outbox as a use case does."""
    events = [
        Event(EventType.VIDEO_READY, stack.owner, {"id": str(uuid.uuid4()), "tag": tag}) for _ in range(n)
    ]
    with SqlUnitOfWorkFactory(stack.engine)() as uow:
        uow.events.add(*events)
        uow.commit()
    return [e.id for e in events]


def deliveries(stack: Stack, events: list[uuid.UUID]) -> list[Any]:
    with stack.engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(t.webhook_deliveries).where(t.webhook_deliveries.c.event_id.in_(events))
            )
        )


def webhook_ids(rows: list[Any]) -> set[str]:
    return {f"msg_{row.id.hex}" for row in rows}


@step("upload")
def test_1_an_upload_delivers_one_video_ready_per_webhook_id(stack: Stack, hooks: Hooks) -> None:
    other = uuid.uuid4()
    other_http = httpx.Client(base_url=stack.http.base_url, headers=bearer(make_token(other, ())), timeout=30)
    created = stack.http.post("/v1/webhooks", json={"url": hooks.url, "description": "e2e"})
    assert created.status_code == 201, created.text
    stack.state["hook"], hooks.secret = created.json()["id"], created.json()["secret"]
    assert other_http.post("/v1/webhooks", json={"url": hooks.url + "-b"}).status_code == 201
    hooks.start()
    stack.upload("astronaut.jpg").parent.mkdir(parents=True, exist_ok=True)
    stack.upload("astronaut.jpg").write_bytes(astronaut_jpeg())
    scenes = [dict(s) for s in UPSTREAM]
    scenes[1]["keyframe_uri"] = stack.uri(upload_key(stack.owner, "astronaut.jpg"))
    video = stack.post_video("bikes.mp4", title="Bikes", external_id="bikes-hooks", scenes=scenes)
    stack.wait_status(video, "ready")
    ready = wait_for(lambda: hooks.ok("video.ready"), WAIT_S, "video.ready at the receiver", interval=0.2)
    time.sleep(2)  # nothing more comes for it
    ready = hooks.ok("video.ready")
    assert [r["payload"]["data"]["id"] for r in ready] == [video]
    assert all(r["verified"] for r in hooks.requests())
    assert len({r["id"] for r in ready}) == len(ready) == 1
    assert {r["payload"]["data"]["external_id"] for r in ready} == {"bikes-hooks"}
    # the other owner's endpoint got nothing (its URL would log here too), nor its feed
    assert all(r["payload"]["data"]["id"] == video for r in hooks.requests())
    assert other_http.get("/v1/events").json()["events"] == []
    assert [e["type"] for e in stack.http.get("/v1/events").json()["events"]] == ["video.ready"]
    stack.state["video"] = video


@step("person")
def test_2_a_new_person_is_searchable_once_its_event_arrives(stack: Stack, hooks: Hooks) -> None:
    created = stack.http.post(
        "/v1/persons",
        data={"name": "Eileen Collins"},
        files=[("photos", ("astronaut.png", (REAL_MEDIA / "astronaut.png").read_bytes(), "image/png"))],
    )
    assert created.status_code == 201, created.text
    person = created.json()["person_id"]
    assert created.json()["searchable"] is False
    arrived = wait_for(lambda: hooks.ok("person.searchable"), WAIT_S, "person.searchable", interval=0.2)
    assert arrived[0]["payload"]["data"]["id"] == person and arrived[0]["verified"]
    assert stack.http.get(f"/v1/persons/{person}").json()["searchable"] is True
    hits = stack.search(person_id=person)
    assert [h["video_id"] for h in hits] == [stack.state["video"]], hits


@step("down")
def test_3_receiver_down_then_back_loses_nothing_and_probes_once_per_interval(
    stack: Stack, hooks: Hooks
) -> None:
    hooks.stop()
    events = record(stack, 10, "down")
    time.sleep(12)
    rows = deliveries(stack, events)
    attempts = sum(row.attempts for row in rows)
    # the first round (10 at once, before 3 failures open the breaker), then one probe every 2 s:
    # at most 10 + 12 / 2 (+1), where retrying every 0.5 s without a breaker would be 10 x 11
    assert 3 <= attempts <= 10 + 7, attempts
    assert {row.status for row in rows} == {"pending"}
    hooks.start()
    expected = webhook_ids(rows)
    wait_for(lambda: expected <= {r["id"] for r in hooks.ok()}, WAIT_S, "the backlog delivered", interval=0.2)
    assert {row.status for row in deliveries(stack, events)} == {"delivered"}


@step("500s")
def test_4_five_500s_then_200_is_one_id_six_times(stack: Stack, hooks: Hooks) -> None:
    hooks.start("--answers", "500,500,500,500,500")
    [event] = record(stack, 1, "500s")
    [row] = deliveries(stack, [event])
    wait_for(lambda: deliveries(stack, [event])[0].status == "delivered", WAIT_S, "delivered", interval=0.2)
    # The receiver logs a request once it has answered it: the worker may mark the delivery
    # before that line is written (seen with two copies of the suite on 2 cores).
    webhook_id = f"msg_{row.id.hex}"
    wait_for(lambda: any(r["id"] == webhook_id for r in hooks.ok()), WAIT_S, "the 200 logged", interval=0.2)
    seen = [r for r in hooks.requests() if r["id"] == webhook_id]
    assert [r["status"] for r in seen] == [500] * 5 + [200] and all(r["verified"] for r in seen)
    assert deliveries(stack, [event])[0].attempts == 6


@step("kill")
def test_5_a_worker_killed_during_a_delivery_sends_it_again_with_the_same_id(
    stack: Stack, hooks: Hooks
) -> None:
    assert stack.worker is not None
    hooks.start("--delay", "6")
    [event] = record(stack, 1, "kill")
    [row] = deliveries(stack, [event])
    wanted = f"msg_{row.id.hex}"
    wait_for(
        lambda: any(r["id"] == wanted for r in hooks.requests()), WAIT_S, "the first attempt", interval=0.1
    )
    mark = len(stack.worker.log())
    os.kill(stack.worker.worker_child(), signal.SIGKILL)  # mid-request: its answer is never read
    wait_for(
        lambda: deliveries(stack, [event])[0].status == "delivered", WAIT_S, "delivered again", interval=0.2
    )
    seen = [r for r in hooks.requests() if r["id"] == wanted]
    assert len(seen) == 2 and all(r["verified"] for r in seen)  # at least once: the same id twice
    stack.worker.wait_ready(timeout=180, since=mark)  # the supervisor's new worker process


@step("flush")
def test_6_redis_flushed_the_dispatcher_sends_again_from_the_table(
    stack: Stack, hooks: Hooks, redis_url: str
) -> None:
    assert stack.worker is not None
    hooks.start()
    stack.worker.stop(timeout=30)
    events = record(stack, 5, "flush")
    settings = Settings(
        database_url=stack.env["SCENEDEX_DATABASE_URL"],
        redis_url=redis_url,
        webhooks=WebhookSettings(allow_private_addresses=True, lease_s=5),
    )
    from scenedex.application import Application, build_services
    from scenedex.tasks.queue import task_queue

    services = build_services(settings, engine=stack.engine)
    app = Application(services, queue=lambda: task_queue(settings))
    assert app.webhooks.dispatch() == 5  # five messages in Redis, leased
    assert redis.Redis.from_url(redis_url).llen("dramatiq:webhooks") >= 0
    redis.Redis.from_url(redis_url).flushdb()  # ... and gone
    stack.start_worker("worker-after-flush", **HOOK_ENV)
    expected = webhook_ids(deliveries(stack, events))
    wait_for(
        lambda: expected <= {r["id"] for r in hooks.ok()}, WAIT_S, "re-sent from the table", interval=0.2
    )


@step("410")
def test_7_a_410_disables_the_endpoint(stack: Stack, hooks: Hooks) -> None:
    hooks.start("--default", "410")
    record(stack, 1, "410")
    hook = stack.state["hook"]

    def disabled() -> dict[str, Any] | None:
        body: dict[str, Any] = stack.http.get(f"/v1/webhooks/{hook}").json()
        return body if not body["enabled"] else None

    body = wait_for(disabled, WAIT_S, "the endpoint disabled", interval=0.2)
    assert "410" in body["disabled_reason"]
    listed: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:  # every page, newest first (the cursor of each page to the next)
        page = stack.http.get(f"/v1/webhooks/{hook}/deliveries", params=params).json()
        listed += page["deliveries"]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert any(d["last_status"] == 410 for d in listed)
