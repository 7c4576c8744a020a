"""Browser fixtures: Debian's Chromium (``/usr/bin/chromium``) driven by Playwright's sync API,
an axe-core check, and screenshots.

Without Chromium (or Playwright) the browser tests are skipped with the reason, unless
``SCENEDEX_REQUIRE_BROWSER=1`` (CI: ``.ci/run`` installs Chromium and sets it), which makes
that a failure. Playwright's own browser download is not used.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("SCENEDEX_SCREENSHOTS_DIR", ROOT / "test-screenshots"))
"""Where the browser tests write a screenshot of each page (overwritten every run)."""
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
BLOCKING_IMPACTS = ("serious", "critical")


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install -r requirements-dev.lock)"
    if not CHROMIUM.exists():
        return f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium for one test module; skipped (or failed with
    SCENEDEX_REQUIRE_BROWSER=1) when it is missing. Module scope, not session: Playwright's
    sync API keeps an asyncio loop running in the main thread while it is started, and every
    later test that calls ``asyncio.run`` would fail."""
    missing = browser_missing()
    if missing:
        if os.environ.get("SCENEDEX_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{missing} -- required (SCENEDEX_REQUIRE_BROWSER=1)", pytrace=False)
        pytest.skip(f"{missing} (SCENEDEX_REQUIRE_BROWSER=1 makes that a failure)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """The page's axe-core violations of impact serious or critical (rule, impact, help,
    the first offending nodes)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # evaluated, not added as a <script>: the console's CSP refuses inline scripts
        page.evaluate(AXE.read_text())
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ")),
            }));
        }"""
    )
    return [violation for violation in found if violation["impact"] in BLOCKING_IMPACTS]


def check_page(page: Any, name: str) -> None:
    """Screenshot the page as ``SCREENSHOTS/<name>.png`` and at phone width as
    ``<name>-phone.png``, and assert axe-core finds no serious or critical violation."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    violations = axe_violations(page)
    size = page.viewport_size
    page.set_viewport_size(PHONE)
    try:
        page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
        violations += [v for v in axe_violations(page) if v not in violations]
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{name}: the page is {width} px wide at phone width"
    finally:
        page.set_viewport_size(size)
    assert violations == [], f"{name}: accessibility violations {violations}"
