"""Robustness report: certified vs empirical accuracy over many test images.

Layout only: the controls, then the run (`dashboard.report_run`), the
least robust inputs and downloads (`dashboard.report_results`) and the
slices (`dashboard.report_slices`).
"""

from __future__ import annotations

import streamlit as st

from dashboard import report_results, report_run, report_slices, slices, state
from lipnet.pace import default_size

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
    *slices.batch_cost(choice.key),
    most,
    batch,
    report_run.rest_s(),
    report_run.DEFAULT_S,
    step=10,
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

# One run does every batch and moves the progress bar after each. A click on
# Stop interrupts it there (Streamlit stops a run when a new one is requested)
# and the new run sees the click: rows done so far stay.
bar = st.progress(len(rows) / len(x), text=f"{len(rows)} of {len(x)} images")
waiting = st.empty()
partial = st.empty()
draws = 0
if report["running"]:
    draws = report_run.run(report, choice, x, y, bar, waiting, partial)
if not rows:
    st.stop()
if not draws:
    with partial.container():
        report_run.show_summary(rows, 0, choice.spec["input_shape"])

report_results.least_robust_inputs(rows, x)
report_results.downloads(rows, x, choice.name)
report_slices.render(choice, rows, y)
