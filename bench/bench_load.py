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
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from browser_helpers import DashboardServer, launch_chromium_async  # noqa: E402
from load_browser import DEFAULT_MODEL, VIEWPORT, Session  # noqa: E402
from load_procs import (  # noqa: E402
    ClientNicer,
    CpuClock,
    Periodic,
    ServerSampler,
    _stat,
    cpu_between,
)
from load_reporter import Reporter  # noqa: E402
from load_results import print_report, report  # noqa: E402
from playwright.async_api import Error as PlaywrightError  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402

from lipnet import zoo  # noqa: E402
from lipnet.attacks import METHOD_LABELS  # noqa: E402

__all__ = ["DEFAULT_MODEL", "VIEWPORT", "Session", "_stat", "main"]
"""What bench_browser_cpu.py imports from here (the driver and /proc live in
load_browser.py and load_procs.py, the results in load_results.py)."""


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
