"""Robustness report: certified vs empirical accuracy over many test images."""

from __future__ import annotations

import os
import time

import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from dashboard import eps_units, slices, state, views
from dashboard.work_queue import HEAVY
from lipnet.pace import ReportPace, default_size, format_eta
from lipnet.report import (
    ALL_IMAGES,
    REPORT_EPS,
    arrays_zip,
    figures,
    iter_report,
    least_robust,
    slice_figure,
    slice_table,
    slices_csv,
    summarize,
    telling_eps,
    to_csv,
)

# Each batch takes a turn in the shared work queue, then goes to the back of
# the line; `lipnet.pace` sizes it from the batches done (about 1.5 × the
# cost of a one-image batch, at least BATCH_CPU_S), so Stop and other
# people's jobs wait for one batch at most. After each batch the report rests
# as long as the batch took (REST, at most a second): even with a core of
# its own, a report running flat out holds the GIL often enough to double
# everyone else's reruns (bench/RESULTS.md, "Shared work queue"). The partial
# figures are redrawn every REDRAW_S seconds, not after every small batch.
# LIPNET_REPORT_REST=0 runs reports flat out (a single-user machine).
BATCH_CPU_S = 0.5
REST = float(os.environ.get("LIPNET_REPORT_REST", "1"))
REDRAW_S = 2.0
DEFAULT_S = 40.0
"""The default number of images is what the report is planned to do in this
time: under a minute on a busy 2-core machine, where the browser, the
redraws and other users take their share."""

st.title("Robustness report")
st.markdown(
    "On many test images: the **certified** accuracy (no perturbation of size ε "
    "can flip the decision, proven) against the **empirical** accuracy under a "
    "PGD attack of size ε (no attack found). The gap between the curves is what "
    "the certificate does not cover; for an unconstrained model only the "
    "empirical curve exists."
)
choice = state.current()
# The slider goes as far as the data folder's test set for this task: faces
# alternate positives and negatives, so they end with the rarer class (134
# moustaches in the shared data's test split: 268 images).
have = slices.available(choice.key)
most = 1000 if have is None else max(1, min(1000, have))
if st.session_state.get("report_n", 0) > most:
    del st.session_state["report_n"]  # another model's choice: back to the default
batch = st.session_state.get("report_batch", 25)
default_n = default_size(
    *slices.batch_cost(choice.key), most, batch, REST, DEFAULT_S, step=10
)
if most > 10:
    n = st.slider(
        "Test images",
        10,
        most,
        default_n,
        step=10 if most == 1000 else 1,
        key="report_n",
        help="By default, what this model's report does in under a minute "
        "on this server.",
    )
else:
    n = most
if have is not None and have < 1000:
    st.caption(
        f"This data folder holds {have} test images for this task: "
        + (
            "a face report alternates faces with and without the attribute the "
            "model predicts, so it ends when the rarer kind runs out. "
            if choice.spec["input_shape"][0] == 3
            else ""
        )
        + "For more, add images to the data folder the server reads "
        "(`LIPNET_DATA`, e.g. more CelebA faces in `celeba/img_celeba_128/`)."
    )
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
if len(x) < report["key"][1]:
    st.warning(f"Only {len(x)} test images are available for this model's task.")


def show_summary(rows: list, draw: int) -> None:
    """The metrics and the figures of the images done so far.

    A run redraws them as the report goes (`draw` counts the redraws): each
    chart is keyed by it, since two redraws with the same figure (a batch
    that changed no curve) would otherwise be two elements with one ID.
    """
    summary = summarize(rows)
    a, b, c = st.columns(3)
    a.metric("Images", summary["n"])
    b.metric("Clean accuracy", f"{summary['clean_accuracy']:.1%}")
    if summary["certified"] and summary["ratios"]:
        ratios = sorted(summary["ratios"])
        c.metric("Median found / radius", f"{ratios[len(ratios) // 2]:.3f}")
    figs = figures(summary)
    eps_units.on_axis(figs["accuracy_curve"], choice.spec["input_shape"])
    st.plotly_chart(figs["accuracy_curve"], width="stretch", key=f"curve_{draw}")
    left, right = st.columns(2)
    left.plotly_chart(figs["radius_histogram"], width="stretch", key=f"radii_{draw}")
    if "ratio_histogram" in figs:
        right.plotly_chart(
            figs["ratio_histogram"], width="stretch", key=f"ratios_{draw}"
        )


# One run does every batch and moves the progress bar after each. A click on
# Stop interrupts it there (Streamlit stops a run when a new one is requested)
# and the new run sees the click: rows done so far stay.
bar = st.progress(len(rows) / len(x), text=f"{len(rows)} of {len(x)} images")
waiting = st.empty()
partial = st.empty()
draws = 0


def show_place(place: int) -> None:
    """Where this report's next batch stands in the queue (a Stop checkpoint)."""
    waiting.info(f"Waiting for a free worker: you are number {place} in line.")


if report["running"]:
    ctx = get_script_run_ctx()
    owner = ctx.session_id if ctx is not None else "report"
    # The pace (batch sizes, time left) belongs to the report: a rerun in
    # between continues it.
    pace = report.setdefault(
        "pace", ReportPace(report["key"][2], min_seconds=BATCH_CPU_S, rest=REST)
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
        rest = pace.rest_s(cpu) if start < len(x) else 0.0
        pace.record(len(batch), cpu, time.monotonic() - t0 + rest)
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
                show_summary(rows, draws)
            last_draw = time.monotonic()
        time.sleep(rest)
    report["running"] = False
if not rows:
    st.stop()
if not draws:
    with partial.container():
        show_summary(rows, 0)

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
csv_col, zip_col = st.columns(2)
csv_col.download_button(
    "Download per-image results (CSV)",
    to_csv(rows),
    file_name=f"{choice.name}-report.csv",
    mime="text/csv",
)
zip_col.download_button(
    "Download per-image arrays (zip of .npy)",
    lambda: arrays_zip(rows, x),  # built on click, not at every rerun
    file_name=f"{choice.name}-report-arrays.zip",
    mime="application/zip",
    on_click="ignore",
    help="results.csv and, per image, rows/NNNNNN_delta.npy (counterfactual − "
    "input) and rows/NNNNNN_counterfactual.npy: the smallest flip found "
    "(transport or FMN), float32 of the input's shape. A misclassified image "
    "is its own counterfactual (δ = 0); an image with no flip found has no files.",
)

st.subheader("Slices")
st.markdown(
    "The same accuracies on parts of the test images, each over its own images: "
    "**per class** (by true label)"
    + (
        ", and **per face attribute** from CelebA's attribute file: the faces "
        "with it (value 1, e.g. *Male*) and the faces without it (*not Male*), "
        "so each group's reference is next to it"
        if choice.spec["input_shape"][0] == 3
        else ""
    )
    + ". A slice of few images (see n) is a rough estimate: one image more or "
    "less moves its accuracy by 1/n."
)
groups = slices.membership(choice.key, y, list(choice.spec["classes"]))
table = slice_table(rows, groups, REPORT_EPS)
labels = {f"{e:g}": e for e in REPORT_EPS}
pick, note = st.columns([1, 3], vertical_alignment="bottom")
typed = pick.selectbox(
    "ε for the chart",
    list(labels),
    index=REPORT_EPS.index(telling_eps(table, REPORT_EPS)),
    key="report_slice_eps",
    accept_new_options=True,
    help="By default the ε where the accuracy of all images is about half "
    "the clean accuracy: there the slices differ most. Type another as 0.5 or "
    "36/255: the nearest ε the report measured is shown.",
)
try:
    eps = eps_units.nearest(eps_units.read(typed), REPORT_EPS)
except ValueError as e:
    pick.error(str(e))
    eps = telling_eps(table, REPORT_EPS)
shape = choice.spec["input_shape"]
certified_cols = any(k.startswith("certified_at_") for k in table[0])
note.caption(
    ("**certified**: correct and certified radius > ε. " if certified_cols else "")
    + "**PGD**: correct and PGD (L2, 20 steps) found no flip within ε. The first "
    f"row, {ALL_IMAGES}, is the whole report. The table starts with the chosen "
    "ε, then every ε of the report (scroll sideways); the CSV holds the same table. "
    f"ε = {eps_units.label(eps, shape)}."
)
st.plotly_chart(slice_figure(table, eps), width="stretch")
frame = pd.DataFrame(table)
shares = [c for c in frame.columns if c not in ("slice", "n")]
frame[shares] = frame[shares].astype(float) * 100  # None (empty slice) → NaN
frame = frame.rename(
    columns=lambda c: (
        c.replace("certified_at_", "certified ε=")
        .replace("empirical_at_", "PGD ε=")
        .replace("clean_accuracy", "clean")
    )
)
# The chosen ε's columns come first: the full grid does not fit a laptop's width.


def _units_of(column: str, shape: list) -> str | None:
    """A column's ε in all three units, for its header's help ("certified ε=0.5")."""
    if "ε=" not in column:
        return None
    return "ε = " + eps_units.label(float(column.split("ε=")[1]), shape)


key = f"{eps:g}"
chosen = [c for c in (f"certified ε={key}", f"PGD ε={key}") if c in frame.columns]
first = ["slice", "n", "clean", *chosen]
st.dataframe(
    frame,
    hide_index=True,
    width="stretch",
    column_order=first + [c for c in frame.columns if c not in first],
    height=35 * (len(frame) + 1) + 3,  # every slice, no inner scrolling
    column_config={
        "slice": st.column_config.TextColumn("slice", pinned=True),
        **{
            c: st.column_config.NumberColumn(
                c, format="%.1f%%", help=_units_of(c, shape)
            )
            for c in frame.columns
            if c not in ("slice", "n")
        },
    },
)
st.download_button(
    "Download the slices (CSV)",
    slices_csv(table),
    file_name=f"{choice.name}-slices.csv",
    mime="text/csv",
    on_click="ignore",
)
