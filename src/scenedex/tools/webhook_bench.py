"""How fast webhooks are delivered: events recorded in the outbox as the use cases record them,
delivered by the workers' path (the dispatcher leasing due deliveries and sending
``deliver_webhook`` messages through Redis, a dramatiq worker posting them) to a local receiver.

``scenedex webhooks bench --events 10000 --endpoints 50`` creates ``--endpoints``
endpoints (one per owner, all posting to one receiver process on 127.0.0.1), records ``--events``
events spread over those owners in transactions of ``--batch``, and waits until every delivery
is ``delivered``. It prints JSON: events/s (events over the time from the first event to the
last delivery), the delay from each event's ``occurred_at`` to its ``delivered_at`` (p50, p99,
max; it includes the dispatch interval, ``SCENEDEX_WEBHOOKS__DISPATCH_INTERVAL_S``), and
whether any was lost. The database and Redis are ``SCENEDEX_DATABASE_URL`` and
``SCENEDEX_REDIS_URL``; the bench's endpoints, events and deliveries are deleted afterwards.
The worker runs in this process (``--threads`` threads), the receiver in a forked one.
"""

from __future__ import annotations

import multiprocessing
import platform
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import sqlalchemy as sa

from scenedex.adapters.db import tables as t
from scenedex.domain.events import Event, EventType
from scenedex.settings import Settings


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _serve(server: ThreadingHTTPServer) -> None:
    server.serve_forever()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run_webhook_bench(
    settings: Settings, *, events: int = 10_000, endpoints: int = 50, threads: int = 8, batch: int = 100,
    rate: float = 0.0, timeout_s: float = 1800.0,
) -> dict[str, Any]:  # fmt: skip
    """Record ``events`` events over ``endpoints`` owners (``rate`` events/s, 0: at once, in
    transactions of ``batch``) and deliver them; the figures (see the module docstring).
    Raises ``AssertionError`` when they are not all delivered in ``timeout_s``."""
    import dramatiq

    from scenedex.adapters.db.engine import create_engine
    from scenedex.adapters.db.migrate import upgrade
    from scenedex.application import build_services
    from scenedex.tasks.queue import build_runtime, task_broker
    from scenedex.tasks.runtime import TaskRuntime

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    receiver = multiprocessing.get_context("fork").Process(target=_serve, args=(server,), daemon=True)
    receiver.start()
    server.server_close()  # the child serves it
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    hooks = settings.webhooks.model_copy(update={"allow_private_addresses": True})
    settings = settings.model_copy(update={"webhooks": hooks})
    engine = create_engine(settings.database_url)
    upgrade(engine)
    broker = task_broker(settings)
    runtime = build_runtime(settings, build_services(settings, engine=engine))
    middleware = TaskRuntime(runtime)
    broker.add_middleware(middleware)
    app = middleware.application
    owners = [uuid.uuid4() for _ in range(endpoints)]
    made = [app.webhooks.create(owner, url).endpoint.id for owner in owners]
    worker = dramatiq.Worker(broker, queues={"webhooks"}, worker_threads=threads)
    worker.start()
    stop = threading.Event()

    def dispatch() -> None:
        while not stop.wait(hooks.dispatch_interval_s):
            while app.webhooks.dispatch() >= hooks.dispatch_batch:
                pass

    dispatcher = threading.Thread(target=dispatch, daemon=True)
    dispatcher.start()
    deliveries = t.webhook_deliveries.c
    try:
        started = time.perf_counter()
        for first in range(0, events, batch):
            if rate > 0:  # paced: this batch is due at first / rate seconds
                time.sleep(max(0.0, started + first / rate - time.perf_counter()))
            with app.services.uow_factory() as uow:
                uow.events.add(
                    *(
                        Event(EventType.VIDEO_READY, owners[i % endpoints], {"id": str(uuid.uuid4()), "n": i})
                        for i in range(first, min(events, first + batch))
                    )
                )
                uow.commit()
        recorded_s = time.perf_counter() - started
        mine = deliveries.endpoint_id.in_(made)
        delivered = 0
        while delivered < events and time.perf_counter() - started < timeout_s:
            time.sleep(0.5)
            with engine.connect() as connection:
                delivered = (
                    connection.scalar(
                        sa.select(sa.func.count()).where(mine, deliveries.status == "delivered")
                    )
                    or 0
                )
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(t.events.c.occurred_at, deliveries.delivered_at, deliveries.attempts)
                .select_from(t.webhook_deliveries.join(t.events, t.events.c.id == deliveries.event_id))
                .where(mine)
            ).all()
    finally:
        stop.set()
        worker.stop()
        broker.middleware.remove(middleware)
        receiver.kill()
        with engine.begin() as connection:
            connection.execute(sa.delete(t.webhook_endpoints).where(t.webhook_endpoints.c.id.in_(made)))
            connection.execute(sa.delete(t.events).where(t.events.c.owner_id.in_(owners)))
    done = [r for r in rows if r.delivered_at is not None]
    assert len(done) == events, f"{len(done)} of {events} delivered in {timeout_s} s"
    delays = [(r.delivered_at - r.occurred_at).total_seconds() for r in done]
    span = (max(r.delivered_at for r in done) - min(r.occurred_at for r in done)).total_seconds()
    return {
        "events": events,
        "endpoints": endpoints,
        "worker_threads": threads,
        "rate": rate or None,
        "dispatch_interval_s": hooks.dispatch_interval_s,
        "delivered": len(done),
        "lost": events - len(done),
        "attempts": sum(r.attempts for r in done),
        "record_s": round(recorded_s, 2),
        "events_per_s": round(events / span, 1) if span else None,
        "delay_p50_s": round(_percentile(delays, 0.50), 3),
        "delay_p99_s": round(_percentile(delays, 0.99), 3),
        "delay_max_s": round(max(delays), 3),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": multiprocessing.cpu_count()},
    }
