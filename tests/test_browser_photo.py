"""The photo flow in a real Chromium: a photo with two faces uploaded on a
face model, the faces outlined, the aligned crop, and the counterfactual
pasted back onto the photo (issue 24). Writes only to tmp folders."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from test_browser import (  # test_browser's module-scoped server fixture, reused
    choose_source,
    idle,
    server,  # noqa: F401 (a fixture: pytest finds it here by name)
)
from test_browser_demo import open_session
from test_browser_inputs import choose_model
from test_photo_flow import png, side_by_side

from dashboard.photo_panel import PASTED

pytestmark = pytest.mark.browser


@pytest.fixture
def page(server, browser):  # noqa: F811 (the imported fixture)
    page = open_session(browser, server.url)
    yield page
    page.context.close()


def test_an_uploaded_photo_gets_its_counterfactual_pasted_back(page):
    choose_model(page, "moustache-hkr")
    choose_source(page, "Upload an image")
    uploader = page.locator('[data-testid="stFileUploader"]').filter(
        has_text="An image file"
    )
    uploader.locator('input[type="file"]').set_input_files(
        files=[
            {"name": "two.png", "mimeType": "image/png", "buffer": png(side_by_side())}
        ]
    )
    expect(page.get_by_text(PASTED, exact=True)).to_be_visible()
    idle(page, "the photo flow")
    expect(page.get_by_text("Your photo: 2 faces found")).to_be_visible()
    expect(page.get_by_text("Aligned face (the model's input)")).to_be_visible()
    expect(page.get_by_text("2 faces: which one?")).to_be_visible()
    pasted = page.locator('[data-testid="stImage"]').filter(has_text=PASTED)
    expect(pasted.locator("img")).to_have_count(1)
    box = pasted.locator("img").bounding_box()
    assert box is not None and box["width"] > 200  # shown, not a thumbnail
    headline = page.locator('[data-testid="stMain"] h3').filter(has_text="→").first
    expect(headline).to_be_visible()
