"""bench_load's browser driver: one explorer session in a headless Chromium.

`Session` opens the app, times an interaction from the action to its new
result (and the server's share of it, from the websocket's messages),
moves the test image slider and switches the method.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from browser_helpers import POLL_MS, SLIDER_TRACK, slider_point  # noqa: E402
from playwright.async_api import Error as PlaywrightError  # noqa: E402
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402
from test_browser import IDLE, RESULT_FOR  # noqa: E402

from lipnet.attacks import METHOD_LABELS  # noqa: E402

DEFAULT_MODEL = "mnist08-hkr"  # the app's default (first shipped model)
VIEWPORT = {"width": 1400, "height": 1000}
SCREENSHOTS = ROOT / "screenshots"

# Counts the explorer's runs that start after it is armed (before an action).
ARM = """() => {
    window.__lipnetRuns = 0;
    const app = document.querySelector('[data-testid="stApp"]');
    if (app !== null && !window.__lipnetObserver) {
        window.__lipnetObserver = new MutationObserver(() => {
            if (app.getAttribute('data-test-script-state') === 'running')
                window.__lipnetRuns += 1;
        });
        window.__lipnetObserver.observe(
            app, {attributes: true, attributeFilter: ['data-test-script-state']});
    }
}"""
# The new result for test image `index`: "changed", or "unchanged" when a run
# that started after the action is over and its result equals the old one.
NEW_RESULT = f"""([index, previous]) => {{
    const resultFor = {RESULT_FOR};
    if (resultFor([index, previous])) return 'changed';
    if (window.__lipnetRuns > 0 && resultFor([index, null])) return 'unchanged';
    return false;
}}"""


async def wait_for(page, js: str, who: str, what: str, timeout_ms: float, arg=None):
    """Wait for a JS condition on a page; on timeout fail naming the session."""
    try:
        return await page.wait_for_function(
            js, arg=arg, timeout=timeout_ms, polling=POLL_MS
        )
    except PlaywrightError as e:
        raise RuntimeError(f"{who}: timed out waiting for {what}: {e}") from None


class Session:
    def __init__(self, s: int, page, timeout_ms: float):
        self.s, self.page, self.timeout_ms = s, page, timeout_ms
        self.index = 0
        self.records: list[dict] = []
        self.first_load_s: float | None = None
        self.n_images = 0
        # (time, "request" | "finished"): the session's rerun requests and the
        # server's end-of-run messages, as the websocket carries them.
        self.runs: list[tuple[float, str]] = []
        page.on("websocket", self._watch)

    def _watch(self, ws) -> None:
        ws.on("framesent", self._sent)
        ws.on("framereceived", self._received)

    def _sent(self, payload) -> None:
        if isinstance(payload, bytes):
            msg = BackMsg()
            msg.ParseFromString(payload)
            if msg.WhichOneof("type") == "rerun_script":
                self.runs.append((time.perf_counter(), "request"))

    def _received(self, payload) -> None:
        if isinstance(payload, bytes):
            msg = ForwardMsg()
            msg.ParseFromString(payload)
            if msg.WhichOneof("type") == "script_finished":
                self.runs.append((time.perf_counter(), "finished"))

    def server_seconds(self, start: float, end: float) -> float | None:
        """From the first rerun request after `start` to the server's last
        end-of-run message before `end`: the server's share of an interaction,
        without the browser's rendering."""
        requests = [t for t, k in self.runs if k == "request" and start <= t <= end]
        finished = [t for t, k in self.runs if k == "finished" and start <= t <= end]
        if not requests or not finished or finished[-1] < requests[0]:
            return None
        return finished[-1] - requests[0]

    async def wait(self, js: str, what: str, arg=None):
        return await wait_for(
            self.page, js, f"session {self.s}", what, self.timeout_ms, arg
        )

    async def check_no_exception(self, what: str) -> None:
        errors = await self.page.locator(
            '[data-testid="stException"]'
        ).all_inner_texts()
        if errors:
            raise RuntimeError(
                f"session {self.s}: the app raised after {what}: {errors}"
            )

    async def metric_texts(self) -> str:
        return "|".join(
            await self.page.locator('[data-testid="stMetric"]').all_inner_texts()
        )

    async def open(self, url: str, model: str) -> None:
        start = time.perf_counter()
        await self.page.goto(url, timeout=self.timeout_ms)
        await self.wait(IDLE, "the first run")
        await self.page.get_by_text("Certified radius r").wait_for()
        self.first_load_s = time.perf_counter() - start
        await self.check_no_exception("the first run")
        if model != DEFAULT_MODEL:  # not timed: the rounds start on `model`
            box = self.page.locator('[data-testid="stSidebar"]').get_by_role(
                "combobox", name="Model"
            )
            previous = await self.metric_texts()
            await self.page.evaluate(ARM)
            await box.click()
            await self.page.get_by_role("option", name=model).first.click()
            await self.wait(NEW_RESULT, f"the explorer on {model}", [0, previous])
        slider = self.page.get_by_role("slider", name="Test image")
        self.n_images = int(await slider.get_attribute("max")) + 1

    async def timed(self, kind: str, act, round_: int, **info) -> None:
        """Run `act` (which commits one change) and time it to its new result."""
        previous = await self.metric_texts()
        await self.page.evaluate(ARM)
        start = time.perf_counter()
        extra = await act() or {}
        handle = await self.wait(
            NEW_RESULT, f"the result of {kind} (round {round_})", [self.index, previous]
        )
        end = time.perf_counter()
        elapsed = end - start
        server_s = self.server_seconds(start, end)
        outcome = await handle.json_value()
        await self.check_no_exception(kind)
        self.records.append(
            {
                "session": self.s,
                "round": round_,
                "kind": kind,
                "seconds": round(elapsed, 3),
                "server_seconds": None if server_s is None else round(server_s, 3),
                "result": outcome,
                "image": self.index,
                **info,
                **extra,
            }
        )

    async def move_slider(self, index: int) -> dict:
        slider = self.page.get_by_role("slider", name="Test image")
        await slider.scroll_into_view_if_needed()
        track = await slider.evaluate(SLIDER_TRACK)
        x, y = slider_point(track, index)
        await self.page.mouse.click(x, y)
        value = int(await slider.input_value())
        presses = index - value
        if presses:  # the click missed by a step or two: fix it with the keys
            await slider.focus()
            for _ in range(abs(presses)):
                await self.page.keyboard.press(
                    "ArrowRight" if presses > 0 else "ArrowLeft"
                )
        self.index = index
        return {"key_presses": abs(presses)} if presses else {}

    async def choose_method(self, method: str) -> None:
        pill = self.page.get_by_role("radiogroup", name="Method").get_by_role(
            "radio", name=METHOD_LABELS[method], exact=True
        )
        await pill.click()

    async def screenshot(self, name: str) -> Path | None:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / name
        try:
            await self.page.screenshot(path=str(path), full_page=True, timeout=20_000)
        except PlaywrightError:
            return None
        return path
