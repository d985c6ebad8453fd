"""What one browser spends on the explorer: per rerun, and per second of waiting.

Run: python bench/bench_browser_cpu.py [--switches 12] [--waits 5]
     [--first-image 20] [--json PATH]

When ten people share a 2-core demo machine with their browsers (as in
bench/bench_load.py), a page's own CPU slows everyone's answer. This measures
the two parts of it in one headless Chromium against a loopback server:

- **rerun**: switching the method between two cached results (one click on
  a pill): the server does almost nothing, so this is the page's update;
- **waiting**: new test images under PGD + binary search, first at its
  smallest settings, then at its largest (the same page, but seconds of
  server work). The page shows its running state meanwhile. The extra CPU
  of a slow image over a fast one, divided by the extra time, is what a
  waiting page costs per second.

Both are measured twice in the same process, in fresh browser contexts on
test images nobody has seen (nothing cached): with the app's stylesheet
(`dashboard/style.css`: stale elements dim in one step, no running man) and
with Streamlit's own animations put back (REFERENCE_CSS); the report gives
the ratios. CPU is read from /proc for all of Chromium's processes (the
renderers are also given apart). The server runs on the same cores, so a
busy machine makes the waiting numbers noisy: compare the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests", ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bench_load import DEFAULT_MODEL, VIEWPORT, Session, _stat  # noqa: E402
from browser_helpers import DashboardServer, launch_chromium_async  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402

# Streamlit 1.67's own values for what dashboard/style.css changes: the
# stale fade (1 s after 0.5 s), the running man, the status widget's fades.
REFERENCE_CSS = """
html body [data-stale="true"] { transition: opacity 1s ease-in 0.5s !important; }
html body [data-testid="stStatusWidgetRunningIcon"] { display: flex !important; }
html body [data-testid="stStatusWidget"].StatusWidget-appear-active,
html body [data-testid="stStatusWidget"].StatusWidget-enter-active,
html body [data-testid="stStatusWidget"].StatusWidget-exit-active {
    transition: opacity 200ms ease-out !important;
}
"""
METHODS = ("deepfool", "transport")


def chromium_cpu() -> dict[str, float]:
    """CPU seconds of this machine's Chromium processes: renderers and the rest."""
    out = {"renderer": 0.0, "other": 0.0}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except OSError:
            continue
        if b"chrom" not in cmd.split(b"\0")[0]:
            continue
        st = _stat(int(entry.name))
        if st is not None:
            out["renderer" if b"--type=renderer" in cmd else "other"] += st[1]
    return out


async def timed_steps(sess: Session, phase: str, steps: list) -> dict:
    """Chromium's CPU and the wall time per step (each commits one change)."""
    await asyncio.sleep(0.5)
    before, start = chromium_cpu(), time.perf_counter()
    for act in steps:
        await sess.timed(phase, act, 0)
    after, wall = chromium_cpu(), time.perf_counter() - start
    per = {k: (after[k] - before[k]) / len(steps) for k in after}
    return {
        "cpu_s": sum(per.values()),
        "by_process_s": per,
        "wall_s": wall / len(steps),
    }


async def search_settings(sess: Session, key: str) -> None:
    """PGD + binary search at its smallest ("Home") or largest ("End")
    settings: the same page, a fraction of a second or seconds of server work."""
    for name in ("Bisection steps", "PGD steps per ε"):
        slider = sess.page.get_by_role("slider", name=name)

        async def press(slider=slider) -> None:
            await slider.focus()
            await sess.page.keyboard.press(key)

        await sess.timed("setup", press, 0)


async def measure(browser, url: str, css: str | None, first: int, args) -> dict:
    """Chromium's CPU per cached rerun, per new image, per slow new image."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    sess = Session(0, page, 300_000)
    await sess.open(url, DEFAULT_MODEL)
    if css:
        await page.add_style_tag(content=css)
    for method in METHODS:  # both results cached, both code paths warm
        await sess.timed("warm-up", lambda m=method: sess.choose_method(m), 0)
    n = args.switches
    out = {
        "rerun": await timed_steps(
            sess,
            "rerun",
            [lambda m=METHODS[i % 2]: sess.choose_method(m) for i in range(n)],
        )
    }
    await sess.timed("setup", lambda: sess.choose_method("pgd_search"), 0)
    n = args.waits  # test images no session has seen: nothing is cached
    for phase, key in (("fast search", "Home"), ("slow search", "End")):
        await search_settings(sess, key)
        out[phase] = await timed_steps(
            sess,
            phase,
            [lambda i=i: sess.move_slider(i) for i in range(first, first + n)],
        )
        first += n
    await context.close()
    fast, slow = out["fast search"], out["slow search"]
    out["cpu_per_rerun_s"] = out["rerun"]["cpu_s"]
    out["seconds_waited"] = slow["wall_s"] - fast["wall_s"]
    out["cpu_per_second_waiting_s"] = (slow["cpu_s"] - fast["cpu_s"]) / max(
        out["seconds_waited"], 1e-6
    )
    return out


async def run(args) -> dict:
    with DashboardServer() as server:
        async with async_playwright() as pw:
            browser = await launch_chromium_async(pw)
            try:
                first = args.first_image
                app = await measure(browser, server.url, None, first, args)
                first += 2 * args.waits
                reference = await measure(
                    browser, server.url, REFERENCE_CSS, first, args
                )
            finally:
                await browser.close()
    ratio = {
        k: app[k] / max(reference[k], 1e-6)
        for k in ("cpu_per_rerun_s", "cpu_per_second_waiting_s")
    }
    return {
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "app": app,
        "streamlit_animations": reference,
        "ratio_app_to_streamlit": ratio,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--switches", type=int, default=12, help="cached method switches")
    ap.add_argument("--waits", type=int, default=5, help="new images, fast and slow")
    ap.add_argument(
        "--first-image", type=int, default=20, help="the first new test image's index"
    )
    ap.add_argument("--json", type=Path, help="write the report as JSON here")
    args = ap.parse_args(argv)
    if args.switches < 1 or args.waits < 1:
        ap.error("--switches and --waits must be at least 1")
    rep = asyncio.run(run(args))
    for name in ("app", "streamlit_animations"):
        r = rep[name]
        print(
            f"{name:22s} CPU per rerun {r['cpu_per_rerun_s']:.3f} s "
            f"(renderer {r['rerun']['by_process_s']['renderer']:.3f} s), "
            f"per second of waiting {r['cpu_per_second_waiting_s']:.3f} s "
            f"(over {r['seconds_waited']:.2f} s per slow image)"
        )
    ratio = rep["ratio_app_to_streamlit"]
    print(
        f"app / Streamlit's animations: per rerun {ratio['cpu_per_rerun_s']:.2f}, "
        f"per second of waiting {ratio['cpu_per_second_waiting_s']:.2f}"
    )
    if args.json:
        args.json.write_text(json.dumps(rep, indent=2) + "\n")
        print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
