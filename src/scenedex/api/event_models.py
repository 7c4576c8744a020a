"""Bodies of the event feed and webhook endpoints (``routes.events``, ``routes.webhooks``), and the
payload schema of each event type for the OpenAPI document's ``webhooks`` section
(``webhook_payloads``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from scenedex.domain.events import EVENT_TYPE_DESCRIPTIONS, Event, EventType
from scenedex.domain.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from scenedex.services.webhooks import MAX_DESCRIPTION, MAX_URL, CreatedWebhook

_HOOK = "3e1f6a0c-93b2-4f0e-8f5c-5a7d2c1b9e40"
_EVENT = "0193a6f2-4c1e-7a55-8e21-6c7d8e9f0a1b"
_TIME = "2026-12-07T12:00:00Z"

_WEBHOOK_EXAMPLE: dict[str, Any] = {
    "id": _HOOK,
    "owner_id": "7f0c2d7e-3c1a-4f43-9d55-0b7a4b1e2a10",
    "url": "https://hooks.example.com/scenedex",
    "event_types": ["video.ready"],
    "description": "ops",
    "enabled": True,
    "disabled_reason": None,
    "failing_since": None,
    "previous_secret_expires_at": None,
    "created_at": _TIME,
    "updated_at": _TIME,
}

_DELIVERY_EXAMPLE: dict[str, Any] = {
    "id": "0193a5c4-6f1e-7c2a-8e1b-2f4d6a8c0e13",
    "webhook_id": "msg_0193a5c46f1e7c2a8e1b2f4d6a8c0e13",  # msg_ and the delivery id
    "event_id": _EVENT,
    "event_type": "video.ready",
    "status": "delivered",
    "attempts": 1,
    "next_attempt_at": None,
    "last_status": 200,
    "last_error": None,
    "last_attempt_at": _TIME,
    "delivered_at": _TIME,
    "created_at": _TIME,
}

_EVENT_EXAMPLE: dict[str, Any] = {
    "id": _EVENT,
    "type": "video.ready",
    "owner_id": "7f0c2d7e-3c1a-4f43-9d55-0b7a4b1e2a10",
    "occurred_at": _TIME,
    "data": {"id": "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed", "status": "ready"},
}


class WebhookIn(BaseModel):
    """A new endpoint. ``url``: https (``SCENEDEX_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES`` also allows
    http); it must resolve to public addresses only. ``event_types``: empty for every type."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.com/scenedex",
                    "event_types": ["video.ready"],
                    "description": "ops",
                }
            ]
        },
    )

    url: str = Field(max_length=MAX_URL)
    event_types: list[EventType] = Field(default_factory=list, max_length=len(EventType))
    description: str = Field("", max_length=MAX_DESCRIPTION)
    enabled: bool = True


class WebhookPatch(BaseModel):
    """The fields to change (absent: unchanged); ``enabled: true`` re-enables a disabled one."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": False}]})

    url: str | None = Field(None, max_length=MAX_URL)
    event_types: list[EventType] | None = Field(None, max_length=len(EventType))
    description: str | None = Field(None, max_length=MAX_DESCRIPTION)
    enabled: bool | None = None

    def changes(self) -> dict[str, Any]:
        """The fields given (None means absent)."""
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if v is not None}


class RotateIn(BaseModel):
    """``overlap_s``: how long the old secret keeps signing beside the new one (default
    ``SCENEDEX_WEBHOOKS__SECRET_OVERLAP_S``; 0 ends it at once)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"overlap_s": 86400}]})

    overlap_s: float | None = Field(None, ge=0, le=7 * 86400)


class WebhookOut(BaseModel):
    """An endpoint (never its secret). ``owner_id`` null: an admin endpoint (every owner's
    events). ``disabled_reason``: why it was disabled (410 Gone, failing for days, its owner);
    ``failing_since``: its deliveries fail since then; ``previous_secret_expires_at``: a rotated
    secret still signs until then."""

    model_config = ConfigDict(json_schema_extra={"examples": [_WEBHOOK_EXAMPLE]})

    id: uuid.UUID
    owner_id: uuid.UUID | None
    url: str
    event_types: list[EventType]
    description: str
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookOut:
        return cls(
            **{k: getattr(endpoint, k) for k in cls.model_fields if k != "previous_secret_expires_at"},
            previous_secret_expires_at=endpoint.previous_expires_at,
        )


class WebhookCreated(WebhookOut):
    """The endpoint and its signing ``secret`` (``whsec_<base64>``), shown this once."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{**_WEBHOOK_EXAMPLE, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]
        }
    )

    secret: str = Field(description="whsec_<base64 of 32 bytes>: shown once, keep it")

    @classmethod
    def created(cls, made: CreatedWebhook) -> WebhookCreated:
        return cls(**WebhookOut.of(made.endpoint).model_dump(), secret=made.secret)


class WebhookList(BaseModel):
    """The caller's endpoints (an admin's: the admin endpoints)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"webhooks": [_WEBHOOK_EXAMPLE]}]})

    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    """One event to one endpoint: ``webhook_id`` is the ``webhook-id`` header of every attempt;
    ``last_status`` the receiver's last answer (null: none, e.g. a timeout) and ``last_error``."""

    model_config = ConfigDict(json_schema_extra={"examples": [_DELIVERY_EXAMPLE]})

    id: uuid.UUID
    webhook_id: str
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> DeliveryOut:
        return cls(
            webhook_id=delivery.webhook_id,
            **{k: getattr(delivery, k) for k in cls.model_fields if k != "webhook_id"},
        )


class DeliveryList(BaseModel):
    """An endpoint's deliveries, newest first (no ``total``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"deliveries": [_DELIVERY_EXAMPLE], "limit": 50, "next_cursor": None}]
        }
    )

    deliveries: list[DeliveryOut]
    limit: int
    next_cursor: str | None = Field(
        description="send it as cursor for the next page (null: this is the last)"
    )


class ReplayOut(BaseModel):
    """How many deliveries a replay made pending again or created."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"deliveries": 3}]})

    deliveries: int = Field(description="deliveries made pending again or created")


class EventOut(BaseModel):
    """A fact: ``data`` is the resource's public shape when it happened (see the webhooks
    section of this document for each type's)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EVENT_EXAMPLE]})

    id: uuid.UUID
    type: EventType
    owner_id: uuid.UUID | None
    occurred_at: datetime
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Event) -> EventOut:
        return cls(
            id=event.id,
            type=event.type,
            owner_id=event.owner_id,
            occurred_at=event.occurred_at,
            data=dict(event.data),
        )


class EventPageOut(BaseModel):
    """Events in id order; ask again with ``after=next_cursor`` for the next ones."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"events": [_EVENT_EXAMPLE], "next_cursor": _EVENT}]}
    )

    events: list[EventOut]
    next_cursor: str | None


# The payload of each event type, for the OpenAPI ``webhooks`` section.

_VIDEO_DATA: dict[str, Any] = {
    "id": (uuid.UUID, ...),
    "external_id": (str | None, None),
    "title": (str | None, None),
    "status": (str, ...),
    "error": (str | None, None),
}
_PERSON_DATA: dict[str, Any] = {"id": (uuid.UUID, ...), "name": (str, ...)}
_DATA: dict[EventType, dict[str, Any]] = {
    EventType.VIDEO_READY: _VIDEO_DATA,
    EventType.VIDEO_FAILED: _VIDEO_DATA,
    EventType.VIDEO_DELETED: {**_VIDEO_DATA, "scenes": (int, ...)},
    EventType.PERSON_SEARCHABLE: {**_PERSON_DATA, "job_id": (uuid.UUID, ...)},
    EventType.PERSON_DELETED: _PERSON_DATA,
    EventType.FACE_CLUSTERS_UPDATED: {
        "suggestions": (int, ...),
        "added": (list[str], ...),
        "removed": (list[str], ...),
        "changed": (list[str], ...),
    },
    EventType.REPROCESS_JOB_FINISHED: {
        "id": (uuid.UUID, ...),
        "status": (Literal["succeeded", "partially_failed", "failed", "cancelled"], ...),
        "scope": (str, ...),
        "owner_id": (uuid.UUID | None, None),
        "video_id": (uuid.UUID | None, None),
        "trigger": (str, ...),
        "spec_version": (str, ...),
        "error": (str | None, None),
        "counts": (dict[str, int], ...),
    },
    EventType.WEBHOOK_TEST: {"endpoint_id": (uuid.UUID, ...), "message": (str, ...)},
}


def _camel(event_type: EventType) -> str:
    return "".join(part.capitalize() for part in event_type.value.replace(".", "_").split("_"))


def webhook_payloads() -> dict[EventType, type[BaseModel]]:
    """One pydantic model per event type: the webhook body ``{type, timestamp, data}``."""
    models: dict[EventType, type[BaseModel]] = {}
    for event_type, fields in _DATA.items():
        name = _camel(event_type)
        data = create_model(f"{name}Data", **fields)
        models[event_type] = create_model(
            f"{name}Event",
            __doc__=EVENT_TYPE_DESCRIPTIONS[event_type],
            type=(Literal[event_type.value], ...),  # type: ignore[arg-type]  # a Literal built at run time
            timestamp=(datetime, ...),
            data=(data, ...),
        )
    return models
