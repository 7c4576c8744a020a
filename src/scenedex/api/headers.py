"""Security headers on every answer of the API app (issue 25).

Every response gets ``X-Content-Type-Options: nosniff``: a browser takes the declared media
type (a keyframe served as ``image/png`` is never run as a script or a page). The admin
console's pages (``/admin`` and below, static files included) also get a
``Content-Security-Policy`` that allows only what they use (their own scripts, stylesheets,
images and forms, and the suggested people's ``data:`` thumbnails; no inline script or style,
no plugin, no ``<base>``), and may not be framed by any page (``frame-ancestors 'none'``,
``X-Frame-Options: DENY``: no clickjacking of "Reprocess all (force)"), and send their URL as a
referrer to the console only (``Referrer-Policy: same-origin``). The OpenAPI pages
(``/docs``) load Swagger UI from a CDN with an inline script and get only ``nosniff``.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import MutableHeaders

CONSOLE_PATH = "/admin"
"""Where the console's pages are (``api.console``)."""

CONSOLE_CSP = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
"""The console's Content-Security-Policy: scripts, styles, fetches and forms of its own origin
only; images also as ``data:`` URIs (face thumbnails are inlined)."""

EVERY_RESPONSE: tuple[tuple[str, str], ...] = (("X-Content-Type-Options", "nosniff"),)
CONSOLE_RESPONSE: tuple[tuple[str, str], ...] = (
    *EVERY_RESPONSE,
    ("Content-Security-Policy", CONSOLE_CSP),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
)


class SecurityHeaders:
    """ASGI middleware: adds ``EVERY_RESPONSE``'s headers to every HTTP response, and
    ``CONSOLE_RESPONSE``'s to those under ``console_path``; a header the response already set
    is kept."""

    def __init__(self, app: Any, console_path: str = CONSOLE_PATH) -> None:
        self.app = app
        self.console_path = console_path.rstrip("/")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        console = path == self.console_path or path.startswith(f"{self.console_path}/")
        added = CONSOLE_RESPONSE if console else EVERY_RESPONSE

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in added:
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
