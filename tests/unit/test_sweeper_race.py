"""The sweeper's lost-message check against a worker that replaces a held item's message.

A worker holding an item sends the delayed copy, records its id, then acknowledges the old
message. A sweeper that read the old id before the record and probes after the acknowledgement
finds the old id gone: it must read the item again before calling the message lost (seen under
load in tests/e2e/test_outages.py as a held item re-sent)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from scenedex.domain.coordinator import JobCoordinator
from scenedex.domain.jobs import ItemKind, ItemStatus, Job, JobItem, JobStatus, JobTrigger
from scenedex.domain.request import ReprocessRequest, ReprocessScope

OWNER, VIDEO = uuid.uuid4(), uuid.uuid4()


class RacingStore:
    """A job store whose item gets a new message id (and the old one is acknowledged) right
    after the sweeper's first read, as a worker holding the item does."""

    def __init__(self, broker: set[str]) -> None:
        self.job = Job(
            uuid.uuid4(),
            ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER),
            "v",
            JobTrigger.CLI,
            JobStatus.RUNNING,
            datetime.now(UTC),
            planned_at=datetime.now(UTC),
        )
        self.broker = broker
        self.message_id = "old"
        self.reads = 0
        self.recorded: list[Any] = []

    def get(self, job_id: uuid.UUID) -> Job:
        return self.job

    def unfinished_items(self, job_id: uuid.UUID) -> list[JobItem]:
        item = JobItem(job_id, ItemKind.VIDEO, VIDEO, OWNER, ItemStatus.WAITING, message_id=self.message_id)
        self.reads += 1
        if self.reads == 1:  # the worker, meanwhile: delayed copy sent and recorded, old one acked
            self.broker.add("new")
            self.message_id = "new"
            self.broker.discard("old")
        return [item]

    def set_message_ids(self, job_id: uuid.UUID, ids: Any) -> None:
        self.recorded.extend(ids)


class Sender:
    def __init__(self) -> None:
        self.sent = 0

    def send_video(self, job_id: uuid.UUID, video_id: uuid.UUID) -> str:
        self.sent += 1
        return f"resent-{self.sent}"


def test_a_message_replaced_between_the_read_and_the_probe_is_not_lost() -> None:
    broker = {"old"}
    store, sender = RacingStore(broker), Sender()
    coordinator = JobCoordinator(store, sender)  # type: ignore[arg-type]
    assert coordinator.resend_lost(store.job.id, lambda m: m in broker) == 0
    assert sender.sent == 0 and store.recorded == []


def test_a_message_really_gone_is_still_re_sent() -> None:
    broker: set[str] = set()
    store, sender = RacingStore(broker), Sender()
    store.unfinished_items = lambda job_id: [  # type: ignore[method-assign]
        JobItem(job_id, ItemKind.VIDEO, VIDEO, OWNER, ItemStatus.QUEUED, message_id="gone")
    ]
    coordinator = JobCoordinator(store, sender)  # type: ignore[arg-type]
    assert coordinator.resend_lost(store.job.id, lambda m: m in broker) == 1
    assert store.recorded == [(ItemKind.VIDEO, VIDEO, "resent-1")]
