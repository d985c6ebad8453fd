"""Screenshots of the explorer, the report and the playground at 1280 × 720.

Run: python docs/make_screenshots.py  (writes docs/explorer.png, docs/report.png,
docs/playground.png). Starts the dashboard on a free port and drives the
system Chromium (tests/browser_helpers.py), as a user would: the explorer's
first screen, the default report on the default model once it is done, the
playground's first screen. Needs LIPNET_DATA (the test images) like the app.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "tests"))
from browser_helpers import DashboardServer, launch_chromium  # noqa: E402

SCREEN = {"width": 1280, "height": 720}
IDLE = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app !== null
        && app.getAttribute('data-test-script-state') === 'notRunning'
        && document.querySelector('[data-stale="true"]') === null;
}"""
WAIT_MS = 300_000


def idle(page: Page) -> None:
    """Wait for the app to finish its run, then for the figures to draw."""
    page.wait_for_timeout(800)
    page.wait_for_function(IDLE, timeout=WAIT_MS, polling=100)
    page.wait_for_timeout(1500)


def main() -> None:
    """Take the three screenshots into docs/."""
    with DashboardServer() as server, sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport=SCREEN)
        page.goto(server.url, timeout=WAIT_MS)
        idle(page)
        page.screenshot(path=str(DOCS / "explorer.png"))

        page.get_by_role("link", name="Robustness report").click()
        idle(page)
        page.get_by_role("button", name="Run the report").click()
        page.get_by_text("· done in").wait_for(timeout=WAIT_MS)
        idle(page)
        # From the progress bar down: the metrics and the whole accuracy curve.
        page.locator('[data-testid="stProgress"]').evaluate(
            "e => e.scrollIntoView({block: 'start'})"
        )
        page.mouse.move(700, 400)
        page.mouse.wheel(0, -90)  # out from under the page's header
        page.mouse.move(700, 20)  # nothing hovered: no figure toolbar
        page.wait_for_timeout(1000)
        page.screenshot(path=str(DOCS / "report.png"))

        page.get_by_role("link", name="2D playground").click()
        idle(page)
        page.mouse.move(700, 20)  # away from the sidebar's collapse button
        page.wait_for_timeout(500)
        page.screenshot(path=str(DOCS / "playground.png"))
        browser.close()


if __name__ == "__main__":
    main()
