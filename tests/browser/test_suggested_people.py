"""The console's suggested-people page (issue 19) in a real browser: Debian's Chromium driven by
Playwright, against the API served in this process (``serve_in_thread``) on the job harness
(Postgres, Redis, fake embedders; no worker, so the enqueued reprocess jobs stay queued).

Owner A has unknown faces of bob (5 scenes), carol (4) and dave (3, frames no decoder reads,
so his suggestion has no picture), a person Alice (with a matched face, not suggested) and a
scene without faces; owner B has erin (3 scenes). The runner clusters them as a reprocess
does; the pages are screenshotted (``conftest.SCREENSHOTS``) and checked with axe-core.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

from scenedex.adapters.face_clustering import DbscanFaceClusterer
from scenedex.adapters.images import face_thumbnail
from scenedex.api import create_app
from scenedex.api.console.session import SESSION_COOKIE
from scenedex.api.serve import serve_in_thread
from scenedex.domain.face_decisions import DecisionKind
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.services.face_clusters import FaceClusters
from tests.browser.conftest import DESKTOP, SCREENSHOTS, check_page
from tests.fakes import face_image
from tests.integration.test_api import api_settings, make_token
from tests.worker_processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.browser]

OWNER_A = uuid.UUID("00000000-0000-0000-0000-0000000000aa")
OWNER_B = uuid.UUID("00000000-0000-0000-0000-0000000000bb")
COLOURS = {"bob": (214, 140, 69), "carol": (96, 156, 210), "erin": (120, 180, 110), "alice": (200, 90, 150)}
FRAME = 64
WHOLE_FRAME = (0, 0, FRAME, FRAME)


def frame(name: str, salt: str) -> bytes:
    """A decodable PNG keyframe with a drawn face, in which the fake face embedder finds ``name``
    (the ``face_image`` marker in a text chunk)."""
    info = PngInfo()
    info.add_text("scenedex-test", face_image(name, salt=salt).decode())
    image = Image.new("RGB", (FRAME, FRAME), (236, 239, 243))
    draw = ImageDraw.Draw(image)
    draw.ellipse((12, 6, 52, 58), fill=COLOURS[name])
    draw.ellipse((22, 22, 28, 28), fill=(30, 30, 30))
    draw.ellipse((36, 22, 42, 28), fill=(30, 30, 30))
    draw.arc((22, 30, 42, 48), 20, 160, fill=(30, 30, 30), width=2)
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def thumbnail(data: bytes, box: tuple[int, int, int, int]) -> bytes:
    """The real thumbnail adapter on the whole test frame (the fake detector's boxes are 8 px
    squares in a corner); raises ``BadInputError`` for dave's undecodable frames."""
    return face_thumbnail(data, WHOLE_FRAME)


@dataclass
class Site:
    url: str
    page: Any
    harness: Any

    @property
    def clusters(self) -> FaceClusters:
        return FaceClusters(uow_factory=self.harness.world.uow_factory)

    def decisions(self, owner: uuid.UUID) -> list[Any]:
        with self.harness.world.uow_factory() as uow:
            return list(uow.face_decisions.list(owner))

    def persons(self, owner: uuid.UUID) -> dict[str, uuid.UUID]:
        with self.harness.world.uow_factory() as uow:
            return {p.name: p.id for p in uow.persons.list(owner)}

    def open(self, owner: uuid.UUID) -> Any:
        """The page of ``owner``; its suggestion cards."""
        self.page.goto(f"{self.url}/admin/people?owner_id={owner}")
        return self.page.locator("#suggestions li.suggestion")

    def recluster(self, owner: uuid.UUID) -> None:
        """What the owner's reprocess job does (no worker runs here)."""
        request = ReprocessRequest(ReprocessScope.OWNER, owner_id=owner)
        runner = self.harness.world.runner(face_clusterer=DbscanFaceClusterer(), face_thumbnail=thumbnail)
        assert runner.run(request).ok


def seed(site: Site) -> None:
    world = site.harness.world
    keyframes: list[bytes] = [frame("bob", str(i)) for i in range(5)]
    keyframes += [frame("carol", str(i)) for i in range(4)]
    keyframes += [face_image("dave", salt=str(i)) for i in range(3)]  # no decoder reads these
    keyframes += [frame("alice", "scene"), face_image(salt="nobody")]
    world.add_person(OWNER_A, "Alice", [face_image("alice", salt="photo")])
    world.add_video(OWNER_A, keyframes)
    world.add_video(OWNER_B, [frame("erin", str(i)) for i in range(3)])
    for owner in (OWNER_A, OWNER_B):
        site.recluster(owner)


@pytest.fixture
def site(harness: Any, chromium: Any) -> Iterator[Site]:
    app = create_app(api_settings(harness), runtime=harness.runtime)
    with serve_in_thread(app) as url:
        context = chromium.new_context(viewport=DESKTOP)
        token = make_token(OWNER_A, ("admin",), exp_s=3600)
        context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": f"{url}/admin"}])
        try:
            here = Site(url, context.new_page(), harness)
            seed(here)
            yield here
        finally:
            context.close()


def sizes(cards: Any) -> list[int]:
    return [int(card.get_attribute("data-size")) for card in cards.all()]


def test_suggestions_show_largest_first_and_a_confirm_is_stored_with_its_job(site: Site) -> None:
    page = site.page
    cards = site.open(OWNER_A)
    assert sizes(cards) == [5, 4, 3]
    assert "5 faces in 5 scenes" in cards.nth(0).inner_text()
    # the faces' times (keyframes, mid-scene), earliest first
    assert "seen at 0:00, 0:01, 0:02, …" in cards.nth(0).inner_text()
    wait_images(page, 2)
    assert cards.nth(2).locator(".face.placeholder").count() == 1  # dave: no picture
    listed = site.clusters.list(OWNER_A)
    summary = page.locator("#people-summary").inner_text()
    assert f"{listed.unknown_faces} unknown faces" in summary and "0 waiting" in summary
    check_page(page, "suggested-people")

    bob = cards.nth(0)
    bob_id = bob.get_attribute("data-cluster")
    bob.get_by_label("New person").fill("   ")  # passes `required`, blank once stripped
    bob.get_by_role("button", name="Create person").click()
    assert "a person needs a non-empty name" in page.locator("#people-error").inner_text()
    assert site.decisions(OWNER_A) == [] and sizes(cards) == [5, 4, 3]

    cards.nth(0).get_by_label("New person").fill("Bob")
    cards.nth(0).get_by_role("button", name="Create person").click()
    notice = page.locator("#people-notice").inner_text()
    assert "Stored: 5 faces confirmed as Bob (new person)." in notice
    assert "A new reprocess job of the owner picks it up" in notice
    job_id = uuid.UUID(str(page.locator("#people-job").get_attribute("href")).rsplit("/", 1)[1])
    assert site.harness.store.get(job_id) is not None
    assert sizes(cards) == [4, 3] and bob_id not in page.content()
    bob_person = site.persons(OWNER_A)["Bob"]
    decisions = site.decisions(OWNER_A)
    assert len(decisions) == 5
    assert {(d.kind, d.person_id) for d in decisions} == {(DecisionKind.CONFIRM, bob_person)}
    check_page(page, "suggested-people-confirmed")

    carol = cards.nth(0)  # a form still naming bob's suggestion, confirmed since
    carol.locator("form.new input[name=cluster_id]").evaluate("(input, id) => { input.value = id; }", bob_id)
    carol.get_by_label("New person").fill("Carol")
    carol.get_by_role("button", name="Create person").click()
    error = page.locator("#people-error").inner_text()
    assert f"suggested person {bob_id} not found" in error and "current list" in error
    assert "Traceback" not in page.content() and "Carol" not in site.persons(OWNER_A)
    assert sizes(cards) == [4, 3]

    cards.nth(0).get_by_label("Existing person").select_option(label="Alice")
    cards.nth(0).get_by_role("button", name="Confirm", exact=True).click()
    notice = page.locator("#people-notice").inner_text()
    assert "Stored: 4 faces confirmed as Alice (existing person)." in notice
    assert "The owner's queued reprocess job picks it up" in notice  # the one bob's confirm queued
    assert page.locator("#people-job").get_attribute("href") == f"/admin/jobs/{job_id}"
    assert sizes(cards) == [3]


def test_split_faces_off_and_each_owner_sees_only_its_suggestions(site: Site) -> None:
    page = site.page
    cards = site.open(OWNER_A)
    bob = cards.nth(0)
    bob.locator("summary").click()
    boxes = bob.locator("input[name=face_ids]")
    assert boxes.count() == 5
    boxes.nth(3).check()
    boxes.nth(4).check()
    page.screenshot(path=str(SCREENSHOTS / "suggested-people-split-open.png"), full_page=True)
    bob.get_by_role("button", name="Split selected off").click()
    assert "Stored: 2 faces split off" in page.locator("#people-notice").inner_text()
    splits = [d for d in site.decisions(OWNER_A) if d.kind is DecisionKind.SPLIT]
    assert len(splits) == 2 and len({d.group_id for d in splits}) == 1

    dave = cards.nth(2)
    dave.locator("summary").click()
    for box in dave.locator("input[name=face_ids]").all():
        box.check()
    dave.get_by_role("button", name="Split selected off").click()
    assert "a split leaves at least one face" in page.locator("#people-error").inner_text()

    site.recluster(OWNER_A)  # what the enqueued job does: the split faces are suggested apart
    cards = site.open(OWNER_A)
    assert sorted(sizes(cards), reverse=True) == sizes(cards) == [4, 3, 3, 2]
    split_card = cards.nth(3)
    assert split_card.locator(".tag", has_text="split").count() == 1
    wait_images(page, 3)
    check_page(page, "suggested-people-split")

    a_ids = {card.get_attribute("data-cluster") for card in cards.all()}
    cards = site.open(OWNER_B)
    assert sizes(cards) == [3]
    b_id = cards.nth(0).get_attribute("data-cluster")
    assert not any(cluster in page.content() for cluster in a_ids)
    # a form of B's page naming A's suggestion: not found, as an unknown one
    cards.nth(0).locator("form.new input[name=cluster_id]").evaluate(
        "(input, id) => { input.value = id; }", sorted(a_ids)[0]
    )
    cards.nth(0).get_by_label("New person").fill("Mallory")
    cards.nth(0).get_by_role("button", name="Create person").click()
    assert "not found" in page.locator("#people-error").inner_text()
    assert site.persons(OWNER_B) == {} and "Mallory" not in site.persons(OWNER_A)
    site.open(OWNER_A)
    assert b_id not in page.content()

    site.open(uuid.uuid4())  # an owner without suggestions
    assert "Suggestions appear after a reprocess" in page.locator("#people-empty").inner_text()
    check_page(page, "suggested-people-empty")


def wait_images(page: Any, count: int) -> None:
    """``count`` suggestion pictures, every one loaded and decoded (a broken one has no width)."""
    assert page.locator("#suggestions img.face").count() == count
    broken = "() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    wait_for(lambda: not page.evaluate(broken), 15, "the images to load", interval=0.2)
