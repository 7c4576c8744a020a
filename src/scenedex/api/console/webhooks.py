"""The Webhooks page: every owner's endpoints (failing and disabled ones first, with why), each
with its recent deliveries (status, attempts, last answer and error), and a "Send test event"
button (``app.webhooks.send_test``: a ``webhook.test`` event delivered to that endpoint only).
It calls what the admin API's ``/v1/admin/webhooks`` routes call, in the admins' scope."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from scenedex.api.console.render import render
from scenedex.api.console.session import PostDep, SessionDep
from scenedex.api.deps import AppDep
from scenedex.application import Application
from scenedex.domain.errors import InvalidRequestError, NotFoundError

router = APIRouter(prefix="/admin/webhooks", include_in_schema=False)
RECENT_DELIVERIES = 5


def endpoints_with_deliveries(app: Application) -> list[dict[str, Any]]:
    """Every endpoint (admins' scope, failing first) with its latest deliveries."""
    return [
        {"endpoint": e, "deliveries": app.webhooks.deliveries(None, e.id, limit=RECENT_DELIVERIES)}
        for e in app.webhooks.list(None)
    ]


@router.get("")
def webhooks_page(request: Request, session: SessionDep, app: AppDep, notice: str = "") -> Response:
    return render(
        request,
        "webhooks.html",
        session,
        nav="webhooks",
        endpoints=endpoints_with_deliveries(app),
        notice="Test event recorded: it is delivered within a few seconds." if notice == "test" else None,
    )


@router.post("/{webhook_id}/test")
def send_test_event(request: Request, webhook_id: uuid.UUID, session: PostDep, app: AppDep) -> Response:
    """Record a test event for the endpoint; a disabled or unknown one shows why."""
    try:
        app.webhooks.send_test(None, webhook_id)
    except (NotFoundError, InvalidRequestError) as error:
        code = 404 if isinstance(error, NotFoundError) else 409
        return render(request, "error.html", session, title="Webhooks", message=str(error), status_code=code)
    return RedirectResponse("/admin/webhooks?notice=test", status_code=303)
