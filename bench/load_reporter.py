"""bench_load's long report session (--long-report): a robustness report that
runs during every other round, its place in line sampled, its Stop timed."""

from __future__ import annotations

import asyncio
import contextlib
import time

from load_browser import DEFAULT_MODEL, IDLE, PlaywrightError, wait_for

REPORT_IMAGES = 1000  # the report page's largest number of test images
# "N of M images" on the report's progress bar: N, or -1 before there is one.
REPORT_DONE = """() => {
    const bar = document.querySelector('[data-testid="stProgress"]');
    const m = bar === null ? null : bar.innerText.match(/(\\d+) of (\\d+) images/);
    return m === null ? -1 : parseInt(m[1]);
}"""
# The place in line the report's waiting message shows now (or 0), the images
# done, and whether the page is idle (the report over).
REPORT_STATE = f"""() => {{
    let place = 0;
    for (const e of document.querySelectorAll('[data-testid="stAlertContainer"]')) {{
        const m = e.innerText.match(/number (\\d+) in line/);
        if (m !== null) place = parseInt(m[1]);
    }}
    return [place, ({REPORT_DONE})(), ({IDLE})()];
}}"""


class Reporter:
    """The session that runs a long report while the explorers do their round."""

    def __init__(self, page, timeout_ms: float, model: str):
        self.page, self.timeout_ms, self.model = page, timeout_ms, model
        self.rounds: list[dict] = []
        self._current: dict | None = None
        self._sampler: asyncio.Task | None = None

    async def wait(self, js: str, what: str, arg=None):
        return await wait_for(
            self.page, js, "report session", what, self.timeout_ms, arg
        )

    async def open(self, url: str) -> None:
        await self.page.goto(f"{url}/report", timeout=self.timeout_ms)
        await self.wait(IDLE, "the report page")
        if self.model != DEFAULT_MODEL:
            box = self.page.locator('[data-testid="stSidebar"]').get_by_role(
                "combobox", name="Model"
            )
            await box.click()
            await self.page.get_by_role("option", name=self.model).first.click()
            await self.page.wait_for_timeout(300)
            await self.wait(IDLE, f"the report page on {self.model}")
        slider = self.page.get_by_role("slider", name="Test images")
        await slider.focus()
        await self.page.keyboard.press("End")
        await self.wait(
            f"() => document.querySelector('[aria-label=\"Test images\"]')"
            f"?.getAttribute('aria-valuenow') === '{REPORT_IMAGES}' "
            f"|| [...document.querySelectorAll('input[type=range]')]"
            f".some(e => e.value === '{REPORT_IMAGES}')",
            "the slider at 1000 images",
        )
        await self.page.wait_for_timeout(300)
        await self.wait(IDLE, "the report page with 1000 images")

    async def start(self, round_: int) -> None:
        """Click Run and wait for the first batch on the progress bar."""
        t0 = time.perf_counter()
        await self.page.locator(".st-key-report_run button").click()
        await self.wait(f"() => ({REPORT_DONE})() > 0", "the report's first batch")
        self._current = {
            "round": round_,
            "first_batch_s": round(time.perf_counter() - t0, 3),
            "t": time.perf_counter(),
            "places": [],
            "restarts": 0,
        }
        self._sampler = asyncio.create_task(self._sample(self._current))

    async def _sample(self, cur: dict) -> None:
        """Every 0.2 s, the place in line shown (0: not waiting); a report
        that is over starts again, so one runs for the whole round."""
        with contextlib.suppress(PlaywrightError):
            while True:
                place, done, idle = await self.page.evaluate(REPORT_STATE)
                cur["places"].append(place)
                if idle and done >= REPORT_IMAGES:
                    await self.page.locator(".st-key-report_run button").click()
                    cur["restarts"] += 1
                    await self.wait(
                        f"() => ({REPORT_DONE})() < {REPORT_IMAGES}", "a new report"
                    )
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        """Click the report's Stop and time it until the page is idle."""
        cur, self._current = self._current, None
        if cur is None:
            return
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        done = await self.page.evaluate(REPORT_DONE)
        running = await self.page.evaluate(
            "() => document.querySelector('[data-testid=\"stApp\"]')"
            ".getAttribute('data-test-script-state') === 'running'"
        )
        t0 = time.perf_counter()
        await self.page.locator(".st-key-report_stop button").click()
        await self.wait(IDLE, "the report to stop")
        stop_s = time.perf_counter() - t0
        after = await self.page.evaluate(REPORT_DONE)
        seconds = t0 - cur.pop("t")
        places = cur.pop("places")
        self.rounds.append(
            {
                **cur,
                "seconds": round(seconds, 2),
                "images": done + REPORT_IMAGES * cur["restarts"],
                "images_after_stop": after,
                "images_per_s": round(
                    (done + REPORT_IMAGES * cur["restarts"]) / max(seconds, 1e-9), 2
                ),
                "still_running_at_stop": running and done < REPORT_IMAGES,
                "stop_s": round(stop_s, 3),
                "samples": len(places),
                "samples_waiting": sum(p > 0 for p in places),
                "places_seen": sorted({p for p in places if p > 0}),
            }
        )
