"""The console's security headers in a real browser (issue 25): Debian's Chromium driven by
Playwright, against the API served in this process (``serve_in_thread``) on the job harness
(Postgres, Redis, fake embedders, the in-process worker).

- every console page (signed in or not, and its static files) carries the
  Content-Security-Policy, ``X-Frame-Options: DENY``, ``nosniff`` and ``Referrer-Policy``, and
  Chromium reports no violation of that policy on any of them (no inline script or style left:
  the progress bars of a finished and a queued job are drawn to their value, screenshot
  ``jobs-under-csp.png``);
- a page served from another origin (another port of 127.0.0.1, the attack of the issue) that
  frames the signed-in "Reprocess all (force)" confirmation is refused by Chromium: the frame
  shows no console and Chromium says why (screenshot ``framed-console.png``);
- the API's keyframe answer carries ``nosniff``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from scenedex.api import create_app
from scenedex.api.console.session import SESSION_COOKIE
from scenedex.api.serve import serve_in_thread
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from tests.browser.conftest import DESKTOP, SCREENSHOTS
from tests.fakes import face_png
from tests.integration.test_api import OWNER_A, api_settings, bearer, make_token
from tests.job_harness import Harness

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CONSOLE_HEADERS = {
    "content-security-policy": "frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}
"""Each header the console's answers carry, and a part its value must hold."""

FORCE_ALL = "/admin/reprocess?scope=all&force=true"
"""The "Reprocess all (force)" confirmation: one click from a job over every owner."""

RECORD_VIOLATIONS = """
    window.cspViolations = [];
    document.addEventListener("securitypolicyviolation", (event) => {
        window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
    });
"""


@dataclass
class Console:
    url: str
    context: Any
    harness: Harness
    scene_id: uuid.UUID


@pytest.fixture
def console(harness: Harness, chromium: Any) -> Iterator[Console]:
    """The console signed in as an admin of owner A, who has one video of two scenes, a
    finished job (100 %) and a queued one (0 %: the worker is stopped before it is sent)."""
    _, scenes = harness.world.add_video(OWNER_A, [face_png(salt="h0"), face_png(salt="h1")])
    harness.start_worker()
    job_id = harness.enqueue(ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER_A))
    assert harness.wait(job_id).job.status.value == "succeeded"
    harness.stop_worker()
    harness.enqueue(ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER_A, force=True))
    app = create_app(api_settings(harness), runtime=harness.runtime)
    with serve_in_thread(app) as url:
        context = chromium.new_context(viewport=DESKTOP)
        token = make_token(OWNER_A, ("admin",), exp_s=3600)
        context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": f"{url}/admin"}])
        context.add_init_script(RECORD_VIOLATIONS)
        try:
            yield Console(url, context, harness, scenes[0].id)
        finally:
            context.close()


@pytest.fixture
def other_origin(console: Console) -> Iterator[str]:
    """A page on another port of 127.0.0.1 that frames the console's force-all confirmation."""
    page = (
        "<!doctype html><html lang='en'><head><title>not the console</title></head><body>"
        "<h1>Win a prize</h1>"
        f"<iframe id='victim' title='victim' src='{console.url}{FORCE_ALL}' width='900' height='500'>"
        "</iframe>"
        "</body></html>"
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def assert_console_headers(headers: dict[str, str], where: str) -> None:
    for name, part in CONSOLE_HEADERS.items():
        assert part in headers.get(name, ""), (where, name, headers.get(name))


def test_every_console_page_has_the_headers_and_breaks_no_policy(console: Console) -> None:
    page = console.context.new_page()
    for path in ("/admin", "/admin/jobs", "/admin/search", "/admin/people", FORCE_ALL):
        response = page.goto(f"{console.url}{path}")
        assert response is not None and response.status == 200, path
        assert_console_headers(response.headers, path)
        assert page.locator("main").count() == 1, path
        if path == "/admin/jobs":  # each progress bar is drawn to its value (no inline style)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "jobs-under-csp.png"), full_page=True)
            bars = page.get_by_role("progressbar")
            assert bars.count() == 2
            for bar in bars.all():
                fill = bar.evaluate(
                    """bar => {
                        const part = bar.querySelector("rect, span");
                        return part.getBoundingClientRect().width / bar.getBoundingClientRect().width;
                    }"""
                )
                assert abs(fill - int(bar.get_attribute("aria-valuenow") or 0) / 100) < 0.05, fill
        assert page.evaluate("() => window.cspViolations") == [], path
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    for path in ("/admin/static/console.css", "/admin/static/console.js"):
        response = page.goto(f"{console.url}{path}")
        assert response is not None and response.status == 200, path
        assert_console_headers(response.headers, path)
    signed_out = console.context.browser.new_context()
    try:
        response = signed_out.new_page().goto(f"{console.url}/admin/sign-in")
        assert response is not None and response.status == 200
        assert_console_headers(response.headers, "/admin/sign-in")
    finally:
        signed_out.close()


def test_a_page_of_another_origin_cannot_frame_the_signed_in_console(
    console: Console, other_origin: str
) -> None:
    page = console.context.new_page()
    said: list[str] = []
    page.on("console", lambda message: said.append(message.text))
    page.goto(other_origin)
    page.wait_for_load_state("load")
    page.wait_for_timeout(500)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "framed-console.png"), full_page=True)
    frames = [frame for frame in page.frames if frame is not page.main_frame]
    assert len(frames) == 1
    victim = frames[0]
    # Chromium put its error page in the frame, not the console (the console, framed, has
    # its confirmation button and the signed-in header)
    assert victim.locator("button").filter(has_text="Confirm").count() == 0, victim.url
    assert victim.locator("text=scenedex admin").count() == 0, victim.url
    assert any("frame-ancestors" in text or "X-Frame-Options" in text for text in said), said
    # the console itself still opens at the top level
    response = page.goto(f"{console.url}{FORCE_ALL}")
    assert response is not None and response.status == 200
    assert page.get_by_role("button", name="Confirm: start the job").count() == 1


def test_the_keyframe_answer_is_not_sniffed(console: Console) -> None:
    response = httpx.get(
        f"{console.url}/v1/scenes/{console.scene_id}/keyframe", headers=bearer(make_token(OWNER_A, ()))
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
