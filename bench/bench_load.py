"""Load: ten people open the dashboard at once and use the explorer together.

Run: python bench/bench_load.py [--sessions 10] [--rounds 3] [--json PATH]
     [--model mnist08-hkr] [--method deepfool] [--server-cpus 0,1]
     [--server-env OMP_NUM_THREADS=1] [--browser-per-session]
     [--client-nice 19] [--long-report [--report-model mnist08-hkr]]

Starts `streamlit run dashboard/app.py` on a free loopback port (the browser
tests' `DashboardServer`) and drives N concurrent headless browser sessions
through the counterfactual explorer with Playwright's async API:

1. all sessions open the app at the same moment and wait for the first
   result (reported as "first load", not as an interaction);
2. then, for each round, every session performs three interactions, and all
   sessions start each interaction together (an asyncio barrier, so the
   server gets N reruns at once: the worst case of a forum demo):
   - "image": click the "Test image" slider's track at a session-specific,
     not yet seen index (one click commits one value, hence one rerun; arrow
     keys rerun at every step), so every session needs new attacks, model and
     twin;
   - "method": switch the method to another one (DeepFool by default): new
     attacks on the same image;
   - "method back": switch back to the transport counterfactual: everything
     is cached by then, so this is the cost of a rerun and its rendering.

An interaction's latency runs from the action (the click) until the new
result is rendered (checked every 50 ms, not at every animation frame: see
POLL_MS in tests/browser_helpers.py): the same wait as tests/test_browser.py
(script not running, no stale element, the caption of the expected test
image, three metrics whose text differs from before the action). Should a result be
identical to the previous one, the wait also ends once a run that started
after the action is over (counted as "unchanged" in the report).

One Chromium, one browser context per session (the default), rather than one
Chromium per session: a context is a separate profile (own cookies, storage
and websocket), so the server sees N independent Streamlit sessions exactly as
with N browsers, and Chromium still renders each context in its own renderer
process. What a browser per session would add is N more browser, GPU and
network-service processes (about 100+ MiB and some CPU each) competing with
the server for the same cores; real users render on their own machines, so
that would only make the server-side numbers worse for the wrong reason.
`--browser-per-session` runs that variant for comparison. Either way the
client renders on this machine, so the latencies include the rendering of N
pages on shared cores; the report splits CPU time between the server, the
client (Playwright's driver and Chromium) and the rest of the machine, per
step, and gives the server's CPU time per interaction and per burst. On a
machine with more cores, `--server-cpus 0,1` pins the server to two of them
and the browsers to the others: the server on 2 cores, its users elsewhere.

Server memory: a thread reads VmRSS and VmHWM from /proc/<pid>/status of the
server process and its children every 0.2 s; the report gives the peak sum of
RSS (MiB), the kernel's high-water mark and the RSS before the first session
and at the end. The load average (and the CPU used by other processes) is
reported too: numbers taken on a busy machine are pessimistic.

`--long-report`: one more session, on the robustness report page (1000 test
images), runs a long report during every other round (rounds 1, 3, ...) and
clicks its Stop at the end of that round; the other rounds are the reference,
in the same run. The report then shares the server with the ten explorers
through the shared work queue (`dashboard/work_queue.py`); the summary gives
the explorer's latency with and without the report, their ratio, how many
images the report did, how often it showed its place in line, and how long
its Stop took. `--server-env LIPNET_REPORT_REST=0` runs the report flat out
(no rest between batches), `--server-env LIPNET_HEAVY_SLOTS=99` without the
queue's limit. Use an even number of rounds (e.g. `--rounds 4`: alone,
with the report, alone, with the report); 4 rounds x 10 sessions stay within
the 48 test images, so every new image is new to the server.

Target: worst interaction under 3 s on the MNIST models on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from browser_helpers import (  # noqa: E402
    POLL_MS,
    SLIDER_TRACK,
    DashboardServer,
    launch_chromium_async,
    slider_point,
)
from playwright.async_api import Error as PlaywrightError  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402
from test_browser import IDLE, RESULT_FOR  # noqa: E402

from lipnet import zoo  # noqa: E402
from lipnet.attacks import METHOD_LABELS  # noqa: E402

DEFAULT_MODEL = "mnist08-hkr"  # the app's default (first shipped model)
VIEWPORT = {"width": 1400, "height": 1000}
TARGET_S = 3.0
SCREENSHOTS = ROOT / "screenshots"
MIB = 1024 * 1024
TICK = os.sysconf("SC_CLK_TCK")

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


# --------------------------------------------------------------------------
# /proc: memory and CPU of process trees


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds user+system) of a process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (bytes) and Threads of a process; empty if it is gone."""
    out: dict[str, int] = {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
        elif key == "Threads":
            out[key] = int(value)
    return out


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    return sum(st[1] for p in pids if (st := _stat(p)) is not None)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already in user
    return (total - idle) / TICK, total / TICK


async def wait_for(page, js: str, who: str, what: str, timeout_ms: float, arg=None):
    """Wait for a JS condition on a page; on timeout fail naming the session."""
    try:
        return await page.wait_for_function(
            js, arg=arg, timeout=timeout_ms, polling=POLL_MS
        )
    except PlaywrightError as e:
        raise RuntimeError(f"{who}: timed out waiting for {what}: {e}") from None


class Periodic(threading.Thread):
    """Calls `tick` every `interval` seconds until stopped (and once more then)."""

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.interval = interval
        self._halt = threading.Event()

    def tick(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.tick()

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.tick()


class ServerSampler(Periodic):
    """Samples the server's process tree every `interval` s: RSS, HWM, threads."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(interval)
        self.pid = pid
        self.peak_rss = self.peak_hwm = self.peak_threads = 0
        self.last_rss = 0
        self.load_max = 0.0
        self.n = 0

    def tick(self) -> None:
        rss = hwm = threads = 0
        for p in process_tree(self.pid):
            s = _status(p)
            rss += s.get("VmRSS", 0)
            hwm = max(hwm, s.get("VmHWM", 0))
            threads += s.get("Threads", 0)
        self.last_rss = rss
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_hwm = max(self.peak_hwm, hwm)
        self.peak_threads = max(self.peak_threads, threads)
        self.load_max = max(self.load_max, os.getloadavg()[0])
        self.n += 1


class ClientNicer(Periodic):
    """Lowers the priority of this script's descendants (Playwright's driver,
    Chromium and every renderer it starts) to niceness `nice`, so the server
    goes first on shared cores: as if the users' browsers ran elsewhere.

    Chromium starts each process in a session of its own, and the kernel's
    autogroups share the CPU fairly between sessions before niceness counts:
    so each process's autogroup is set to `nice` as well.
    """

    def __init__(self, server_pid: int, nice: int, interval: float = 0.2):
        super().__init__(interval)
        self.server_pid, self.nice = server_pid, nice
        self.done: set[int] = set()

    def tick(self) -> None:
        server = set(process_tree(self.server_pid))
        for p in process_tree(os.getpid()):
            if p in server or p in self.done:
                continue
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, p, self.nice)
                Path(f"/proc/{p}/autogroup").write_text(str(self.nice))
                self.done.add(p)


# --------------------------------------------------------------------------
# One session


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


# --------------------------------------------------------------------------
# One more session: a long robustness report (--long-report)

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


def phase(args, round_: int) -> str:
    """'alone', or 'report' for the rounds during which the report runs."""
    return "report" if args.long_report and round_ % 2 == 1 else "alone"


def target_index(s: int, round_: int, sessions: int, n: int, current: int) -> int:
    """A session-specific test image, not seen before by anyone while n allows."""
    index = (1 + s + round_ * sessions) % n
    return (index + 1) % n if index == current else index


async def run_session(
    sess: Session,
    args,
    url: str,
    barrier: asyncio.Barrier,
    mark,
    reporter: Reporter | None = None,
) -> None:
    async def together(label: str) -> None:
        if await barrier.wait() == 0:  # one session per crossing marks the step
            mark(label)

    async def report_for(round_: int | None) -> None:
        """Between rounds, one session starts or stops the long report."""
        if reporter is not None and await barrier.wait() == 0:
            if round_ is not None and phase(args, round_) == "report":
                mark(f"{round_}:start report")
                await reporter.start(round_)
            else:
                mark(f"{'end' if round_ is None else round_}:stop report")
                await reporter.stop()

    try:
        await sess.open(url, args.model)
        for r in range(args.rounds):
            index = target_index(sess.s, r, args.sessions, sess.n_images, sess.index)
            where = {"phase": phase(args, r)}
            await report_for(r)
            await together(f"{r}:image")
            await sess.timed("image", lambda i=index: sess.move_slider(i), r, **where)
            await together(f"{r}:method")
            await sess.timed(
                "method",
                lambda: sess.choose_method(args.method),
                r,
                method=args.method,
                **where,
            )
            await together(f"{r}:method back")
            await sess.timed(
                "method back",
                lambda: sess.choose_method("transport"),
                r,
                method="transport",
                **where,
            )
        await report_for(None)
        await together("end")
    except asyncio.BrokenBarrierError:
        raise  # another session failed and says why
    except BaseException:
        barrier.abort()
        shot = await sess.screenshot(f"bench-load-failed-session{sess.s}.png")
        print(f"session {sess.s} failed; screenshot: {shot}", file=sys.stderr)
        raise


# --------------------------------------------------------------------------
# The run


def summary(times: list[float]) -> dict:
    times = sorted(times)
    return {
        "n": len(times),
        "median_s": round(statistics.median(times), 3),
        "p90_s": round(times[min(len(times) - 1, int(0.9 * len(times)))], 3),
        "max_s": round(times[-1], 3),
        "min_s": round(times[0], 3),
    }


def server_times(records: list[dict]) -> list[float]:
    """The server's share of each interaction (where the websocket showed it)."""
    return [r["server_seconds"] for r in records if r["server_seconds"] is not None]


class CpuClock:
    """CPU seconds so far of the server's tree, of this process's other
    descendants (Playwright's driver and Chromium) and of the whole machine."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid

    def __call__(self) -> dict:
        server = set(process_tree(self.server_pid))
        client = [p for p in process_tree(os.getpid()) if p not in server]
        busy, total = machine_cpu()
        return {
            "t": time.perf_counter(),
            "server": cpu_seconds(list(server)),
            "client": cpu_seconds(client),
            "busy": busy,
            "total": total,
        }


def cpu_between(a: dict, b: dict) -> dict:
    server, client = b["server"] - a["server"], b["client"] - a["client"]
    busy = b["busy"] - a["busy"]
    return {
        "wall_s": round(b["t"] - a["t"], 2),
        "server_cpu_s": round(server, 2),
        "client_cpu_s": round(client, 2),
        "other_cpu_s": round(max(busy - server - client, 0.0), 2),
        "machine_busy_fraction": round(busy / max(b["total"] - a["total"], 1e-9), 3),
    }


async def drive(args, server: DashboardServer) -> dict:
    sessions: list[Session] = []
    marks: list[tuple[str, dict]] = []
    async with async_playwright() as p:
        browsers = []
        if not args.browser_per_session:
            browsers.append(await launch_chromium_async(p))
        for s in range(args.sessions):
            if args.browser_per_session:
                browsers.append(await launch_chromium_async(p))
            context = await browsers[-1].new_context(viewport=VIEWPORT)
            context.set_default_timeout(args.timeout * 1000)
            sessions.append(Session(s, await context.new_page(), args.timeout * 1000))
        reporter = None
        if args.long_report:
            context = await browsers[-1].new_context(viewport=VIEWPORT)
            context.set_default_timeout(args.timeout * 1000)
            reporter = Reporter(
                await context.new_page(), args.timeout * 1000, args.report_model
            )
            await reporter.open(server.url)
        clock = CpuClock(server.proc.pid)
        barrier = asyncio.Barrier(args.sessions)
        load0 = os.getloadavg()
        marks.append(("first load", clock()))
        await asyncio.gather(
            *(
                run_session(
                    sess,
                    args,
                    server.url,
                    barrier,
                    lambda k: marks.append((k, clock())),
                    reporter,
                )
                for sess in sessions
            )
        )
        load1 = os.getloadavg()
        for b in browsers:
            await b.close()
    steps = {
        label: cpu_between(a, b) for (label, a), (_, b) in itertools.pairwise(marks)
    }
    return {
        "sessions": sessions,
        "reporter": reporter,
        "steps": steps,
        "total": cpu_between(marks[0][1], marks[-1][1]),
        "interactions": cpu_between(marks[1][1], marks[-1][1]),
        "load": {"start": load0, "end": load1},
    }


def report(args, run: dict, sampler: ServerSampler, rss_idle: int) -> dict:
    sessions: list[Session] = run["sessions"]
    records = [r for sess in sessions for r in sess.records]
    times = [r["seconds"] for r in records]
    kinds = ("image", "method", "method back")
    worst = max(records, key=lambda r: r["seconds"])
    steps = run["steps"]
    by_kind = {}
    for k in kinds:
        labels = [label for label in steps if label.endswith(f":{k}")]
        server_cpu = sum(steps[label]["server_cpu_s"] for label in labels)
        by_kind[k] = {
            **summary([r["seconds"] for r in records if r["kind"] == k]),
            "server": summary(server_times([r for r in records if r["kind"] == k])),
            # Server CPU per interaction and per burst (all sessions at once):
            # a burst cannot end sooner than its CPU time over the cores, nor,
            # for its pure-Python part (the GIL), sooner than that part's time.
            "server_cpu_per_interaction_s": round(
                server_cpu / (len(labels) * args.sessions), 3
            ),
            "server_cpu_per_burst_s": round(server_cpu / len(labels), 2),
        }
    return {
        "config": {
            "sessions": args.sessions,
            "rounds": args.rounds,
            "model": args.model,
            "method": args.method,
            "browsers": "one per session" if args.browser_per_session else "one",
            "server_env": dict(args.server_env),
            "server_cpus": sorted(args.server_cpus) if args.server_cpus else "all",
            "client_nice": args.client_nice,
            "client_processes_reniced": run.get("reniced", 0),
            "long_report": args.long_report,
        },
        "interactions": {
            **summary(times),
            "worst": worst,
            "server": summary(server_times(records)),
            "unchanged_results": sum(r["result"] == "unchanged" for r in records),
            "by_kind": by_kind,
        },
        "per_session": {
            str(sess.s): {
                "median_s": round(
                    statistics.median(r["seconds"] for r in sess.records), 3
                ),
                "max_s": round(max(r["seconds"] for r in sess.records), 3),
                "first_load_s": round(sess.first_load_s, 3),
            }
            for sess in sessions
        },
        "first_load": summary([sess.first_load_s for sess in sessions]),
        "server_memory": {
            "rss_before_sessions_mib": round(rss_idle / MIB, 1),
            "peak_rss_mib": round(sampler.peak_rss / MIB, 1),
            "vmhwm_mib": round(sampler.peak_hwm / MIB, 1),
            "rss_end_mib": round(sampler.last_rss / MIB, 1),
            "peak_threads": sampler.peak_threads,
            "samples": sampler.n,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_start": [round(v, 2) for v in run["load"]["start"]],
            "loadavg_end": [round(v, 2) for v in run["load"]["end"]],
            "loadavg_1min_max": round(sampler.load_max, 2),
            "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
        "cpu": {
            "total": run["total"],
            "interactions": run["interactions"],
            "steps": steps,
        },
        "target": {
            "worst_interaction_below_s": TARGET_S,
            "met": max(times) < TARGET_S,
            "server_met": max(server_times(records)) < TARGET_S,
        },
        **({"long_report": long_report(run, records)} if run["reporter"] else {}),
        "records": records,
    }


def long_report(run: dict, records: list[dict]) -> dict:
    """The explorers' latency with and without the long report, and the report's
    own rounds (images done, place in line, time to stop)."""
    out: dict = {"report_model": run["reporter"].model}
    for name in ("alone", "report"):
        mine = [r for r in records if r.get("phase") == name]
        out[name] = {
            **summary([r["seconds"] for r in mine]),
            "server": summary(server_times(mine)),
            "by_kind": {
                k: summary([r["seconds"] for r in mine if r["kind"] == k])
                for k in ("image", "method", "method back")
            },
        }
    a, b = out["alone"], out["report"]
    out["ratio_report_over_alone"] = {
        k: round(b[k] / a[k], 3) for k in ("median_s", "p90_s", "max_s")
    }
    out["ratio_report_over_alone"]["server_median_s"] = round(
        b["server"]["median_s"] / a["server"]["median_s"], 3
    )
    out["report_rounds"] = run["reporter"].rounds
    return out


def print_long_report(lr: dict) -> None:
    print(
        f"\nexplorer latency without and with a long report ({lr['report_model']}, "
        f"{REPORT_IMAGES} images) running in one more session:"
    )
    print(
        "  phase          n   median     p90   worst   server: median   worst"
        "   image med  method med  back med"
    )
    for name in ("alone", "report"):
        v = lr[name]
        k = v["by_kind"]
        print(
            f"  {'with report' if name == 'report' else 'alone':12s} {v['n']:4d}"
            f" {v['median_s']:7.2f} s {v['p90_s']:5.2f} s {v['max_s']:5.2f} s"
            f" {v['server']['median_s']:12.2f} s {v['server']['max_s']:5.2f} s"
            f" {k['image']['median_s']:9.2f} s {k['method']['median_s']:9.2f} s"
            f" {k['method back']['median_s']:7.2f} s"
        )
    r = lr["ratio_report_over_alone"]
    print(
        f"  ratio with / without: median {r['median_s']:.2f}, p90 {r['p90_s']:.2f}, "
        f"worst {r['max_s']:.2f}; server's share median {r['server_median_s']:.2f}"
    )
    for rr in lr["report_rounds"]:
        print(
            f"  report in round {rr['round']}: {rr['images']} images in "
            f"{rr['seconds']:.1f} s ({rr['images_per_s']:.1f}/s, restarted "
            f"{rr['restarts']}×), running at Stop: "
            f"{rr['still_running_at_stop']}; waiting in {rr['samples_waiting']} of "
            f"{rr['samples']} samples, places seen {rr['places_seen']}; Stop took "
            f"{rr['stop_s']:.2f} s (first batch {rr['first_batch_s']:.2f} s after Run)"
        )


def print_report(rep: dict) -> None:
    c, i, m = rep["config"], rep["interactions"], rep["machine"]
    mem, cpu = rep["server_memory"], rep["cpu"]["total"]
    print(
        f"\n{c['sessions']} sessions × {c['rounds']} rounds × 3 interactions on "
        f"{c['model']} (method {c['method']}), {c['browsers']} Chromium"
        + (f", server env {c['server_env']}" if c["server_env"] else "")
        + (
            f", server pinned to CPUs {c['server_cpus']}"
            if c["server_cpus"] != "all"
            else ""
        )
        + (f", browsers at nice {c['client_nice']}" if c["client_nice"] else "")
    )
    print(
        f"machine: {m['cpus']} CPUs, load average {m['loadavg_start'][0]:.2f} at "
        f"start, {m['loadavg_1min_max']:.2f} max (1 min), {m['loadavg_end'][0]:.2f} "
        f"at end; CPU busy {100 * cpu['machine_busy_fraction']:.0f}% over "
        f"{cpu['wall_s']:.0f} s: server {cpu['server_cpu_s']:.0f} s, Chromium + "
        f"driver {cpu['client_cpu_s']:.0f} s, other processes "
        f"{cpu['other_cpu_s']:.0f} s"
    )
    w = i["worst"]
    print(
        f"\ninteractions: n={i['n']}  median {i['median_s']:.2f} s  p90 "
        f"{i['p90_s']:.2f} s  worst {i['max_s']:.2f} s (session {w['session']}, "
        f"round {w['round']}, {w['kind']})"
    )
    sv = i["server"]
    print(
        f"  the server's share (request to its last message, without rendering): "
        f"median {sv['median_s']:.2f} s  worst {sv['max_s']:.2f} s (n={sv['n']})"
    )
    print(
        "  kind          median     worst   server: median    worst"
        "   server CPU per interaction   per burst"
    )
    for k, v in i["by_kind"].items():
        print(
            f"  {k:12s} {v['median_s']:6.2f} s  {v['max_s']:6.2f} s   "
            f"{v['server']['median_s']:10.2f} s {v['server']['max_s']:6.2f} s"
            f"{v['server_cpu_per_interaction_s']:17.3f} s"
            f"{v['server_cpu_per_burst_s']:19.2f} s"
        )
    if i["unchanged_results"]:
        print(f"  ({i['unchanged_results']} results identical to the previous one)")
    f = rep["first_load"]
    print(
        f"first load (all at once): median {f['median_s']:.2f} s, "
        f"worst {f['max_s']:.2f} s"
    )
    print("\nsession  median    worst  first load")
    for s, v in rep["per_session"].items():
        print(
            f"{s:>7s}  {v['median_s']:6.2f} s {v['max_s']:6.2f} s  "
            f"{v['first_load_s']:6.2f} s"
        )
    print(
        f"\nserver memory: peak RSS {mem['peak_rss_mib']:.0f} MiB (VmHWM "
        f"{mem['vmhwm_mib']:.0f} MiB), {mem['rss_before_sessions_mib']:.0f} MiB "
        f"before the sessions, {mem['rss_end_mib']:.0f} MiB at the end; up to "
        f"{mem['peak_threads']} threads"
    )
    if "long_report" in rep:
        print_long_report(rep["long_report"])
    t = rep["target"]
    print(
        f"target: worst interaction < {t['worst_interaction_below_s']:.0f} s: "
        + ("met" if t["met"] else f"NOT met ({i['max_s']:.2f} s)")
        + "; the server's share: "
        + ("met" if t["server_met"] else f"NOT met ({sv['max_s']:.2f} s)")
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=10, help="concurrent sessions")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of 3 interactions")
    ap.add_argument("--model", default=DEFAULT_MODEL, choices=list(zoo.list_models()))
    ap.add_argument(
        "--method",
        default="deepfool",
        choices=[m for m in METHOD_LABELS if m != "transport"],
        help="the method switched to (and back from) in each round",
    )
    ap.add_argument("--json", type=Path, help="write the report as JSON here")
    ap.add_argument(
        "--timeout", type=float, default=180.0, help="seconds allowed per step"
    )
    ap.add_argument(
        "--browser-per-session",
        action="store_true",
        help="one Chromium per session instead of one context per session",
    )
    ap.add_argument(
        "--server-env",
        action="append",
        default=[],
        type=lambda kv: tuple(kv.split("=", 1)),
        metavar="KEY=VALUE",
        help="environment for the server, e.g. OMP_NUM_THREADS=1 (repeatable)",
    )
    ap.add_argument(
        "--server-cpus",
        type=lambda v: {int(c) for c in v.split(",")},
        metavar="0,1",
        help="pin the server to these CPUs and this script and its Chromium to "
        "the others: on a machine with more cores, the server on 2 cores with "
        "the users' browsers elsewhere",
    )
    ap.add_argument(
        "--client-nice",
        type=int,
        default=0,
        metavar="N",
        help="run this script and its Chromium at niceness N (e.g. 19): the "
        "server goes first on shared cores, as if the users' browsers ran on "
        "their own machines; rendering still happens here, last",
    )
    ap.add_argument(
        "--long-report",
        action="store_true",
        help="one more session runs a long robustness report during every "
        "other round (use an even --rounds, e.g. 4); the others are the reference",
    )
    ap.add_argument(
        "--report-model",
        default=DEFAULT_MODEL,
        choices=list(zoo.list_models()),
        help="the long report's model",
    )
    args = ap.parse_args(argv)
    if args.long_report and args.rounds < 2:
        ap.error("--long-report needs at least 2 rounds (one without, one with)")
    if args.sessions < 1 or args.rounds < 1:
        ap.error("--sessions and --rounds must be at least 1")
    if args.server_cpus is not None:
        available = os.sched_getaffinity(0)
        if not args.server_cpus < available:
            ap.error(
                f"--server-cpus must be a proper subset of the CPUs {sorted(available)}"
            )
    return args


def pin(server_pid: int, cpus: set[int]) -> None:
    """The server's threads (and its later ones) on `cpus`, this process (and
    the Chromium it starts later) on the other CPUs."""
    for tid in os.listdir(f"/proc/{server_pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), cpus)
    os.sched_setaffinity(0, os.sched_getaffinity(0) - cpus)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with DashboardServer(env=dict(args.server_env)) as server:
        if args.server_cpus is not None:
            pin(server.proc.pid, args.server_cpus)
        sampler = ServerSampler(server.proc.pid)
        sampler.tick()
        rss_idle = sampler.last_rss
        threads: list[Periodic] = [sampler]
        if args.client_nice:
            threads.append(ClientNicer(server.proc.pid, args.client_nice))
        for t in threads:
            t.start()
        try:
            run = asyncio.run(drive(args, server))
        except (RuntimeError, PlaywrightError, asyncio.BrokenBarrierError) as e:
            print(
                f"\nFAILED: {e}\n\nserver log:\n{server.log()[-4000:]}", file=sys.stderr
            )
            return 1
        finally:
            for t in threads:
                with contextlib.suppress(RuntimeError):
                    t.stop()
    if args.client_nice:
        run["reniced"] = len(threads[1].done)
    rep = report(args, run, sampler, rss_idle)
    print_report(rep)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rep, indent=2) + "\n")
        print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
