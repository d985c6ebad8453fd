"""2D playground: train a 1-Lipschitz network live beside an unconstrained one."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from streamlit.runtime.scriptrunner import get_script_run_ctx

from dashboard import views
from dashboard.work_queue import HEAVY
from lipnet import toy

st.title("2D playground")
st.markdown(
    "A toy problem in the plane, where everything can be seen. The **hKR** network "
    "is 1-Lipschitz: its level sets are evenly spaced and |f(x)| is (almost) the "
    "distance to its decision boundary, so every point carries a certified disc. "
    "The **unconstrained** network fits the same data with arbitrary slopes. Move "
    "alpha and the margin to see the trade-off between accuracy and robustness."
)
controls, view = st.columns([1, 3])
with controls:
    dataset = st.selectbox("Dataset", toy.DATASETS, key="toy_dataset")
    n = st.slider("Points", 200, 2000, toy.N_POINTS, step=100, key="toy_n")
    alpha = st.slider(
        "hKR alpha (hinge weight)", 0.0, 1.0, toy.ALPHA, 0.01, key="toy_alpha"
    )
    margin = st.slider("hKR margin", 0.01, 0.5, toy.MARGIN, 0.01, key="toy_margin")
    steps = st.slider("Training steps", 100, 1000, toy.STEPS, step=50, key="toy_steps")
    px = st.number_input("Your point: x", -1.6, 1.6, 0.3, 0.05, key="toy_px")
    py = st.number_input("Your point: y", -1.6, 1.6, 0.2, 0.05, key="toy_py")


@st.cache_resource(max_entries=16, show_spinner=False)
def trained(
    dataset: str, n: int, lipschitz: bool, alpha: float, margin: float, steps: int
):
    """Train once per setting; the progress bar shows while it runs.

    The training takes turns in the shared work queue: every 20 steps it lets
    whoever waits go first, and while it waits the bar shows its place.
    """
    x, y = toy.make_dataset(dataset, n)
    text = f"Training the {'hKR' if lipschitz else 'unconstrained'} network…"
    bar = st.progress(0.0, text=text)
    done = [0.0]

    def show_place(place: int) -> None:
        bar.progress(done[0], text=f"Waiting for a free worker: number {place} in line")

    ctx = get_script_run_ctx()
    owner = ctx.session_id if ctx is not None else "playground"
    with HEAVY.slot(owner, on_wait=show_place, poll_s=0.25) as turn:

        def progress(p: float) -> None:
            turn.yield_turn()
            done[0] = min(p, 1.0)
            bar.progress(done[0], text=text)

        result = toy.train_toy(x, y, lipschitz, alpha, margin, steps, progress=progress)
    bar.empty()
    return x, y, result


x, y, hkr = trained(dataset, n, True, alpha, margin, steps)
_, _, plain = trained(dataset, n, False, alpha, margin, steps)
point = (float(px), float(py))
with view:
    cols = st.columns(2)
    for col, (name, res) in zip(
        cols, [("hKR (1-Lipschitz)", hkr), ("unconstrained", plain)], strict=True
    ):
        axis, values = toy.decision_map(res.model, 160)
        f, radius = toy.certified_disc(res.model, point)
        fig = views.decision_map_figure(
            axis,
            values,
            x,
            y,
            point,
            radius if res.model.head != "none" else None,
            name,
        )
        col.plotly_chart(fig, width="stretch")
        col.metric(f"{name}: training accuracy", f"{res.accuracy:.1%}")
        if res.model.head != "none":
            col.caption(f"f(point) = {f:+.3f}: certified disc of radius {radius:.3f}.")
        else:
            col.caption(f"f(point) = {f:+.3f}: no certificate, the disc is unknown.")

if dataset == "snowflake ring":
    st.caption(
        "The snowflake ring: white points (−1) fill the ring between two Von Koch "
        "snowflakes, dark points (+1) the centre and the outside. So the decision "
        "boundary is two closed curves, the ring's outer and inner edges: the "
        "small closed curve in the middle is the inner edge, not a stray region."
    )
st.subheader("|f(x)| against the true distance to the decision boundary")
sample = x[:300]
pairs = []
for name, res in [("hKR", hkr), ("unconstrained", plain)]:
    axis, values = toy.decision_map(res.model, 300)
    dist = toy.boundary_distance(sample, axis, values)
    with torch.no_grad():
        f = res.model(sample)[:, 0].abs().numpy()
    pairs.append((name, dist, f))
st.plotly_chart(views.distance_figure(pairs), width="stretch")
name, dist, f = pairs[0]
ok = dist > 0.05
st.caption(
    f"For the hKR network, the median of |f(x)| / distance is "
    f"{float(np.median(f[ok] / dist[ok])):.3f} (1 = a perfect distance function; "
    "a 1-Lipschitz network can never exceed 1, up to the grid's resolution)."
)
