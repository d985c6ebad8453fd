"""Every input kind, then a model switch and a method switch, in a real Chromium.

A newcomer's first hour (issue 20): after "Upload an image" or "Draw" the
method pills showed no selection and the sliders their minimum while the
result had used overshoot 1, and a model switch then failed with "unknown
method None". Here each input kind (test image, Grace Hopper, an upload, a
drawing, the browser's fake camera) is followed by a model switch and a
method switch; after each step one method pill is selected, the controls
show exactly the values the result says it ran with ("Ran …" under the
views), and the result is flipped. Writes only to tmp folders.
"""

from __future__ import annotations

import math
import re

import pytest
from playwright.sync_api import Page, expect
from test_browser import (  # test_browser's module-scoped server fixture, reused
    STEP_MS,
    choose_source,
    digit_png,
    idle,
    server,  # noqa: F401 (a fixture: pytest finds it here by name)
    wait,
)
from test_browser_demo import WATCH_RUN, model_box, model_label, open_session, settle

pytestmark = pytest.mark.browser

VIDEO_PLAYING = """() => [...document.querySelectorAll('video')]
    .some(v => v.readyState >= 2 && v.videoWidth > 0)"""
CANVAS_READY = """() => [...document.querySelectorAll('iframe')]
    .some(f => f.getBoundingClientRect().height > 200)"""


@pytest.fixture
def page(server, browser):  # noqa: F811 (the imported fixture)
    page = open_session(browser, server.url)
    page.context.grant_permissions(["camera"])
    yield page
    page.context.close()


def headline(page: Page) -> str:
    return (
        page.locator('[data-testid="stMain"] h3')
        .filter(has_text="→")
        .first.inner_text()
    )


def ran(page: Page) -> str:
    caption = page.locator('[data-testid="stCaptionContainer"]').filter(
        has_text=re.compile(r"^Ran ")
    )
    expect(caption).to_have_count(1)
    return caption.inner_text().strip()


def slider_value(page: Page, name: str) -> float:
    return float(page.get_by_role("slider", name=name).input_value())


def assert_consistent(page: Page, method: str) -> None:
    """One pill selected (`method`), controls equal to what the result ran with,
    and a flipped result."""
    pills = page.get_by_role("radiogroup", name="Method").get_by_role("radio")
    checked = [p.inner_text().strip() for p in pills.all() if p.is_checked()]
    assert checked == [method], f"selected method pills: {checked}"
    text = ran(page)
    assert text.startswith(f"Ran {method}:"), text
    overshoot = re.search(r"overshoot ([\d.]+)", text)
    slider = page.get_by_role("slider", name=re.compile("^Overshoot"))
    if overshoot:
        assert slider_value(
            page, "Overshoot (× the initial margin, past the boundary)"
        ) == (pytest.approx(float(overshoot.group(1)))), text
    else:
        expect(slider).to_have_count(0)
    step = re.search(r"step size ([\d.]+)", text)
    if step:
        got = slider_value(
            page, "Step size (1 = one Newton step; smaller = smooth gradient flow)"
        )
        assert got == pytest.approx(float(step.group(1))), text
    box = page.get_by_role("checkbox", name="Keep pixels in [0, 1]")
    assert box.is_checked() == ("pixels kept in [0, 1]" in text), text
    assert headline(page).endswith("(flipped)"), headline(page)


def choose_method(page: Page, label: str) -> None:
    methods = page.get_by_role("radiogroup", name="Method")
    page.evaluate(WATCH_RUN)
    methods.get_by_role("radio", name=label, exact=True).click()
    settle(page, label)
    expect(methods.get_by_role("radio", name=label, exact=True)).to_be_checked()


def choose_model(page: Page, name: str) -> None:
    box = model_box(page)
    box.click()
    page.evaluate(WATCH_RUN)
    page.get_by_role("option", name=name).first.click()
    settle(page, f"the explorer on {name}")
    expect(box).to_have_value(model_label(name))


def upload(page: Page) -> None:
    choose_source(page, "Upload an image")
    uploader = page.locator('[data-testid="stFileUploader"]').filter(
        has_text="An image file"
    )
    uploader.locator('input[type="file"]').set_input_files(
        files=[{"name": "ring.png", "mimeType": "image/png", "buffer": digit_png()}]
    )


def draw(page: Page) -> None:
    choose_source(page, "Draw")
    wait(page, CANVAS_READY, "the drawing canvas")
    canvas = page.frame_locator("iframe").first.locator("canvas").last
    expect(canvas).to_be_visible()
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy - 70)  # an upright ring: a drawn zero
    page.mouse.down()
    for k in range(1, 41):
        angle = 2 * math.pi * k / 40
        page.mouse.move(cx + 45 * math.sin(angle), cy - 70 * math.cos(angle))
    page.mouse.up()


def camera(page: Page) -> None:
    choose_source(page, "Camera")
    wait(page, VIDEO_PLAYING, "the fake camera's video")
    button = page.get_by_role("button", name="Take Photo")
    expect(button).to_be_enabled(timeout=STEP_MS)
    button.click()


INPUTS = {
    "test image": lambda page: None,  # the first screen's input
    "Grace Hopper": lambda page: choose_source(page, "Grace Hopper (built-in face)"),
    "upload": upload,
    "draw": draw,
    "camera": camera,
}
SWITCH_TO = {
    "test image": "mnist10-hkr",
    "Grace Hopper": "moustache-hkr",
    "upload": "mnist10-hkr",
    "draw": "mnist10-hkr",
    "camera": "moustache-hkr",
}


@pytest.mark.parametrize("kind", list(INPUTS))
def test_an_input_then_a_model_switch_then_a_method_switch(page, kind):
    INPUTS[kind](page)
    expect(page.get_by_role("radiogroup", name="Method")).to_be_visible(timeout=STEP_MS)
    expect(
        page.locator('[data-testid="stMain"] h3').filter(has_text="→")
    ).to_have_count(1, timeout=STEP_MS)
    idle(page, f"the result for the {kind}")
    assert_consistent(page, "Transport counterfactual")

    choose_model(page, SWITCH_TO[kind])
    errors = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    assert not errors, errors
    assert_consistent(page, "Transport counterfactual")

    choose_method(page, "DeepFool")
    assert_consistent(page, "DeepFool")
