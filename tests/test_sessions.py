"""Concurrent browser sessions on one server never see each other's state.

One `streamlit run` server, one headless Chromium, three browser contexts
(three independent Streamlit sessions). Their actions are interleaved: each
round issues every session's action first (a click on the "Test image"
slider's track, or a model change in the sidebar) and only then waits for the
results, so the server reruns the sessions' scripts at the same time. After
each round every session must show its own input and its own result: the
caption "Test image #i, true class: …" for its own i, the certified radius
that lipnet computes for that image (formatted like the app's metric), and
its own model; the baseline session carries "no certificate", the others a
certificate.

Generous timeouts: a 2-core CI machine may be busy with other work. On a
failure every page is saved as sessions-failed-*.png in the test's tmp_path
(pytest's temporary folder, named in the failure message).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from browser_helpers import (
    POLL_MS,
    SLIDER_TRACK,
    DashboardServer,
    slider_point,
)
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page
from test_browser import IDLE, RESULT_FOR

import lipnet
from lipnet import zoo

pytestmark = pytest.mark.browser

FIRST_LOAD_MS = 240_000  # three first runs at once on a busy machine
STEP_MS = 180_000
HKR, BASELINE = "mnist08-hkr", "mnist08-baseline"
GALLERY = 48  # the explorer's test images


@dataclass
class Expected:
    """What lipnet says about a model's test images."""

    classes: list[str]
    labels: list[int]
    radii: list[float | None]  # None: no certificate

    @classmethod
    def of(cls, name: str) -> Expected:
        model = lipnet.load(zoo.list_models()[name])
        x, y = zoo.test_images(model.spec, GALLERY)
        certified = zoo.read_spec(zoo.list_models()[name]).get("certified")
        radii = [
            float(lipnet.certified_radius(model, x[i : i + 1])[0])
            if certified
            else None
            for i in range(len(x))
        ]
        return cls(list(model.spec["classes"]), [int(v) for v in y], radii)


@dataclass
class User:
    """One browser session and what it has chosen."""

    name: str
    page: Page
    shots: Path  # where its screenshot goes on a failure
    model: str = HKR
    index: int = 0
    history: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def expected() -> dict[str, Expected]:
    with torch.no_grad():
        return {name: Expected.of(name) for name in (HKR, BASELINE)}


@pytest.fixture(scope="module")
def server():
    with DashboardServer() as srv:
        yield srv


@pytest.fixture
def users(server, browser, tmp_path) -> Iterator[list[User]]:
    contexts = [
        browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(3)
    ]
    users = []
    for name, context in zip("ABC", contexts, strict=True):
        context.set_default_timeout(STEP_MS)
        users.append(User(name, context.new_page(), tmp_path))
    yield users
    for context in contexts:
        with contextlib.suppress(PlaywrightError):
            context.close()


# --------------------------------------------------------------------------
# Helpers


@contextlib.contextmanager
def evidence(users: list[User], server: DashboardServer, what: str):
    """On a failure: every page's screenshot, its history and the server log."""
    try:
        yield
    except (AssertionError, PlaywrightError) as e:
        shots = []
        for u in users:
            path = u.shots / f"sessions-failed-{u.name}.png"
            try:
                u.page.screenshot(path=str(path), full_page=True, timeout=20_000)
                shots.append(str(path))
            except PlaywrightError:
                shots.append(f"(no screenshot of {u.name})")
        histories = "\n".join(f"  {u.name}: {' → '.join(u.history)}" for u in users)
        raise AssertionError(
            f"{what}: {e}\nSessions:\n{histories}\nScreenshots: {shots}\n"
            f"Server log:\n{server.log()[-3000:]}"
        ) from None


def metric_texts(page: Page) -> str:
    return "|".join(page.locator('[data-testid="stMetric"]').all_inner_texts())


def wait_for_result(u: User, previous: str | None, timeout: float = STEP_MS) -> None:
    """The app is idle and shows a (new, unless `previous` is None) result for
    the user's test image."""
    try:
        u.page.wait_for_function(
            RESULT_FOR, arg=[u.index, previous], timeout=timeout, polling=POLL_MS
        )
    except PlaywrightError as e:
        raise AssertionError(
            f"session {u.name}: no result for test image {u.index} on {u.model} "
            f"within {timeout / 1000:.0f} s ({e})"
        ) from None


def click_image(u: User, index: int) -> None:
    """Click the "Test image" slider's track at `index` (one click, one rerun)."""
    slider = u.page.get_by_role("slider", name="Test image")
    slider.scroll_into_view_if_needed()
    x, y = slider_point(slider.evaluate(SLIDER_TRACK), index)
    u.page.mouse.click(x, y)
    value = int(slider.input_value())
    if value != index:  # off by a pixel: step to it with the keys
        slider.focus()
        key = "ArrowRight" if index > value else "ArrowLeft"
        for _ in range(abs(index - value)):
            u.page.keyboard.press(key)
    u.index = index
    u.history.append(f"image {index}")


def choose_model(u: User, name: str) -> None:
    box = u.page.locator('[data-testid="stSidebar"]').get_by_role(
        "combobox", name="Model"
    )
    box.click()
    u.page.get_by_role("option", name=name).first.click()
    u.model = name
    u.history.append(name)


def interleaved(
    users: list[User], server: DashboardServer, actions: dict[str, Callable]
) -> None:
    """Issue every action first, then wait for every session's new result."""
    with evidence(users, server, "issuing the actions"):
        previous = {u.name: metric_texts(u.page) for u in users}
        for u in users:
            if u.name in actions:
                actions[u.name](u)
        start = time.perf_counter()
        in_flight = [
            u.name
            for u in users
            if u.name in actions
            and not u.page.evaluate(RESULT_FOR, [u.index, previous[u.name]])
        ]
    print(f"reruns in flight once all actions were issued: {in_flight}")
    for u in users:
        with evidence(users, server, f"waiting for session {u.name}"):
            wait_for_result(u, previous[u.name] if u.name in actions else None)
    print(f"all results after {time.perf_counter() - start:.1f} s")


def check(u: User, expected: dict[str, Expected]) -> None:
    """The page shows the user's own image, model, radius and certificate."""
    exp = expected[u.model]
    page, i = u.page, u.index
    who = f"session {u.name} ({u.model}, test image {i})"
    errors = page.locator('[data-testid="stException"]').all_inner_texts()
    assert not errors, f"{who}: the app raised: {errors}"
    slider = page.get_by_role("slider", name="Test image")
    assert slider.input_value() == str(i), f"{who}: slider at {slider.input_value()}"
    captions = [
        c
        for c in page.locator('[data-testid="stCaptionContainer"]').all_inner_texts()
        if c.startswith("Test image #")
    ]
    want = f"Test image #{i}, true class: {exp.classes[exp.labels[i]]}"
    assert captions == [want], f"{who}: captions {captions}, want {want!r}"

    box = page.locator('[data-testid="stSidebar"]').get_by_role(
        "combobox", name="Model"
    )
    label = u.model if exp.radii[i] is None else f"{u.model} · certified"
    assert box.input_value() == label, f"{who}: model box says {box.input_value()!r}"

    metric = page.locator('[data-testid="stMetric"]').filter(
        has_text="Certified radius r"
    )
    shown = metric.locator('[data-testid="stMetricValue"]').inner_text().strip()
    success = page.locator('[data-testid="stAlertContentSuccess"]')
    warnings = " ".join(
        page.locator('[data-testid="stAlertContentWarning"]').all_inner_texts()
    )
    if exp.radii[i] is None:
        assert shown == "none", f"{who}: radius {shown}, want none"
        assert "no certificate" in warnings, f"{who}: no 'no certificate' warning"
        assert success.count() == 0, (
            f"{who}: shows a certificate: {success.all_inner_texts()}"
        )
    else:
        want_r = f"{exp.radii[i]:.3f}"
        assert shown == want_r, f"{who}: radius {shown}, lipnet says {want_r}"
        assert success.count() == 1, f"{who}: {success.count()} certificates shown"
        text = success.inner_text()
        assert text.startswith(f"No change of L2 size below r = {want_r}"), (
            f"{who}: certificate {text!r}"
        )
        assert "no certificate" not in warnings, f"{who}: warns {warnings!r}"


def check_all(users, server, expected, what: str) -> None:
    for u in users:
        with evidence(users, server, f"{what}, session {u.name}"):
            check(u, expected)


# --------------------------------------------------------------------------
# The test


def test_concurrent_sessions_keep_their_own_state(users, server, expected):
    start = time.perf_counter()
    b = users[1]
    # All three open the app at once.
    for u in users:
        u.page.goto(server.url, wait_until="commit", timeout=FIRST_LOAD_MS)
    for u in users:
        with evidence(users, server, f"the first run of session {u.name}"):
            u.page.wait_for_function(IDLE, timeout=FIRST_LOAD_MS, polling=POLL_MS)
            wait_for_result(u, None, FIRST_LOAD_MS)
    check_all(users, server, expected, "first load")

    # Round 1: two new images and a model change, at the same time.
    interleaved(
        users,
        server,
        {
            "A": lambda u: click_image(u, 5),
            "B": lambda u: click_image(u, 17),
            "C": lambda u: choose_model(u, BASELINE),
        },
    )
    check_all(users, server, expected, "round 1")

    # Round 2: three new images at the same time, one on the baseline.
    interleaved(
        users,
        server,
        {
            "C": lambda u: click_image(u, 29),
            "A": lambda u: click_image(u, 11),
            "B": lambda u: click_image(u, 23),
        },
    )
    check_all(users, server, expected, "round 2")

    # Round 3: A and C move again while B stays; B must be untouched.
    before_b = metric_texts(b.page)
    interleaved(
        users,
        server,
        {
            "A": lambda u: click_image(u, 40),
            "C": lambda u: click_image(u, 3),
        },
    )
    check_all(users, server, expected, "round 3")
    assert metric_texts(b.page) == before_b, "session B changed without an action"
    assert [u.index for u in users] == [40, 23, 3]
    assert [u.model for u in users] == [HKR, HKR, BASELINE]
    print(f"test_sessions: {time.perf_counter() - start:.1f} s in the browser")
