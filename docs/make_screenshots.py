"""Screenshots of the explorer, the report and the playground at 1280 × 720.

Run: python docs/make_screenshots.py (writes docs/explorer.png,
docs/photo.png, docs/attributes.png, docs/report.png, docs/playground.png;
`python docs/make_screenshots.py photo` or `attributes` takes only that
flow). Starts the dashboard on a free port and drives the system Chromium
(tests/browser_helpers.py), as a user would: the explorer's first screen,
the photo flow, one attribute of celeba-hkr from a shared link, the default
report on the default model once it is done, the playground's first screen.
Needs LIPNET_DATA (the test images) like the app.
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


def photo_flow(page: Page) -> None:
    """Grace Hopper's whole portrait on the moustache model: her face found and
    aligned, and the counterfactual pasted back onto the portrait."""
    page.get_by_role("button", name="Give Grace Hopper a moustache").click()
    idle(page)
    amplify = page.locator('[data-testid="stSlider"]').filter(
        has_text="Amplify the change on the photo"
    )
    amplify.get_by_role("slider").focus()
    for _ in range(2):  # x3, like the difference view of the preset
        page.keyboard.press("ArrowRight")
        idle(page)
    page.get_by_text("After: the counterfactual pasted back").first.evaluate(
        "e => e.scrollIntoView({block: 'end'})"
    )
    page.mouse.move(700, 20)  # nothing hovered
    page.wait_for_timeout(1000)
    page.screenshot(path=str(DOCS / "photo.png"))


def attributes(page: Page, url: str) -> None:
    """celeba-hkr's Eyeglasses output, direction "Remove the eyeglasses", from
    a shared link: the attribute in the sidebar, the direction in the controls."""
    page.goto(f"{url}/?model=celeba-hkr@Eyeglasses&input=test&dir=0", timeout=WAIT_MS)
    idle(page)
    page.mouse.move(700, 20)
    page.screenshot(path=str(DOCS / "attributes.png"))


def main(only: str | None = None) -> None:
    """Take the screenshots into docs/ (`only="photo"` or `"attributes"`: that
    flow alone)."""
    with DashboardServer() as server, sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport=SCREEN)
        if only == "attributes":
            attributes(page, server.url)
            browser.close()
            return
        page.goto(server.url, timeout=WAIT_MS)
        idle(page)
        if only == "photo":
            photo_flow(page)
            browser.close()
            return
        page.screenshot(path=str(DOCS / "explorer.png"))
        photo_flow(page)
        attributes(page, server.url)

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
    main(sys.argv[1] if len(sys.argv) > 1 else None)
