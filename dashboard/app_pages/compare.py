"""Compare models: 2–4 models of one task on the same test images, side by side."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import compare_run, eps_units, links, results, state, views
from lipnet import compare

st.title("Compare models")
st.markdown(
    "The same test images through 2–4 models of one task: **certified** accuracy "
    "against ε (solid) with the accuracy under a **PGD** attack of size ε (dashed) "
    "beside it, one table, and one input's change at the same ε on every model."
)
links.warn_ignored()
choice = state.current()
keys = compare_run.candidates(choice.key)
if len(keys) < 2:
    st.info(
        "No other model has this task (input shape and classes): nothing to compare."
    )
    st.stop()
picked = st.session_state.get("compare_models")
if not picked or not set(picked) <= set(keys):  # another task's models, or none yet
    st.session_state["compare_models"] = [choice.key] + (
        [choice.twin_key]
        if choice.twin_key in keys
        else [k for k in keys if k != choice.key][:1]
    )
models = st.multiselect(
    "Models (2 to 4, same task)",
    keys,
    key="compare_models",
    max_selections=compare.MAX_MODELS,
    format_func=compare_run.label,
)
st.session_state.setdefault("compare_n", 20)
st.session_state.setdefault("compare_eps", "0.5")
left, right = st.columns(2)
n = left.slider("Test images", 2, 200, key="compare_n")
eps_text = right.text_input(
    "ε for the table and the counterfactuals",
    key="compare_eps",
    help="L2, pixels in [0, 1] (0.5), or in 8-bit units as papers write it (36/255).",
)
try:
    eps = eps_units.read(eps_text)
except ValueError as e:
    st.error(f"{e}. Write a number such as 0.5 or an 8-bit value such as 36/255.")
    st.stop()
shape = choice.spec["input_shape"]
right.caption(f"ε = {eps_units.label(eps, shape)}")
links.write(links.compare_query(models, n, eps_text))
if len(models) < 2:
    st.info("Pick at least two models.")
    st.stop()

job_key = (tuple(models), n, eps)
go, stop = st.columns(2)
if go.button("Compare", type="primary", key="compare_run"):
    st.session_state.compare = {
        "key": job_key,
        "models": list(models),
        "grid": compare.grid(eps),
        "rows": {},
        "running": True,
    }
if stop.button("Stop", key="compare_stop") and "compare" in st.session_state:
    st.session_state.compare["running"] = False
job = st.session_state.get("compare")
if job is None or job["key"] != job_key:
    st.info("Choose the models, the test images and ε, then compare.")
    st.stop()
images = state.gallery(choice.key, n)
if isinstance(images, str):
    st.error(images)
    st.stop()
x, y = images
total = len(job["models"]) * len(x)
done = sum(len(r) for r in job["rows"].values())
bar = st.progress(done / total, text=f"{done} of {total} model-images")
waiting = st.empty()
if job["running"]:

    def progress(done: int, total: int) -> None:
        """Move the bar after a batch."""
        waiting.empty()
        bar.progress(done / total, text=f"{done} of {total} model-images")

    def place(where: int) -> None:
        """Where the next batch stands in the shared queue."""
        waiting.info(f"Waiting for a free worker: you are number {where} in line.")

    compare_run.run(job, x, y, progress, place)
rows = {compare_run.label(k): r for k, r in job["rows"].items() if r}
if not rows:
    st.stop()

st.subheader("Accuracy against ε")
fig = compare.figure(rows, job["grid"])
st.pyplot(fig)
png, svg = io.BytesIO(), io.BytesIO()
fig.savefig(png, format="png", dpi=150, bbox_inches="tight")
fig.savefig(svg, format="svg", bbox_inches="tight")
a, b = st.columns(2)
a.download_button(
    "Download the chart (PNG)", png.getvalue(), "compare.png", "image/png"
)
b.download_button(
    "Download the chart (SVG)", svg.getvalue(), "compare.svg", "image/svg+xml"
)

st.subheader(f"At ε = {eps_units.label(eps, shape)}")
specs = {compare_run.label(k): state.model_by_key(k).spec for k in job["models"]}
table = compare.table(rows, specs, eps)
frame = pd.DataFrame(table)
st.dataframe(frame, hide_index=True, width="stretch")
st.caption(
    "Measured now on these images: clean, certified (radius > ε) and PGD (L2, 20 "
    "steps, no flip found within ε) accuracy. From each model card, where measured: "
    "its clean accuracy on the whole test set, tightness (median smallest flip "
    "found ÷ certified radius, 1 = tight), the measured Lipschitz bound and the "
    "counterfactual validity (the share of counterfactuals a separate judge "
    "network takes for the new class)."
)
st.download_button(
    "Download the table (CSV)",
    compare.to_csv(table, eps, shape),
    "compare.csv",
    "text/csv",
)

st.subheader("One input, every model, the same ε")
i = st.number_input("Test image", 0, len(x) - 1, key="compare_i")
x_i = x[i : i + 1].numpy()
cols = st.columns(len(job["models"]) + 1)
cols[0].image(views.image_png(x[i], size=160), caption=f"input #{i}", width=160)
for col, key in zip(cols[1:], job["models"], strict=False):
    r = results.run_attack(key, x_i, "pgd", (("eps", eps), ("steps", 20)))
    flipped = bool(r.success[0])
    col.image(
        views.image_png(r.x_adv[0], size=160),
        caption=f"{compare_run.label(key)}: "
        + (f"flipped, L2 {float(r.l2[0]):.3f}" if flipped else "no flip within ε"),
        width=160,
    )
    delta = r.x_adv[0] - x[i]
    col.image(
        views.signed_map_png(delta, size=160),
        caption="the change (one scale for every model: ±0.5)",
        width=160,
    )
    radius = r.certified_radius
    largest = float(np.abs(delta.numpy()).max())
    col.caption(
        ("no certificate" if radius is None else f"r = {float(radius[0]):.3f}")
        + f"; largest pixel change {largest * 255:.3g}/255"
    )
