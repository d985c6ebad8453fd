"""The robustness report's slices and downloads in a real browser.

A user runs a 10-image report on the default digit model (0 vs 8): the
progress text ends with the time it took, the slices chart and table show the
classes 0 and 8, the ε select redraws the chart, and the two new downloads
hold what they say (the slices CSV; the zip of results.csv and each image's
δ and counterfactual as .npy). Reuses test_browser's server; writes only to
tmp folders (a screenshot at 1280 × 720 goes to the test's tmp_path).
"""

from __future__ import annotations

import csv
import io
import zipfile

import numpy as np
import pytest
from playwright.sync_api import Page, expect
from test_browser import (  # test_browser's module-scoped server fixture, reused
    FIRST_LOAD_MS,
    IDLE,
    STEP_MS,
    choose_model,
    download,
    full_screenshot,
    idle,
    open_page,
    server,  # noqa: F401 (a fixture: pytest finds it here by name)
    set_slider,
    wait,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def page(server, browser):  # noqa: F811 (the imported fixture)
    context = browser.new_context(
        viewport={"width": 1280, "height": 720}, accept_downloads=True
    )
    context.set_default_timeout(STEP_MS)
    page = context.new_page()
    page.goto(server.url, timeout=FIRST_LOAD_MS)
    wait(page, IDLE, "the first run of the explorer", FIRST_LOAD_MS)
    yield page
    context.close()


def chart(page: Page, title: str):
    return page.locator(".js-plotly-plot").filter(has_text=title)


def test_report_shows_slices_and_downloads_the_arrays(page, tmp_path):
    open_page(page, "Robustness report", "Robustness report")
    set_slider(page, "Test images", "Home", "10")
    page.get_by_role("button", name="Run the report").click()
    expect(page.get_by_text("10 of 10 images · done in")).to_be_visible(timeout=STEP_MS)
    idle(page, "the report on 10 images")

    expect(page.get_by_role("heading", name="Slices")).to_be_visible()
    bars = chart(page, "Accuracy per slice at ε = ")
    expect(bars).to_be_visible()
    for label in ("all images (n=10)", "class 0 (n=8)", "class 8 (n=2)"):
        expect(bars.get_by_text(label)).to_be_visible()
    table = page.locator('[data-testid="stDataFrame"]')
    expect(table).to_be_visible()
    # The grid is drawn on a canvas; its accessible table holds the cells.
    first_column = table.locator('[role="gridcell"][aria-colindex="1"]')
    expect(first_column).to_have_text(["all images", "class 0", "class 8"])

    table.scroll_into_view_if_needed()
    page.wait_for_timeout(800)  # let plotly and the grid draw
    page.screenshot(path=str(tmp_path / "report-slices-1280x720.png"))
    full_screenshot(page, tmp_path / "report-slices-full.png")

    box = page.get_by_role("combobox", name="ε for the chart")
    box.click()  # the first click after a run may only focus it: type instead
    page.keyboard.type("0.25")
    page.keyboard.press("Enter")
    expect(box).to_have_value("0.25")
    idle(page, "the chart at ε = 0.25")
    expect(chart(page, "Accuracy per slice at ε = 0.25 (L2)")).to_be_visible()

    slices = download(page, "Download the slices (CSV)", tmp_path)
    table_rows = list(csv.DictReader(io.StringIO(slices.read_text())))
    assert [r["slice"] for r in table_rows] == ["all images", "class 0", "class 8"]

    arrays = download(page, "Download per-image arrays (zip of .npy)", tmp_path)
    with zipfile.ZipFile(arrays) as zf:
        results = list(csv.DictReader(io.StringIO(zf.read("results.csv").decode())))
        assert len(results) == 10
        first = results[0]
        delta = np.load(io.BytesIO(zf.read("rows/000000_delta.npy")))
        cf = np.load(io.BytesIO(zf.read("rows/000000_counterfactual.npy")))
    assert delta.shape == cf.shape == (1, 28, 28)
    assert np.linalg.norm(delta) == pytest.approx(float(first["found_l2"]), abs=1e-4)


def test_a_face_report_completes_with_its_slices(page, tmp_path):
    """Issue 20: a face report crashed after 3 or 4 faces (two redraws of the
    same chart in one run had one element ID)."""
    choose_model(page, "moustache-hkr")
    open_page(page, "Robustness report", "Robustness report")
    set_slider(page, "Test images", "Home", "10")
    page.get_by_role("button", name="Run the report").click()
    done = page.get_by_text("10 of 10 images · done in")
    failed = page.get_by_text("Something went wrong on this page")
    expect(done.or_(failed)).to_be_visible(timeout=STEP_MS)
    expect(failed).to_have_count(0)
    idle(page, "the face report on 10 images")
    expect(page.get_by_role("heading", name="Slices")).to_be_visible()
    bars = chart(page, "Accuracy per slice at ε = ")
    expect(bars).to_be_visible()
    for label in ("all images (n=10)", "Male (n=", "not Male (n="):
        expect(bars.get_by_text(label).first).to_be_visible()
    table = page.locator('[data-testid="stDataFrame"]')
    first_column = table.locator('[role="gridcell"][aria-colindex="1"]')
    expect(first_column.first).to_have_text("all images")
    assert "Male" in first_column.all_inner_texts()
    full_screenshot(page, tmp_path / "face-report-full.png")
