"""The dashboard end to end: a real server, a real headless Chromium.

`streamlit run dashboard/app.py` serves on a free loopback port; Playwright
drives the system Chromium through the explorer like a user would: a test
digit, the transport counterfactual and its certificate, the baseline model,
a bad image and a bad model folder uploaded through the browser's file input.
It measures how long an interaction takes to show its new result.

The tests write only to pytest's temporary folders: full-page screenshots
(and a screenshot of the page when a wait times out) go to a `screenshots`
folder under pytest's base temp, the latency numbers to the test's tmp_path.
To refresh the benchmark file bench/browser_latency.json (bench/RESULTS.md),
ask for it:

    LIPNET_BROWSER_LATENCY=bench/browser_latency.json \
        .venv/bin/python -m pytest tests/test_browser.py -k latency

Generous timeouts: a 2-core CI machine may be busy with other work.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from browser_helpers import POLL_MS, ROOT, DashboardServer
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from lipnet import zoo

pytestmark = pytest.mark.browser

# Where test_interaction_latency also writes its numbers (relative to the
# repository), when set: the benchmark run. Unset, only to the test's tmp_path.
LATENCY_ENV = "LIPNET_BROWSER_LATENCY"
MODELS = zoo.list_models()
FIRST_LOAD_MS = 180_000  # first page: imports, model loading, first attacks
STEP_MS = 120_000  # one interaction on a slow, busy machine
LATENCY_STEPS = 6

IDLE = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app !== null
        && app.getAttribute('data-test-script-state') === 'notRunning'
        && app.getAttribute('data-test-connection-state') === 'CONNECTED'
        && document.querySelector('[data-stale="true"]') === null;
}"""
RESULT_FOR = """([index, previous]) => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (app === null
        || app.getAttribute('data-test-script-state') !== 'notRunning'
        || document.querySelector('[data-stale="true"]') !== null) return false;
    const captions = [
        ...document.querySelectorAll('[data-testid="stCaptionContainer"]')];
    if (!captions.some(c => c.innerText.startsWith(`Test image #${index},`)))
        return false;
    const metrics = [...document.querySelectorAll('[data-testid="stMetric"]')];
    if (metrics.length !== 3) return false;
    return metrics.map(m => m.innerText).join('|') !== previous;
}"""

SAME_METRICS = """([previous]) =>
    [...document.querySelectorAll('[data-testid="stMetric"]')]
        .map(m => m.innerText).join('|') === previous"""


# --------------------------------------------------------------------------
# Fixtures: one server and one browser per module, a fresh session per test


_SERVERS: list[DashboardServer] = []
_SHOTS: list[Path] = []  # this module's screenshot folder, for `wait`


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    """A temporary folder for this module's full-page screenshots."""
    folder = tmp_path_factory.mktemp("screenshots")
    _SHOTS.append(folder)
    yield folder
    _SHOTS.remove(folder)


@pytest.fixture(scope="module")
def server():
    with DashboardServer() as srv:
        _SERVERS.append(srv)
        yield srv
        _SERVERS.remove(srv)


@pytest.fixture
def page(server, browser, screenshots):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(STEP_MS)
    page = context.new_page()
    page.goto(server.url, timeout=FIRST_LOAD_MS)
    wait(page, IDLE, "the first run of the explorer", FIRST_LOAD_MS)
    # Idle can come a moment before the last element is drawn: wait for all three.
    expect(page.locator('[data-testid="stMetric"]')).to_have_count(3, timeout=STEP_MS)
    no_exception(page)
    yield page
    context.close()


# --------------------------------------------------------------------------
# Helpers


def wait(page: Page, js: str, what: str, timeout: float = STEP_MS, arg=None) -> None:
    """Wait for a JS predicate; on timeout fail with the page and the server log."""
    try:
        page.wait_for_function(js, arg=arg, timeout=timeout, polling=POLL_MS)
    except PlaywrightError as e:
        folder = _SHOTS[-1] if _SHOTS else Path(tempfile.mkdtemp(prefix="shots-"))
        shot = folder / f"failed-{what.replace(' ', '-')[:60]}.png"
        try:
            full_screenshot(page, shot)
        except PlaywrightError:
            shot = None
        text = page.locator('[data-testid="stMain"]').inner_text(timeout=5000)[:1500]
        log = _SERVERS[-1].log()[-3000:] if _SERVERS else ""
        raise AssertionError(
            f"timed out after {timeout / 1000:.0f} s waiting for {what} ({e}).\n"
            f"Screenshot: {shot}\nPage text:\n{text}\nServer log:\n{log}"
        ) from None


def idle(page: Page, what: str) -> None:
    wait(page, IDLE, what)
    no_exception(page)


def no_exception(page: Page) -> None:
    errors = page.locator('[data-testid="stException"]').all_inner_texts()
    assert not errors, f"the app raised: {errors}"


def metric_texts(page: Page) -> str:
    return "|".join(page.locator('[data-testid="stMetric"]').all_inner_texts())


def metric_value(page: Page, label: str) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text=label)
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


def certificate_text(page: Page) -> str:
    return page.locator('[data-testid="stAlertContentSuccess"]').inner_text()


def full_screenshot(page: Page, path: Path) -> None:
    """The whole page. Streamlit scrolls inside its main section, so grow the
    viewport to the content's height for the shot, then restore it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate(
        """() => Math.max(...['stMain', 'stSidebar', 'stAppViewContainer']
            .map(id => document.querySelector(`[data-testid="${id}"]`))
            .filter(e => e !== null)
            .map(e => Math.max(e.scrollHeight, ...[...e.querySelectorAll('*')]
                .map(c => c.scrollHeight))))"""
    )
    page.set_viewport_size({"width": size["width"], "height": int(height) + 40})
    page.wait_for_timeout(800)  # let plotly relayout
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)


def choose_model(page: Page, name: str) -> None:
    box = page.locator('[data-testid="stSidebar"]').get_by_role(
        "combobox", name="Model"
    )
    box.click()
    page.get_by_role("option", name=name).first.click()
    expect(box).to_have_value(label(name))
    idle(page, f"the explorer on {name}")


def label(name: str) -> str:
    """The sidebar's label: certified models carry a badge, the others none."""
    return (
        f"{name} · certified" if zoo.read_spec(MODELS[name]).get("certified") else name
    )


def image_slider(page: Page):
    return page.get_by_role("slider", name="Test image")


def move_slider(page: Page, key: str, index: int) -> float:
    """Press `key` on the test-image slider; the seconds until the new result
    (for test image `index`) is rendered and the app is idle again."""
    previous = metric_texts(page)
    slider = image_slider(page)
    slider.focus()
    start = time.perf_counter()
    page.keyboard.press(key)
    wait(page, RESULT_FOR, f"the result for test image {index}", arg=[index, previous])
    elapsed = time.perf_counter() - start
    no_exception(page)
    return elapsed


def image_with(page: Page, caption: str):
    """The image(s) whose caption contains `caption`."""
    return page.locator('[data-testid="stImage"]').filter(has_text=caption)


def images_loaded(page: Page) -> int:
    """How many of the page's images the browser has fetched and decoded."""
    return page.evaluate(
        """() => [...document.querySelectorAll('[data-testid="stImage"] img')]
            .filter(img => img.complete && img.naturalWidth > 0).length"""
    )


def choose_source(page: Page, label: str) -> None:
    page.get_by_role("radiogroup", name="Input").get_by_text(label, exact=True).click()
    idle(page, f"the input {label!r}")


# --------------------------------------------------------------------------
# Tests


def test_transport_counterfactual_on_a_test_digit(page, screenshots):
    expect(page.get_by_role("heading", name="Counterfactual explorer")).to_be_visible()
    before = certificate_text(page)
    move_slider(page, "ArrowRight", 1)
    expect(image_slider(page)).to_have_value("1")
    expect(page.get_by_text("Test image #1, true class:")).to_be_visible()

    # The image views are PNGs the browser has decoded; the plots are SVG.
    for caption in (
        "Original: ",
        "Counterfactual: ",
        "Difference",
        "(no certificate)",
        "Saliency",
    ):
        expect(image_with(page, caption).first).to_be_visible()
    assert images_loaded(page) >= 9
    for title in ("Certificate vs the change", "The path: margin vs distance"):
        chart = page.locator("svg").filter(has_text=title)
        expect(chart.first).to_be_visible()
    # Every point of the path carries its values on hover.
    points = page.locator("svg").filter(has_text="The path").locator("circle title")
    assert points.count() >= 2
    assert points.first.text_content().startswith("distance 0.000, margin ")
    # On request the three views become plots with every pixel's value on hover.
    page.get_by_text("Pixel values on hover").click()
    hover = page.locator(".js-plotly-plot").filter(has_text="Original: ")
    expect(hover).to_be_visible()
    idle(page, "the interactive views")

    headline = page.locator("h3").filter(has_text="→").first.inner_text()
    assert "(flipped)" in headline or "(not flipped)" in headline
    certificate = certificate_text(page)
    assert certificate.startswith("No change of L2 size below r =")
    assert certificate != before, "the certificate did not change with the image"
    radius = float(metric_value(page, "Certified radius r"))
    assert f"r = {radius:.3f}" in certificate
    distance = float(metric_value(page, "L2 size of the change"))
    if "(flipped)" in headline:
        assert distance >= radius - 1e-3
    full_screenshot(page, screenshots / "explorer-mnist08-hkr.png")

    # dashboard/style.css is in force: an element marked stale dims after
    # 0.5 s in one step, not in a 1 s fade.
    stale = page.locator('[data-testid="stMetric"]').first.evaluate(
        """e => { const c = e.closest('[data-testid="stElementContainer"]');
                  c.setAttribute('data-stale', 'true');
                  const s = getComputedStyle(c);
                  const out = [s.transitionDuration, s.transitionDelay];
                  c.removeAttribute('data-stale');
                  return out; }"""
    )
    assert stale == ["0s", "0.5s"], stale

    # One click on a method's pill runs it: DeepFool has no step-size slider.
    methods = page.get_by_role("radiogroup", name="Method")
    methods.get_by_role("radio", name="DeepFool", exact=True).click()
    expect(page.get_by_text("Step size (1 = one Newton step")).to_have_count(0)
    idle(page, "DeepFool")
    expect(methods.get_by_role("radio", name="DeepFool")).to_be_checked()
    expect(page.get_by_text("Overshoot (× the initial margin")).to_be_visible()
    assert float(metric_value(page, "Certified radius r")) == radius  # same input


def test_baseline_has_no_certificate(page, screenshots):
    choose_model(page, "mnist08-baseline")
    expect(page.get_by_text("no certificate", exact=True).first).to_be_visible()
    warning = page.locator('[data-testid="stAlertContentWarning"]')
    expect(warning.first).to_contain_text("This model is unconstrained")
    assert metric_value(page, "Certified radius r") == "none"
    assert page.locator('[data-testid="stAlertContentSuccess"]').count() == 0
    expect(image_with(page, "mnist08-hkr (certified)")).to_be_visible()
    # The choice holds through the next interaction.
    move_slider(page, "ArrowRight", 1)
    assert metric_value(page, "Certified radius r") == "none"
    full_screenshot(page, screenshots / "explorer-baseline.png")


def test_bad_image_upload_shows_its_message(page, screenshots):
    choose_source(page, "Upload an image")
    expect(page.get_by_text("Waiting for an image.")).to_be_visible()
    uploader = page.locator('[data-testid="stFileUploader"]').filter(
        has_text="An image file"
    )
    uploader.locator('input[type="file"]').set_input_files(
        files=[
            {
                "name": "bad.png",
                "mimeType": "image/png",
                "buffer": b"this is not an image",
            }
        ]
    )
    error = page.locator('[data-testid="stAlertContentError"]')
    expect(error).to_contain_text("This image cannot be used")
    idle(page, "the bad image's message")
    assert "not a recognised image" in error.inner_text()
    assert page.locator('[data-testid="stMetric"]').count() == 0
    full_screenshot(page, screenshots / "bad-upload.png")

    # A real image then works.
    uploader.locator('input[type="file"]').set_input_files(
        files=[{"name": "zero.png", "mimeType": "image/png", "buffer": digit_png()}]
    )
    expect(page.get_by_text("Certified radius r")).to_be_visible()
    idle(page, "the uploaded image's result")
    expect(error).to_have_count(0)


def test_bad_model_upload_keeps_the_page_working(page, screenshots):
    before = metric_texts(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Upload a model folder").click()
    rng = np.random.default_rng(0)
    sidebar.locator('input[type="file"]').set_input_files(
        files=[
            {"name": "spec.json", "mimeType": "application/json", "buffer": b"{oops"},
            {
                "name": "weights.safetensors",
                "mimeType": "application/octet-stream",
                "buffer": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
            },
        ]
    )
    error = sidebar.locator('[data-testid="stAlertContentError"]')
    expect(error).to_contain_text("This model cannot be loaded")
    idle(page, "the bad model's message")
    assert "not valid JSON" in error.inner_text()
    box = sidebar.get_by_role("combobox", name="Model")
    expect(box).to_have_value("mnist08-hkr · certified")
    wait(page, SAME_METRICS, "the result from before the upload", arg=[before])
    full_screenshot(page, screenshots / "bad-model-upload.png")

    # The page keeps working: a new test image gives a new certificate.
    move_slider(page, "ArrowRight", 1)
    assert certificate_text(page).startswith("No change of L2 size below r =")
    expect(error).to_contain_text("This model cannot be loaded")


def test_interaction_latency(page, tmp_path):
    """Seconds from a test-image change to its rendered result, per model."""
    names = ["mnist08-hkr"] + [n for n in ("moustache-hkr",) if n in MODELS]
    report = {}
    for name in names:
        if name != "mnist08-hkr":
            choose_model(page, name)
        last = int(image_slider(page).get_attribute("max"))
        move_slider(page, "End", last)  # not timed: unseen images from the end
        times = []
        for step in range(1, LATENCY_STEPS + 1):
            before = certificate_text(page)
            times.append(move_slider(page, "ArrowLeft", last - step))
            assert certificate_text(page) != before
        report[name] = {
            "median_s": round(statistics.median(times), 3),
            "max_s": round(max(times), 3),
            "min_s": round(min(times), 3),
            "n": len(times),
            "times_s": [round(t, 3) for t in times],
            "action": "test image slider, one key press, transport counterfactual "
            "(model and twin), until the new result is rendered",
        }
    report["_machine"] = {
        "cpus": os.cpu_count(),
        "browser": "headless Chromium via Playwright",
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    text = json.dumps(report, indent=2) + "\n"
    (tmp_path / "browser_latency.json").write_text(text)
    if os.environ.get(LATENCY_ENV):  # the benchmark run: the tracked numbers
        (ROOT / os.environ[LATENCY_ENV]).write_text(text)
    print(text)
    for name in names:
        assert report[name]["n"] >= 5
        assert report[name]["max_s"] < STEP_MS / 1000


def digit_png() -> bytes:
    import io

    from PIL import Image

    yy, xx = np.mgrid[:28, :28]
    ring = np.abs(np.hypot(yy - 14, (xx - 14) * 1.4) - 8) < 2.2
    buf = io.BytesIO()
    Image.fromarray((ring * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------
# The other pages


def open_page(page: Page, link: str, heading: str) -> None:
    """Follow a link of the sidebar's navigation and wait for the page."""
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.get_by_role("link", name=link).click()
    expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=STEP_MS)
    idle(page, f"the page {link!r}")


def set_slider(page: Page, name: str, key: str, value: str) -> None:
    """Press `key` (Home, End) on a slider and wait for the rerun."""
    slider = page.get_by_role("slider", name=name)
    slider.focus()
    page.keyboard.press(key)
    expect(slider).to_have_value(value)
    idle(page, f"{name} = {value}")


def download(page: Page, label: str, folder: Path) -> Path:
    """Click a download button and save what the browser receives."""
    with page.expect_download() as info:
        page.get_by_role("button", name=label).click()
    path = folder / info.value.suggested_filename
    info.value.save_as(path)
    return path


def test_report_page_runs_and_opens_the_least_robust_input(page, tmp_path, screenshots):
    open_page(page, "Robustness report", "Robustness report")
    expect(page.get_by_text("Choose how many test images")).to_be_visible()
    images = page.locator('[data-testid="stMetric"]').filter(has_text="Images")

    # A long report (1000 images in small batches, at most 5) stopped after
    # its first batches keeps its partial results on screen.
    set_slider(page, "Test images", "End", "1000")
    set_slider(page, "Largest batch", "Home", "0")  # a select slider: option 0, 5
    page.get_by_role("button", name="Run the report").click()
    expect(images).to_be_visible(timeout=STEP_MS)
    main = page.locator('[data-testid="stMainBlockContainer"]')
    main.get_by_role("button", name="Stop").click()  # not the header's
    idle(page, "the stopped report")
    done = int(metric_value(page, "Images"))
    assert 1 <= done < 1000
    expect(page.get_by_text(f"{done} of 1000 images")).to_be_visible()
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    page.wait_for_timeout(1500)
    assert int(metric_value(page, "Images")) == done, "the report did not stop"

    set_slider(page, "Test images", "Home", "10")
    page.get_by_role("button", name="Run the report").click()
    expect(page.get_by_text("10 of 10 images")).to_be_visible(timeout=STEP_MS)
    expect(images).to_contain_text("10")
    idle(page, "the report on 10 images")
    for title in ("Accuracy under L2 perturbations", "Certified radius", "ratio"):
        chart = page.locator(".js-plotly-plot").filter(has_text=title)
        expect(chart.first).to_be_visible()
    ratio = float(metric_value(page, "Median found / radius"))
    assert ratio >= 1.0 - 1e-3, "an attack beat a certificate"
    full_screenshot(page, screenshots / "report-mnist08-hkr.png")

    csv = download(page, "Download per-image results (CSV)", tmp_path)
    lines = csv.read_text().strip().splitlines()
    assert len(lines) == 11 and "radius" in lines[0]

    weakest = image_with(page, "r = ").first
    index = int(re.match(r"#(\d+):", weakest.inner_text().strip()).group(1))
    opens = page.locator('[data-testid="stButton"]').filter(has_text="Open")
    opens.first.click()
    expect(page.get_by_role("heading", name="Counterfactual explorer")).to_be_visible(
        timeout=STEP_MS
    )
    expect(page.get_by_text(f"Test image #{index}, true class:")).to_be_visible(
        timeout=STEP_MS
    )
    idle(page, "the explorer on the least robust input")
    expect(page.get_by_text("Certified radius r")).to_be_visible()


def test_playground_page_trains_and_certifies_a_point(page, screenshots):
    open_page(page, "2D playground", "2D playground")
    for label in ("hKR (1-Lipschitz): training accuracy", "unconstrained: training"):
        metric = page.locator('[data-testid="stMetric"]').filter(has_text=label)
        expect(metric).to_contain_text("%", timeout=STEP_MS)
    for title in ("hKR (1-Lipschitz)", "unconstrained", "Is |f| a distance?"):
        chart = page.locator(".js-plotly-plot").filter(has_text=title)
        expect(chart.first).to_be_visible()
    disc = page.get_by_text("certified disc of radius")
    before = disc.inner_text()
    point = page.get_by_role("spinbutton", name="Your point: x")
    point.fill("1.2")
    point.press("Enter")
    expect(disc).not_to_have_text(before, timeout=STEP_MS)
    idle(page, "the playground with a new point")
    f = float(re.search(r"f\(point\) = ([+-][\d.]+)", disc.inner_text()).group(1))
    radius = float(re.search(r"radius (\d+\.\d+)", disc.inner_text()).group(1))
    assert radius == pytest.approx(abs(f), abs=2e-3)  # |f| is the radius (L = 1)
    full_screenshot(page, screenshots / "playground.png")


def test_model_card_page_exports_a_model_that_computes_the_same(
    page, tmp_path, screenshots
):
    import zipfile

    import torch

    import lipnet

    open_page(page, "Model card", "Model card: mnist08-hkr")
    assert metric_value(page, "Declared Lipschitz constant") == "1"
    assert float(metric_value(page, "Measured upper bound (now)")) <= 1 + 1e-3
    expect(page.locator(".js-plotly-plot").filter(has_text="Certified")).to_be_visible()
    full_screenshot(page, screenshots / "model-card.png")

    archive = download(page, "Plain-layer export", tmp_path)
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        folder = "model-plain"  # a fixed name: nothing from the spec is a path
        assert {f"{folder}/spec.json", f"{folder}/weights.safetensors"} <= names
        z.extractall(tmp_path)
    plain = lipnet.load(tmp_path / folder)
    model = lipnet.load(MODELS["mnist08-hkr"])
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), model(x), atol=1e-5, rtol=0)

    choose_model(page, "mnist08-baseline")
    expect(
        page.get_by_role("heading", name="Model card: mnist08-baseline")
    ).to_be_visible()
    expect(page.get_by_text("This model is unconstrained")).to_be_visible()
