"""The robustness report's run: batches in turn, paced, the figures redrawn.

Each batch takes a turn in the shared work queue, then goes to the back of
the line; `lipnet.pace` sizes it from the batches done (about 1.5 × the
cost of a one-image batch, at least BATCH_CPU_S), so Stop and other
people's jobs wait for one batch at most. After each batch the report rests
as long as the batch took (`rest_s`, at most a second): even with a core of
its own, a report running flat out holds the GIL often enough to double
everyone else's reruns (bench/RESULTS.md, "Shared work queue"). The partial
figures are redrawn every REDRAW_S seconds, not after every small batch.
LIPNET_REPORT_REST=0 runs reports flat out (a single-user machine).
"""

from __future__ import annotations

import os
import time
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx
from torch import Tensor

from dashboard import eps_units
from dashboard.state import Choice
from dashboard.work_queue import HEAVY
from lipnet.pace import ReportPace, format_eta
from lipnet.report import figures, iter_report, summarize

BATCH_CPU_S = 0.5
REDRAW_S = 2.0
DEFAULT_S = 40.0
"""The default number of images is what the report is planned to do in this
time: under a minute on a busy 2-core machine, where the browser, the
redraws and other users take their share."""


def rest_s() -> float:
    """The rest after each batch, as a share of its time (read at each run).

    Returns:
        LIPNET_REPORT_REST (default 1; 0 runs flat out).
    """
    return float(os.environ.get("LIPNET_REPORT_REST", "1"))


def show_summary(rows: list, draw: int, shape: list) -> None:
    """The metrics and the figures of the images done so far.

    A run redraws them as the report goes (`draw` counts the redraws): each
    chart is keyed by it, since two redraws with the same figure (a batch
    that changed no curve) would otherwise be two elements with one ID.

    Args:
        rows: the report's rows so far (not empty).
        draw: the redraw's number (0 for a drawing after the run).
        shape: the model's input shape (ε in 8-bit units on the axis).
    """
    summary = summarize(rows)
    a, b, c = st.columns(3)
    a.metric("Images", summary["n"])
    b.metric("Clean accuracy", f"{summary['clean_accuracy']:.1%}")
    if summary["certified"] and summary["ratios"]:
        ratios = sorted(summary["ratios"])
        c.metric("Median found / radius", f"{ratios[len(ratios) // 2]:.3f}")
    figs = figures(summary)
    eps_units.on_axis(figs["accuracy_curve"], shape)
    st.plotly_chart(figs["accuracy_curve"], width="stretch", key=f"curve_{draw}")
    left, right = st.columns(2)
    left.plotly_chart(figs["radius_histogram"], width="stretch", key=f"radii_{draw}")
    if "ratio_histogram" in figs:
        right.plotly_chart(
            figs["ratio_histogram"], width="stretch", key=f"ratios_{draw}"
        )


def run(
    report: dict[str, Any],
    choice: Choice,
    x: Tensor,
    y: Tensor,
    bar: Any,
    waiting: Any,
    partial: Any,
) -> int:
    """Do every batch left, moving the progress bar after each.

    A click on Stop interrupts the run there (Streamlit stops a run when a new
    one is requested) and the new run sees the click: rows done so far stay.

    Args:
        report: the session's report ({"key", "rows", "running"}); its rows
            grow, its pace is kept in it, and "running" ends False.
        choice: the model the report is on.
        x: the report's test images.
        y: their labels.
        bar: the page's progress bar.
        waiting: a placeholder for the place in the queue.
        partial: a placeholder for the figures so far.

    Returns:
        How many times the figures were drawn (0 if no batch was left).
    """
    rows = report["rows"]
    rest = rest_s()
    draws = 0

    def show_place(place: int) -> None:
        """Where this report's next batch stands in the queue (a Stop checkpoint)."""
        waiting.info(f"Waiting for a free worker: you are number {place} in line.")

    ctx = get_script_run_ctx()
    owner = ctx.session_id if ctx is not None else "report"
    # The pace (batch sizes, time left) belongs to the report: a rerun in
    # between continues it.
    pace = report.setdefault(
        "pace", ReportPace(report["key"][2], min_seconds=BATCH_CPU_S, rest=rest)
    )
    start, last_draw, began = len(rows), 0.0, time.monotonic()
    bar.progress(
        len(rows) / len(x),
        text=f"{len(rows)} of {len(x)} images · {format_eta(pace.eta(len(x)))}",
    )
    while start < len(x):
        end = min(start + pace.next_size(), len(x))
        x_b, y_b = x[start:end], y[start:end]
        t0 = time.monotonic()
        with HEAVY.slot(owner, on_wait=show_place, poll_s=0.25):
            waiting.empty()
            cpu = time.thread_time()
            batch = next(
                iter_report(
                    choice.model,
                    x_b,
                    y_b,
                    batch_size=end - start,
                    keep_counterfactuals=True,
                )
            )
            cpu = time.thread_time() - cpu
        for r in batch:
            r.index += start
        rows += batch
        start = end
        pause = pace.rest_s(cpu) if start < len(x) else 0.0
        pace.record(len(batch), cpu, time.monotonic() - t0 + pause)
        left = (
            f"done in {time.monotonic() - began:.0f} s"
            if start >= len(x)
            else format_eta(pace.eta(len(x) - start))
        )
        text = f"{len(rows)} of {len(x)} images · {left}"
        bar.progress(len(rows) / len(x), text=text)
        if start >= len(x) or time.monotonic() - last_draw >= REDRAW_S:
            draws += 1
            with partial.container():
                show_summary(rows, draws, choice.spec["input_shape"])
            last_draw = time.monotonic()
        time.sleep(pause)
    report["running"] = False
    return draws
