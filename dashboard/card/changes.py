"""The card's "what the model changes": test images, their counterfactuals and
the changes, and the mean change towards the positive class."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import state, views
from dashboard.state import Choice
from lipnet.attacks.gallery import counterfactual_grid

GRID = 8


@st.cache_data(show_spinner="Making counterfactuals…", max_entries=16, ttl=3600)
def grid_pngs(key: str) -> dict[str, Any] | str:
    """PNGs of 8 test images, their counterfactuals (overshoot 1) and changes,
    and the mean change towards the positive class; or why there are none."""
    images = state.gallery(key, GRID)
    if isinstance(images, str):
        return images
    model = state.model_by_key(key)
    g = counterfactual_grid(model, images[0][:GRID], overshoot=1.0)
    scale = float(g.delta.abs().amax()) or 1.0
    return {
        "x": [views.image_png(x) for x in g.x],
        "cf": [views.image_png(x) for x in g.x_cf],
        "delta": [views.signed_map_png(d, scale=scale) for d in g.delta],
        "mean": views.image_png((0.5 + g.mean_change / (2 * scale)).clamp(0, 1)),
        "mean_signed": views.signed_map_png(g.mean_change, scale=scale),
        "l2": [float(d.norm()) for d in g.delta],
    }


def counterfactual_section(key: str, classes: list[str]) -> None:
    """What the model changes: a grid of test images and the mean change."""
    st.subheader("What the model changes")
    grid = grid_pngs(key)
    if isinstance(grid, str):
        st.caption(grid)
        return
    st.caption(
        "Eight test images (top), their transport counterfactuals at overshoot 1 "
        "(middle: as far past the boundary as each image was before it) and the "
        "changes (bottom: red adds, blue removes; one colour scale for all)."
    )
    for row, kind in (("x", "input"), ("cf", "counterfactual"), ("delta", "change")):
        cols = st.columns(GRID)
        for i, (col, png) in enumerate(zip(cols, grid[row], strict=False)):
            caption = f"‖δ‖ {grid['l2'][i]:.2f}" if kind == "change" else None
            col.image(png, caption=caption, width="stretch", output_format="PNG")
    left, right, _ = st.columns([1, 1, 2])
    left.image(
        grid["mean"],
        caption=f"Mean change towards {classes[1]}",
        width="stretch",
        output_format="PNG",
    )
    right.image(
        grid["mean_signed"],
        caption="…as a signed map",
        width="stretch",
        output_format="PNG",
    )
    st.caption(
        "The mean change averages every change turned towards the positive class: "
        "sharp where the model makes the same change on every image (a template), "
        "faint where each image gets its own change."
    )


def render(choice: Choice) -> None:
    """The grid, for a certified model of two classes only.

    Args:
        choice: the model the page shows.
    """
    if choice.certified and len(choice.spec.get("classes", [])) == 2:
        counterfactual_section(choice.key, choice.spec["classes"])
