"""Webhook endpoints (``/v1/webhooks``: the caller's owner's; ``/v1/admin/webhooks``: the admins',
which receive every owner's events, and read access to every owner's endpoints) and the event
feed (``/v1/events``, ``/v1/admin/events``). Each route calls one use case of ``app.webhooks`` /
``app.events``; another owner's endpoint answers 404 like an unknown one; a URL the SSRF guard
refuses, an unknown event type or a bad cursor answer 422.

``install_webhook_docs`` describes what scenedex POSTs to a receiver, one entry per event type,
in the OpenAPI document's ``webhooks`` section (OpenAPI 3.1), so generated clients get the event
payload types.
"""

# No ``from __future__ import annotations``: the routes are declared inside ``_routes`` and
# FastAPI must see their parameter types (local aliases) as objects, not strings.
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Response

from scenedex.api.deps import AdminDep, AppDep, CallerDep
from scenedex.api.event_models import (
    DeliveryList,
    DeliveryOut,
    EventOut,
    EventPageOut,
    ReplayOut,
    RotateIn,
    WebhookCreated,
    WebhookIn,
    WebhookList,
    WebhookOut,
    WebhookPatch,
    webhook_payloads,
)
from scenedex.api.paging import MAX_PAGE_LIMIT, CursorQuery, LimitQuery, cut_page, decode_cursor
from scenedex.api.schemas import COMMON_ERRORS, JSON_BODY_ERRORS, Problem
from scenedex.domain.events import EVENT_TYPE_DESCRIPTIONS
from scenedex.domain.webhooks import DeliveryStatus

Scope = uuid.UUID | None
"""The caller's owner id, or None for the admins' scope."""


def owner_scope(caller: CallerDep) -> Scope:
    """An owner's routes act on the token's owner only."""
    return caller.owner_id


def admin_scope(caller: AdminDep) -> Scope:
    """The admins' routes act on admin endpoints and read every owner's."""
    return None


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no such webhook in the caller's scope"}
}
_REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "URL refused (not https, private address), bad type"}
}

AfterParam = Annotated[
    str | None, Query(description="the next_cursor of the last page (absent: from the start)")
]
TypesParam = Annotated[
    str | None, Query(description="only these event types, comma separated (video.ready,video.failed)")
]
LimitParam = Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT, description="most events in the page")]
WaitParam = Annotated[
    float, Query(ge=0, le=30, description="long poll: wait up to this many seconds for the next event")
]


def _routes(router: APIRouter, scope: Callable[..., Scope], ops: str, who: str) -> None:
    """Register the webhook and feed routes of one scope on ``router``; operation ids are
    ``<verb><ops>Webhook...`` (``ops`` "" for owners, "Admin" for admins)."""
    ScopeDep = Annotated[Scope, Depends(scope)]

    @router.post(
        "/webhooks",
        operation_id=f"create{ops}Webhook",
        status_code=201,
        response_model=WebhookCreated,
        summary=f"Create a webhook endpoint receiving {who}",
        responses={**JSON_BODY_ERRORS, **_REFUSED},
    )
    def create_webhook(body: WebhookIn, owner: ScopeDep, app: AppDep) -> WebhookCreated:
        """The endpoint with its signing secret, shown once (``whsec_<base64>``)."""
        return WebhookCreated.created(
            app.webhooks.create(
                owner, body.url, types=body.event_types, description=body.description, enabled=body.enabled
            )
        )

    @router.get(
        "/webhooks",
        operation_id=f"list{ops}Webhooks",
        response_model=WebhookList,
        summary="List webhook endpoints",
    )
    def list_webhooks(owner: ScopeDep, app: AppDep) -> WebhookList:
        return WebhookList(webhooks=[WebhookOut.of(e) for e in app.webhooks.list(owner)])

    @router.get(
        "/webhooks/{webhook_id}",
        operation_id=f"get{ops}Webhook",
        response_model=WebhookOut,
        responses=_NOT_FOUND,
    )
    def get_webhook(webhook_id: uuid.UUID, owner: ScopeDep, app: AppDep) -> WebhookOut:
        return WebhookOut.of(app.webhooks.get(owner, webhook_id))

    @router.patch(
        "/webhooks/{webhook_id}",
        operation_id=f"update{ops}Webhook",
        response_model=WebhookOut,
        responses={**_NOT_FOUND, **JSON_BODY_ERRORS, **_REFUSED},
    )
    def update_webhook(webhook_id: uuid.UUID, body: WebhookPatch, owner: ScopeDep, app: AppDep) -> WebhookOut:
        """Change the URL, types, description, or enable / disable it."""
        return WebhookOut.of(app.webhooks.update(owner, webhook_id, body.changes()))

    @router.delete(
        "/webhooks/{webhook_id}", operation_id=f"delete{ops}Webhook", status_code=204, responses=_NOT_FOUND
    )
    def delete_webhook(webhook_id: uuid.UUID, owner: ScopeDep, app: AppDep) -> Response:
        app.webhooks.delete(owner, webhook_id)
        return Response(status_code=204)

    @router.post(
        "/webhooks/{webhook_id}/rotate-secret",
        operation_id=f"rotate{ops}WebhookSecret",
        response_model=WebhookCreated,
        responses={**_NOT_FOUND, **JSON_BODY_ERRORS},
    )
    def rotate_webhook_secret(
        webhook_id: uuid.UUID, owner: ScopeDep, app: AppDep, body: RotateIn | None = None
    ) -> WebhookCreated:
        """A new secret, shown once; the old one also signs until ``previous_secret_expires_at``."""
        return WebhookCreated.created(
            app.webhooks.rotate(owner, webhook_id, body.overlap_s if body else None)
        )

    @router.get(
        "/webhooks/{webhook_id}/deliveries",
        operation_id=f"list{ops}WebhookDeliveries",
        response_model=DeliveryList,
        responses=_NOT_FOUND,
    )
    def list_webhook_deliveries(
        webhook_id: uuid.UUID,
        owner: ScopeDep,
        app: AppDep,
        status: Annotated[DeliveryStatus | None, Query()] = None,
        limit: LimitQuery = 50,
        cursor: CursorQuery = None,
    ) -> DeliveryList:
        """The endpoint's deliveries, newest first, with attempts, last answer and error;
        ``limit`` per page, ``next_cursor`` gives the next (``api.paging``)."""
        before = decode_cursor(cursor) if cursor is not None else None
        found = app.webhooks.deliveries(
            owner, webhook_id, status=status.value if status else None, limit=limit + 1, before=before
        )
        shown, next_cursor = cut_page(found, limit)
        return DeliveryList(
            deliveries=[DeliveryOut.of(d) for d in shown], limit=limit, next_cursor=next_cursor
        )

    @router.post(
        "/webhooks/{webhook_id}/replay",
        operation_id=f"replay{ops}Webhook",
        response_model=ReplayOut,
        responses={**_NOT_FOUND, 422: {"model": Problem, "description": "the endpoint is disabled"}},
    )
    def replay_webhook(
        webhook_id: uuid.UUID,
        since: Annotated[datetime, Query(description="events that occurred at or after this time")],
        owner: ScopeDep,
        app: AppDep,
    ) -> ReplayOut:
        """Deliver again every event since ``since`` the endpoint wants (the same
        ``webhook-id`` for one already delivered)."""
        return ReplayOut(deliveries=app.webhooks.replay(owner, webhook_id, since))

    @router.get(
        "/events", operation_id=f"list{ops}Events", response_model=EventPageOut, summary=f"The feed of {who}"
    )
    def list_events(
        owner: ScopeDep,
        app: AppDep,
        after: AfterParam = None,
        types: TypesParam = None,
        limit: LimitParam = 100,
        wait_s: WaitParam = 0.0,
    ) -> EventPageOut:
        """Events in id order after the cursor ``after``; ``next_cursor`` resumes."""
        page = app.events.page(owner, after=after, types=[types] if types else (), limit=limit, wait_s=wait_s)
        return EventPageOut(events=[EventOut.of(e) for e in page.events], next_cursor=page.next_cursor)


router = APIRouter(prefix="/v1", tags=["webhooks"], responses=COMMON_ERRORS)
_routes(router, owner_scope, "", "the caller's owner's events")
admin_router = APIRouter(prefix="/v1/admin", tags=["admin webhooks"], responses=COMMON_ERRORS)
_routes(admin_router, admin_scope, "Admin", "every owner's events (admins)")


_SIGNATURE = (
    "v1,<base64 HMAC-SHA256 of '<webhook-id>.<webhook-timestamp>.<body>'>, keyed with the base64 "
    "after whsec_ (space separated, one per secret, during a secret rotation)"
)


def install_webhook_docs(app: FastAPI) -> None:
    """Describe each event's webhook (``POST`` to the receiver's URL, the Standard Webhooks
    headers, the body ``{type, timestamp, data}``) in the document's ``webhooks`` section."""
    headers = [
        {"name": "webhook-id", "in": "header", "required": True, "schema": {"type": "string"},
         "description": "the delivery's id, the same on every retry: drop duplicates by it"},
        {"name": "webhook-timestamp", "in": "header", "required": True, "schema": {"type": "string"},
         "description": "Unix seconds of this attempt"},
        {"name": "webhook-signature", "in": "header", "required": True, "schema": {"type": "string"},
         "description": _SIGNATURE},
    ]  # fmt: skip
    for event_type, model in webhook_payloads().items():

        def receive(body: Any) -> None:
            """Documentation only: what scenedex sends."""

        receive.__annotations__ = {"body": model, "return": None}
        app.webhooks.add_api_route(
            event_type.value,
            receive,
            methods=["POST"],
            operation_id=f"on{model.__name__}",
            summary=EVENT_TYPE_DESCRIPTIONS[event_type],
            description="Answer 2xx within the timeout to acknowledge; 410 disables the endpoint; "
            "anything else is retried with backoff for more than a day.",
            openapi_extra={"parameters": headers},
            responses={
                200: {"description": "received"},
                410: {"description": "stop sending: the endpoint is disabled"},
            },
            status_code=200,
        )
