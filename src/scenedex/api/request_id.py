"""``X-Request-ID``: one id per API request, in its answer and in every line it logs (issue 28).

A caller may send ``X-Request-ID`` (``VALID``: 1 to 128 characters of letters, digits and
``._:@/+=-``, so it is safe in a header, a log line and a URL); any other value, or none, is
replaced by a new one (32 hex digits, a random UUID). The id is echoed as ``X-Request-ID`` on
every answer (errors included: the 500 handler reads it from ``request.state.request_id``), and
is the ``request_id`` field of the log context (``domain.logcontext``) while the request runs,
so each line the request logs carries it, whichever logger wrote it.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders

from scenedex.domain import logcontext

HEADER = "X-Request-ID"
VALID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
"""A request id a caller may choose (anything else is replaced)."""


def request_id_of(value: bytes | None) -> str:
    """The request's id: ``value`` (the header's bytes) when ``VALID``, else a new one."""
    if value is not None:
        text = value.decode("latin-1")
        if VALID.fullmatch(text):
            return text
    return uuid.uuid4().hex


class RequestId:
    """ASGI middleware: gives each HTTP request its id (``scope["state"]["request_id"]``), sets
    it in the log context while the request runs and adds ``X-Request-ID`` to the answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers") or []).get(HEADER.lower().encode())
        request_id = request_id_of(sent)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        token = logcontext.push(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logcontext.pop(token)
