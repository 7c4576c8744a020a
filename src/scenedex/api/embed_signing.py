"""The embedding service's request signatures as ASGI middleware (``SignedRequests``: every
``/v1/*`` request verified with ``adapters.request_signing``)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi.responses import JSONResponse

from scenedex.adapters.request_signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    SignatureVerifier,
)
from scenedex.api.app import replaying

log = logging.getLogger("scenedex.embed")


class SignedRequests:
    """ASGI middleware: ``/v1/*`` requests must carry a valid signature (401 JSON otherwise);
    ``/health`` and ``/metrics`` are open. Sits inside ``BodySizeLimit``, which bounds the body
    read here; the body is then replayed to the app."""

    def __init__(self, app: Any, verifier: SignatureVerifier | None) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.verifier is None or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        try:
            self.verifier.verify(
                scope["method"],
                scope["path"],
                body,
                headers.get(TIMESTAMP_HEADER.lower()),
                headers.get(SIGNATURE_HEADER.lower()),
            )
        except SignatureError as error:
            await JSONResponse({"detail": f"unauthorised: {error}"}, status_code=401)(scope, receive, send)
            return
        await self.app(scope, replaying(body, receive), send)
