"""The explorer's result: views, certificate, hint, path, twin, neighbours.

Layout only: every number comes from `dashboard.results` (cached attacks and
views) or from `lipnet`. This module draws the pictures (the views, the
path, the downloads); the certificate's tiles and words are
`dashboard.explorer_certificate`, the context (familiarity, nearest real
image, twin, attributions) `dashboard.explorer_context`. The explorer page
reads all of them from here.
"""

from __future__ import annotations

from functools import partial

import streamlit as st

from dashboard import views
from dashboard.explorer_certificate import PARAMETER_LABELS as PARAMETER_LABELS
from dashboard.explorer_certificate import certificate_metrics as certificate_metrics
from dashboard.explorer_certificate import certificate_verdict as certificate_verdict
from dashboard.explorer_certificate import overshoot_note as overshoot_note
from dashboard.explorer_certificate import ran_caption as ran_caption
from dashboard.explorer_certificate import units_caption as units_caption
from dashboard.explorer_context import familiarity as familiarity
from dashboard.explorer_context import show_attributions as show_attributions
from dashboard.explorer_context import show_nearest_real as show_nearest_real
from dashboard.explorer_context import show_twin as show_twin

DIFF_LEGEND = (
    "Differences share one fixed scale for every model: red = the pixel got "
    f"brighter, blue = darker, full colour at ±{views.DIFF_SCALE} (÷ the "
    "amplification)."
)


def chart(where, svg: str) -> None:
    """Show one of `svg_charts`' plots (st.html would strip SVG).

    Args:
        where: a Streamlit container (st or a column).
        svg: the chart.
    """
    where.markdown(svg, unsafe_allow_html=True)


@st.fragment
def show_views(v: dict) -> None:
    """Original, counterfactual (or a morph between them) and the difference.

    Sharp images by default; on request, plots with every pixel's value on
    hover. The morph slider and the amplification rerun only this fragment.

    Args:
        v: the cached result (`dashboard.results`).
    """
    r = v["result"]
    cols = st.columns(3)
    if st.session_state.get("hover"):
        figures = [
            views.image_figure(r.x[0], v["titles"][0]),
            views.image_figure(r.x_adv[0], v["titles"][1]),
            views.signed_map_figure(r.delta[0], v["titles"][2]),
        ]
        for col, fig in zip(cols, figures, strict=True):
            col.plotly_chart(fig, width="stretch")
    else:
        t = st.session_state.get("morph", 100) / 100
        k = st.session_state.get("amplify", 1)
        middle = v["three"][1] if t == 1 else views.image_png(r.x[0] + t * r.delta[0])
        diff = v["three"][2] if k == 1 else views.signed_map_png(k * r.delta[0])
        titles = [
            v["titles"][0],
            v["titles"][1] if t == 1 else f"Morph: {t:.0%} of the way",
            v["titles"][2] + ("" if k == 1 else f", ×{k}"),
        ]
        for col, png, title in zip(
            cols, [v["three"][0], middle, diff], titles, strict=True
        ):
            col.image(png, caption=title, width="stretch", output_format="PNG")
    a, b = st.columns(2)
    a.slider("Before → after", 0, 100, step=5, key="morph", format="%d%%")
    b.slider("Amplify the difference ×", 1, 10, key="amplify")
    st.toggle("Pixel values on hover", key="hover")


@st.fragment
def show_path(v: dict) -> None:
    """The trajectory: moving the step slider reruns only this fragment.

    Args:
        v: the cached result, with its trajectory.
    """
    st.subheader("The path")
    frames, path = v["frames"], v["path"]
    left, right = st.columns([1, 2])
    with left:
        t = st.slider("Step", 0, len(frames) - 1, len(frames) - 1, key="path_step")
        st.image(
            views.image_png(frames[t, 0]),
            caption=f"Step {t}: margin {float(path['margin'][t]):.3f}",
            width="stretch",
            output_format="PNG",
        )
    with right:
        chart(st, v["path_figure"])
        if "cone" in path:
            st.caption(
                "The dashed cone is the Lipschitz bound: the margin can never fall "
                "faster than it, which is why the radius is a certificate."
            )


def downloads(name: str, v: dict) -> None:
    """PNG downloads, drawn only when clicked (a download does not rerun the page).

    Args:
        name: the model's name, for the file names.
        v: the cached result.
    """
    r = v["result"]
    a, b = st.columns(2)
    a.download_button(
        "Download the three views (PNG)",
        partial(views.views_png, r.x[0], r.x_adv[0]),
        file_name=f"{name}-views.png",
        mime="image/png",
        on_click="ignore",
    )
    b.download_button(
        "Download the counterfactual (PNG)",
        partial(views.png_bytes, r.x_adv[0]),
        file_name=f"{name}-counterfactual.png",
        mime="image/png",
        on_click="ignore",
    )
