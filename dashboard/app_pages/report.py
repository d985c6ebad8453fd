"""Robustness report: certified vs empirical accuracy over many test images."""

from __future__ import annotations

import os
import time

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from dashboard import state, views
from dashboard.work_queue import HEAVY
from lipnet.report import figures, iter_report, least_robust, summarize, to_csv

st.title("Robustness report")
st.markdown(
    "On many test images: the **certified** accuracy (no perturbation of size ε "
    "can flip the decision, proven) against the **empirical** accuracy under a "
    "PGD attack of size ε (no attack found). The gap between the curves is what "
    "the certificate does not cover; for an unconstrained model only the "
    "empirical curve exists."
)
choice = state.current()
default_n = 200 if choice.spec["input_shape"][0] == 1 else 40
n = st.slider("Test images", 10, 1000, default_n, step=10, key="report_n")
batch = st.select_slider(
    "Largest batch",
    [5, 10, 25],
    25,
    key="report_batch",
    help="Batches shrink to about half a second of work each, so Stop, and "
    "other people's jobs, never wait long.",
)
report_key = (choice.key, n, batch)
go, stop = st.columns(2)
if go.button("Run the report", type="primary", key="report_run"):
    st.session_state.report = {"key": report_key, "rows": [], "running": True}
if stop.button("Stop", key="report_stop") and "report" in st.session_state:
    st.session_state.report["running"] = False

report = st.session_state.get("report")
if report is None or report["key"][0] != choice.key:
    st.info("Choose how many test images, then run the report.")
    st.stop()

images = state.gallery(choice.key, report["key"][1])
if isinstance(images, str):
    st.error(images)
    st.stop()
x, y = images
rows = report["rows"]


def show_summary(rows: list) -> None:
    """The metrics and the figures of the images done so far."""
    summary = summarize(rows)
    a, b, c = st.columns(3)
    a.metric("Images", summary["n"])
    b.metric("Clean accuracy", f"{summary['clean_accuracy']:.1%}")
    if summary["certified"] and summary["ratios"]:
        ratios = sorted(summary["ratios"])
        c.metric("Median found / radius", f"{ratios[len(ratios) // 2]:.3f}")
    figs = figures(summary)
    st.plotly_chart(figs["accuracy_curve"], width="stretch")
    left, right = st.columns(2)
    left.plotly_chart(figs["radius_histogram"], width="stretch")
    if "ratio_histogram" in figs:
        right.plotly_chart(figs["ratio_histogram"], width="stretch")


# One run does every batch and moves the progress bar after each. A click on
# Stop interrupts it there (Streamlit stops a run when a new one is requested)
# and the new run sees the click: rows done so far stay.
# Each batch takes a turn in the shared work queue, then goes to the back of
# the line, and is sized to about BATCH_CPU_S of CPU (measured on the last
# one), so Stop and other people's jobs wait for one small batch at most.
# After each batch the report rests as long as the batch took (REST): even
# with a core of its own, a report running flat out holds the GIL often
# enough to double everyone else's reruns (bench/RESULTS.md, "Shared work
# queue"), so one user's report takes at most about half a core. The partial
# figures are redrawn every REDRAW_S seconds, not after every small batch.
# LIPNET_REPORT_REST=0 runs reports flat out (a single-user machine).
BATCH_CPU_S = 0.5
REST = float(os.environ.get("LIPNET_REPORT_REST", "1"))
REDRAW_S = 2.0
bar = st.progress(len(rows) / len(x), text=f"{len(rows)} of {len(x)} images")
waiting = st.empty()
partial = st.empty()
drawn = False


def show_place(place: int) -> None:
    """Where this report's next batch stands in the queue (a Stop checkpoint)."""
    waiting.info(f"Waiting for a free worker: you are number {place} in line.")


if report["running"]:
    ctx = get_script_run_ctx()
    owner = ctx.session_id if ctx is not None else "report"
    size, start, last_draw = 1, len(rows), 0.0
    while start < len(x):
        end = min(start + size, len(x))
        x_b, y_b = x[start:end], y[start:end]
        with HEAVY.slot(owner, on_wait=show_place, poll_s=0.25):
            waiting.empty()
            cpu = time.thread_time()
            batch = next(iter_report(choice.model, x_b, y_b, batch_size=end - start))
            cpu = time.thread_time() - cpu
        for r in batch:
            r.index += start
        rows += batch
        start = end
        per_image = max(cpu, 1e-3) / len(batch)
        size = max(1, min(report["key"][2], int(BATCH_CPU_S / per_image)))
        bar.progress(len(rows) / len(x), text=f"{len(rows)} of {len(x)} images")
        if start >= len(x) or time.monotonic() - last_draw >= REDRAW_S:
            with partial.container():
                show_summary(rows)
            drawn, last_draw = True, time.monotonic()
        if start < len(x):
            time.sleep(min(cpu * REST, 2 * BATCH_CPU_S))
    report["running"] = False
if not rows:
    st.stop()
if not drawn:
    with partial.container():
        show_summary(rows)

st.subheader("Least robust inputs")
weakest = least_robust(rows)
cols = st.columns(max(len(weakest), 1))
for col, row in zip(cols, weakest, strict=False):
    label = (
        f"r = {row.radius:.2f}"
        if row.radius is not None
        else f"flip at {row.found_l2:.2f}"
    )
    col.image(
        views.image_png(x[row.index], size=90),
        caption=f"#{row.index}: {label}",
        output_format="PNG",
    )
    if col.button("Open", key=f"open_{row.index}"):
        st.session_state.source = "Test image"
        st.session_state.gallery_size = max(row.index + 1, 48)
        st.session_state.gallery_index = row.index
        st.switch_page("app_pages/explorer.py")
st.download_button(
    "Download per-image results (CSV)",
    to_csv(rows),
    file_name=f"{choice.name}-report.csv",
    mime="text/csv",
)
