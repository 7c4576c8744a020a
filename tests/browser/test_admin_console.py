"""The admin console (issue 16) in a real browser: Debian's Chromium driven by Playwright,
against a ``scenedex api`` and a ``scenedex worker`` started here on the test Postgres database
and the tests' Redis database, with the real adapters (untrained CLIP, as the HTTP lifecycle
test) on a library of the sample media:

- owner A: ``bikes.mp4`` with an upstream cut whose middle keyframe is the astronaut's face,
  ``bigbuckbunny.mp4`` cut by scene detection, and a person (astronaut.png);
- owner B: ``bikes.mp4`` cut by scene detection.

Nothing is embedded before the tests: every record starts missing. The steps run in order on one
stack (``step``: a step after a failed one is skipped): sign-in and its refusals, the overview
against ``scenedex reprocess --dry-run``, a job with a corrupt keyframe and "Retry failed", the
"Reprocess missing and stale" button with a progress bar that reaches 100 % without a reload,
and the search check. Every page is screenshotted (``conftest.SCREENSHOTS``) and checked with
axe-core at desktop and phone width.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from scenedex.adapters.db.engine import create_engine
from scenedex.adapters.db.migrate import upgrade
from scenedex.api.console.session import SESSION_COOKIE, csrf_token_for
from scenedex.application import build_services
from scenedex.domain.model import Video
from scenedex.services.ingest import keyframe_key
from scenedex.services.persons import PhotoUpload
from scenedex.services.videos import UpstreamScene, ingest_local_file
from scenedex.settings import Settings
from tests.browser.conftest import DESKTOP, SCREENSHOTS, check_page
from tests.conftest import REAL_MEDIA, truncate_all
from tests.e2e.test_http_lifecycle import PHRASE, UPSTREAM, Stack, astronaut_jpeg, step
from tests.e2e.test_reprocessing_guide import free_port
from tests.integration.test_api import SECRET, make_token
from tests.worker_processes import WorkerProcess, process_env, scenedex_command, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.models,
    pytest.mark.browser,
    pytest.mark.skipif(not REAL_MEDIA.is_dir(), reason=f"real sample media not found at {REAL_MEDIA}"),
]

JOB_TIMEOUT_S = 90.0
ACTIVE = ("queued", "running", "paused")
PERSON = "Eileen Collins"


@dataclass
class ConsoleStack(Stack):
    """The HTTP lifecycle test's stack, plus the browser, the library and the dry run."""

    base_url: str = ""
    page: Any = None
    library: dict[str, Any] = field(default_factory=dict)
    dry_run: subprocess.Popen[str] | None = None

    def admin_token(self) -> str:
        return make_token(self.owner, ("admin",), exp_s=3600)

    def sign_in(self, page: Any, token: str) -> None:
        page.goto(f"{self.base_url}/admin/sign-in")
        page.get_by_label("Bearer token").fill(token)
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()

    def plan_rows(self, page: Any) -> dict[str, dict[str, int]]:
        """The overview's per-step counts, as shown."""
        rows = {}
        for row in page.locator("#plan tbody tr").all():
            counts = {
                kind: int(row.locator(f"[data-count={kind}]").inner_text())
                for kind in ("current", "stale", "missing")
            }
            rows[str(row.get_attribute("data-step"))] = counts
        return rows

    def wait_job_over(self, page: Any) -> str:
        """Wait (on the job page, which refreshes itself) until the job is over; its status."""
        page.wait_for_function(
            f"() => !{list(ACTIVE)}.includes(document.querySelector('#job-status').textContent.trim())",
            timeout=JOB_TIMEOUT_S * 1000,
        )
        return str(page.locator("#job-status").inner_text()).strip()


def build_library(settings: Settings, media: Path, owner: uuid.UUID, other: uuid.UUID) -> dict[str, Any]:
    """The sample library (see the module docstring), ingested in this process without
    embedding anything."""
    services = build_services(settings)
    astronaut = services.blobs.write(f"owners/{owner}/uploads/astronaut.jpg", astronaut_jpeg())
    upstream = tuple(
        UpstreamScene(**{**scene, "keyframe_uri": astronaut if i == 1 else None})
        for i, scene in enumerate(UPSTREAM)
    )

    def ingest(name: str, owner_id: uuid.UUID, title: str, scenes: Any = None) -> Video:
        return ingest_local_file(
            REAL_MEDIA / name,
            owner_id,
            scenes,
            uow_factory=services.uow_factory,
            blobs=services.blobs,
            cutter=services.video_cutter(),
            title=title,
        ).video

    library = {
        "bikes": ingest("bikes.mp4", owner, "Bikes at the crossing", upstream),
        "bunny": ingest("bigbuckbunny.mp4", owner, "Big Buck Bunny"),
        "other": ingest("bikes.mp4", other, "Bikes (owner B)"),
    }
    person = services.persons().create(owner, PERSON, [PhotoUpload.from_file(REAL_MEDIA / "astronaut.png")])
    services.engine.dispose()
    return {**library, "person": person.person.id}


@pytest.fixture(scope="module")
def stack(
    chromium: Any, postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsoleStack]:
    root = tmp_path_factory.mktemp("admin-console")
    media = root / "media"
    (media / "uploads").mkdir(parents=True)
    engine = create_engine(postgres_url)
    upgrade(engine)
    truncate_all(engine)
    broker = redis.Redis.from_url(redis_url)
    broker.flushdb()
    port = free_port()
    env = process_env(
        postgres_url,
        redis_url,
        media,
        SCENEDEX_API__JWT_SECRET=SECRET,
        SCENEDEX_API__PORT=str(port),
        SCENEDEX_WORKER__METRICS_PORT="0",
        SCENEDEX_WORKER__HEARTBEAT_TIMEOUT_MS="15000",  # as the e2e stacks: holds under load
        SCENEDEX_REPROCESS__BATCH_SIZE="4",
        SCENEDEX_LOG_LEVEL="INFO",
        dramatiq_prom_db=str(root / "prometheus"),
    )
    owner, other = uuid.uuid4(), uuid.uuid4()
    settings = Settings(database_url=postgres_url, storage_url=str(media), redis_url=redis_url)
    http = httpx.Client(timeout=30)
    site = ConsoleStack(root, media, env, engine, owner, http, base_url=f"http://127.0.0.1:{port}")
    http.headers["Authorization"] = f"Bearer {site.admin_token()}"
    context = chromium.new_context(viewport=DESKTOP)
    try:
        site.library = build_library(settings, media, owner, other)
        site.dry_run = subprocess.Popen(
            scenedex_command("reprocess", "--scope", "all", "--dry-run", "--json"),
            env=env,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        site.worker = WorkerProcess(env, root / "worker.log")  # boots while the API starts
        site.start_api()
        site.worker.wait_ready(timeout=120)
        site.page = context.new_page()
        yield site
    finally:
        context.close()
        site.stop()
        if site.dry_run is not None and site.dry_run.poll() is None:
            site.dry_run.kill()
        http.close()
        broker.flushdb()
        engine.dispose()


# ----------------------------------------------------------------------------- sign-in


@step("sign in")
def test_1_an_admin_signs_in_with_a_pasted_token(stack: ConsoleStack) -> None:
    page = stack.page
    page.goto(f"{stack.base_url}/admin")
    assert page.url.startswith(f"{stack.base_url}/admin/sign-in"), page.url  # not signed in yet
    check_page(page, "sign-in")
    stack.sign_in(page, stack.admin_token())
    visible(page.get_by_role("heading", name="Overview", level=1))
    cookie = next(c for c in page.context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/admin"
    assert not cookie["secure"]  # plain http on loopback


@step("refusals")
def test_2_a_non_admin_token_gets_403_and_a_forged_cookie_is_refused(
    stack: ConsoleStack, chromium: Any
) -> None:
    context = chromium.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        stack.sign_in(page, make_token(stack.owner, ("viewer",), exp_s=600))
        visible(page.get_by_role("heading", name="403: not an admin"))
        assert page.locator("#plan").count() == 0 and str(stack.owner) not in page.content()
        check_page(page, "forbidden")

        forged = make_token(stack.owner, ("admin",), key="another-secret-of-at-least-32-bytes!!")
        for token in (forged, make_token(stack.owner, ("admin",), exp_s=-60)):  # forged, expired
            context.clear_cookies()
            context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": f"{stack.base_url}/admin"}])
            response = page.goto(f"{stack.base_url}/admin/jobs")
            assert response is not None and page.url.startswith(f"{stack.base_url}/admin/sign-in"), page.url
            visible(page.get_by_role("alert"))  # "your session ended: ..."
            assert page.locator("#jobs").count() == 0
    finally:
        context.close()


@step("csrf")
def test_3_a_post_without_the_csrf_token_is_refused(stack: ConsoleStack) -> None:
    token = stack.admin_token()
    cookies = {SESSION_COOKIE: token}
    with httpx.Client(base_url=stack.base_url, cookies=cookies, timeout=30) as client:
        form = {"scope": "all", "force": "false"}
        for extra in ({}, {"csrf_token": "0" * 64}, {"csrf_token": csrf_token_for("another session")}):
            refused = client.post("/admin/reprocess", data={**form, **extra})
            assert refused.status_code == 403, refused.text
            assert "CSRF" in refused.text
        assert client.post("/admin/sign-out", data={}).status_code == 403
        assert client.post("/admin/sign-in", data={"token": token}).status_code == 403  # no double submit
    assert stack.http.get("/v1/admin/reprocess-jobs").json()["jobs"] == []  # nothing was enqueued


# ----------------------------------------------------------------------------- overview, jobs


@step("overview")
def test_4_the_overview_shows_what_reprocess_dry_run_prints(stack: ConsoleStack) -> None:
    assert stack.dry_run is not None
    out, err = stack.dry_run.communicate(timeout=120)
    assert stack.dry_run.returncode == 0, err[-3000:]
    plan = json.loads(out)
    kinds = ("current", "stale", "missing")
    expected = {s["step"]: {kind: s[kind] for kind in kinds} for s in plan["steps"]}
    assert sum(s["missing"] for s in expected.values()) > 0  # nothing embedded yet

    page = stack.page
    page.goto(f"{stack.base_url}/admin")
    assert stack.plan_rows(page) == expected
    assert page.locator("#plan-videos").inner_text() == str(plan["videos"]) == "3"
    assert page.locator("#spec-version").inner_text() == plan["spec_version"]
    assert page.locator("#queues tbody tr").count() == 3  # embeddings, reprocessing, webhooks
    assert "1 live worker" in page.locator("#workers").inner_text()
    check_page(page, "overview")


@step("failed item")
def test_5_a_corrupt_keyframe_fails_its_item_and_retry_failed_succeeds_once_fixed(
    stack: ConsoleStack,
) -> None:
    page = stack.page
    bunny: Video = stack.library["bunny"]
    keyframe = stack.media / keyframe_key(stack.owner, bunny.id, 0)
    good = keyframe.read_bytes()
    keyframe.write_bytes(b"this is not a JPEG")

    page.goto(f"{stack.base_url}/admin")
    page.get_by_label("One video").check()
    page.get_by_label("Video id (scope video)").fill(str(bunny.id))
    page.get_by_role("button", name="Reprocess missing and stale").click()
    summary = page.locator("#confirm-summary").inner_text()
    assert "1 video(s)" in summary and page.locator("#confirm-summary code").inner_text() in summary
    check_page(page, "confirm")
    page.get_by_role("button", name="Confirm: start the job").click()

    assert stack.wait_job_over(page) == "partially_failed"
    failure = page.locator("#failed-items li.failure").first
    assert str(bunny.id) in failure.inner_text()
    assert failure.locator(".error-text").count() >= 1, failure.inner_text()  # the decoder's message
    check_page(page, "job-failed")

    keyframe.write_bytes(good)
    page.get_by_role("button", name="Retry failed").click()
    assert stack.wait_job_over(page) == "succeeded"
    visible(page.locator("#no-failures"))
    assert page.locator("#failed-items").count() == 0


@step("reprocess")
def test_6_reprocess_missing_and_stale_runs_to_100_percent_and_every_step_is_current(
    stack: ConsoleStack,
) -> None:
    page = stack.page
    page.goto(f"{stack.base_url}/admin")
    page.get_by_role("button", name="Reprocess missing and stale").click()
    assert "all owners" in page.locator("#confirm-summary").inner_text()
    assert "3 video(s)" in page.locator("#confirm-summary").inner_text()
    page.get_by_role("button", name="Confirm: start the job").click()
    page.evaluate("() => { window.notReloaded = true; }")

    bar = page.get_by_role("progressbar")
    seen: list[int] = []
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        value = int(bar.get_attribute("aria-valuenow") or 0)
        if not seen or seen[-1] != value:
            seen.append(value)
            if 0 < value < 100 or (len(seen) == 1 and value < 100):
                page.screenshot(path=str(SCREENSHOTS / "job-running.png"), full_page=True)
        if value == 100 and page.locator("#job-status").inner_text().strip() not in ACTIVE:
            break
        time.sleep(0.2)
    assert seen[-1] == 100 and len(seen) >= 2, seen  # it moved, and reached 100 %
    assert page.evaluate("() => window.notReloaded === true")  # the page refreshed itself
    assert page.locator("#job-status").inner_text().strip() == "succeeded"
    check_page(page, "job")

    page.get_by_role("link", name="All jobs").click()
    assert page.locator("#jobs tbody tr").count() == 2
    assert page.locator("#jobs .pct").all_inner_texts() == ["100 %", "100 %"]
    check_page(page, "jobs")

    page.get_by_role("link", name="Overview").click()
    page.get_by_role("button", name="Refresh").click()
    rows = stack.plan_rows(page)
    assert rows and all(r["stale"] == r["missing"] == 0 and r["current"] > 0 for r in rows.values()), rows
    check_page(page, "overview-current")


# ----------------------------------------------------------------------------- search


@step("search")
def test_7_search_shows_keyframe_thumbnails_for_a_text_a_person_and_an_image_query(
    stack: ConsoleStack,
) -> None:
    page = stack.page
    page.goto(f"{stack.base_url}/admin/search?owner_id={stack.owner}")
    page.get_by_label("Text").fill(PHRASE)
    page.get_by_role("button", name="Search text").click()
    first = page.locator("#hits li.hit").first
    assert "Bikes at the crossing" in first.inner_text() and "3.00\N{EN DASH}6.50 s" in first.inner_text()
    assert PERSON in first.inner_text()
    wait_thumbnails(page)
    check_page(page, "search-text")

    assert "ok" in page.locator("#persons .photos .status").first.inner_text()
    page.get_by_role("link", name="Search this person").click()
    first = page.locator("#hits li.hit").first
    assert "Bikes at the crossing" in first.inner_text() and PERSON in first.inner_text()
    wait_thumbnails(page)
    check_page(page, "search-person")

    page.get_by_label("Image").set_input_files(
        files=[{"name": "query.jpg", "mimeType": "image/jpeg", "buffer": astronaut_jpeg()}]
    )
    page.get_by_role("button", name="Search image").click()
    first = page.locator("#hits li.hit").first
    assert "Bikes at the crossing" in first.inner_text() and "score 1.000" in first.inner_text()
    wait_thumbnails(page)


def visible(locator: Any) -> None:
    """Wait (Playwright's default 5 s) until ``locator`` is visible."""
    from playwright.sync_api import expect

    expect(locator).to_be_visible()


def wait_thumbnails(page: Any) -> None:
    """Every hit's keyframe (and photo) image loaded and decoded (a broken image has no width)."""
    assert page.locator("#hits img.thumb").count() >= 1
    broken = "() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    try:
        wait_for(lambda: not page.evaluate(broken), 15, "the images to load", interval=0.2)
    except AssertionError:
        raise AssertionError(f"images not loaded: {page.evaluate(broken)}") from None


@step("webhooks")
def test_8_the_webhooks_page_renders_under_the_policy(stack: ConsoleStack) -> None:
    page = stack.page
    page.get_by_role("link", name="Webhooks").click()
    visible(page.get_by_role("heading", name="Webhooks"))
    assert "No webhook endpoint yet" in page.locator("main").inner_text()
    check_page(page, "webhooks")
