"""The explorer's result: views, certificate, hint, path, twin, neighbours.

Layout only: every number comes from `dashboard.results` (cached attacks and
views) or from `lipnet`.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import streamlit as st

from dashboard import eps_units, results, state, views
from lipnet.attacks import METHOD_LABELS
from lipnet.explain import ATTRIBUTION_LABELS

DIFF_LEGEND = (
    "Differences share one fixed scale for every model: red = the pixel got "
    f"brighter, blue = darker, full colour at ±{views.DIFF_SCALE} (÷ the "
    "amplification)."
)


def chart(where, svg: str) -> None:
    """Show one of `svg_charts`' plots (st.html would strip SVG)."""
    where.markdown(svg, unsafe_allow_html=True)


@st.fragment
def show_views(v: dict) -> None:
    """Original, counterfactual (or a morph between them) and the difference.

    Sharp images by default; on request, plots with every pixel's value on
    hover. The morph slider and the amplification rerun only this fragment.
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


def certificate_metrics(v: dict, overshoot: float = 0.0) -> None:
    """The radius beside the size of the change, and their ratio.

    With an overshoot o the change goes past the boundary on purpose: a
    transport step on a gradient-norm-preserving network then has size
    (1 + o)·r, so the ratio is taken against that, and 1.00 still means
    the certificate is tight. The tile's label says what is divided by what
    ("size ÷ (2 × r)"), so nobody divides the two numbers beside it and
    gets twice the value shown.
    """
    radius, distance, flipped = v["radius"], v["distance"], v["flipped"]
    scale = 1 + overshoot if overshoot > 0.05 else 1.0
    a, b, c = st.columns(3)
    shape = tuple(v["result"].x.shape[1:])
    # The paper units are in each tile's tooltip and in one line under the
    # views (`units_caption`): a caption under a tile wraps in a third of the
    # column and pushes the views out of the first 1280×720 screen.
    a.metric(
        "Certified radius r",
        "none" if radius is None else f"{radius:.3f}",
        help=None if radius is None else eps_units.tile_help(radius, shape),
    )
    b.metric(
        "L2 size of the change" if flipped else "L2 size, no flip",
        f"{distance:.3f}",
        help=eps_units.tile_help(distance, shape),
    )
    ratio = (
        "—"
        if radius is None or not flipped
        else f"{distance / max(scale * radius, 1e-12):.2f}"
    )
    c.metric(
        "Ratio: size ÷ " + ("r" if scale == 1 else f"({scale:g} × r)"),
        ratio,
        help="The size of the change over r (over (1 + overshoot)·r when the "
        "change goes past the boundary on purpose). 1.00: the certificate is "
        "tight; above 1, the network needed more than r.",
    )


PARAMETER_LABELS = {
    "norm": "norm",
    "eps": "ε",
    "steps": "steps",
    "restarts": "restarts",
    "overshoot": "overshoot",
    "step_size": "step size",
    "eps_max": "largest ε",
    "search_steps": "bisection steps",
    "pgd_steps": "PGD steps per ε",
}


def units_caption(v: dict) -> None:
    """Under the views: r and the change in the units papers use."""
    shape = tuple(v["result"].x.shape[1:])
    parts = (
        [] if v["radius"] is None else [f"r = {eps_units.label(v['radius'], shape)}"]
    )
    parts.append(f"the change = {eps_units.label(v['distance'], shape)}")
    st.caption("In 8-bit units: " + "; ".join(parts) + ".")


def ran_caption(method: str, params: dict, classes: list[str]) -> None:
    """What the result was computed with, for the audience and to check the controls."""
    parts = [
        f"{PARAMETER_LABELS[k]} {f'{v:g}' if isinstance(v, float) else v}"
        for k, v in params.items()
        if k in PARAMETER_LABELS
    ]
    parts.append(
        "pixels kept in [0, 1]" if params.get("box", True) else "pixels not clipped"
    )
    if params.get("target") is not None:
        parts.append(f"target {classes[params['target']]}")
    st.caption(f"Ran {METHOD_LABELS[method]}: {', '.join(parts)}.")


def overshoot_note(v: dict, overshoot: float) -> None:
    """Below the views: why the change is larger than r when it overshoots."""
    radius = v["radius"]
    if overshoot > 0.05 and v["flipped"] and radius is not None:
        st.caption(
            f"Overshoot {overshoot:g}: the change goes past the boundary on purpose. "
            f"A tight certificate predicts a size of (1 + {overshoot:g})·r = "
            f"{(1 + overshoot) * radius:.3f}; the chart below marks the smallest "
            "flip found (◆)."
        )


def certificate_verdict(v: dict, certified: bool) -> None:
    """The certificate in words (or the plain statement that there is none)."""
    radius, flipped = v["radius"], v["flipped"]
    if certified and radius is not None:
        st.success(
            f"No change of L2 size below r = {radius:.3f} can flip this decision."
            + ("" if flipped else " The attack did not flip it either.")
        )
    else:
        st.warning(
            "This model is unconstrained: it carries **no certificate**. Nothing "
            "guarantees that a tiny change does not flip its decision."
        )


def familiarity(key: str, x_np: np.ndarray) -> None:
    """The out-of-distribution hint: is this input like the training data?

    For a face model, first the framing: a photo that is not cropped to the
    face like the training faces gets "crop to the face", whatever its pixel
    statistics say.
    """
    if state.dataset_name(key) == "CelebA":
        framing = results.framing(x_np)
        if not framing.framed:
            st.warning(
                f"This image is not framed like the training faces "
                f"({framing.reason}): crop to the face — one face filling the "
                "square, eyes level — for a class that means something. The "
                "certificate still holds.",
                icon=":material/crop:",
            )
            return
    result = results.ood_hint(key, x_np)
    if result is None:
        st.caption("This model carries no out-of-distribution calibration.")
        return
    relative = float(result.score[0]) / result.threshold
    if bool(result.unusual[0]):
        st.warning(f"{result.message} (score {relative:.1f}× the threshold)")
    else:
        st.caption(
            f"The input looks like the training data: out-of-distribution score "
            f"{relative:.2f}× the threshold that 1% of test images exceed."
        )


@st.fragment
def show_path(v: dict) -> None:
    """The trajectory: moving the step slider reruns only this fragment."""
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


def show_nearest_real(choice: state.Choice, v: dict) -> None:
    """The nearest real test image of the counterfactual's class, for comparison:
    one the model is sure of, since the dataset's own label can be wrong."""
    r = v["result"]
    found = results.nearest_real(choice.key, r.x.numpy(), v["after_index"])
    if found is None:
        return
    i, distance = found
    pool, _ = state.gallery(choice.key, results.NEAREST_POOL)
    to_cf = float((pool[i] - r.x_adv[0]).norm())
    source = state.dataset_name(choice.key)
    st.subheader("Nearest real counterfactual")
    left, right = st.columns([1, 3])
    left.image(
        views.image_png(pool[i]),
        caption=f"A real {v['after']} ({source}'s label, test image #{i})",
        width="stretch",
        output_format="PNG",
    )
    right.markdown(
        f"The nearest real **{v['after']}** among {len(pool)} test images, "
        f"counting only those {source} labels **{v['after']}** (its labels are "
        "its own and not always right) and this model scores as "
        f"**{v['after']}** most surely (the upper half of its margins). It is "
        f"**{distance:.2f}** away from the input (L2, pixels); the synthetic "
        f"counterfactual moved **{v['distance']:.2f}**. From the counterfactual, "
        f"that real image is **{to_cf:.2f}** away"
        + (
            " — closer than from the input: the change moves towards real data."
            if to_cf < distance
            else "."
        )
    )


def show_twin(pairs: list) -> None:
    st.subheader("Side by side with the twin")
    st.caption(
        "The same method on the same input. Compare what changes: the hKR network's "
        "counterfactual redraws the input along the transport plan, the unconstrained "
        "network's change is scattered noise. Pick the minimal-L2 method to see how "
        "small a flip of the unconstrained network can be."
    )
    cols = st.columns(4)
    for i, (image, caption, diff) in enumerate(pairs):
        for col, png, text in (
            (2 * i, image, caption),
            (2 * i + 1, diff, "its difference"),
        ):
            cols[col].image(png, caption=text, width="stretch", output_format="PNG")


def show_attributions(choice: state.Choice, x_np: np.ndarray) -> None:
    st.subheader("Attributions")
    method = st.selectbox(
        "Attribution (captum)",
        ["saliency", "integrated_gradients"],
        format_func=ATTRIBUTION_LABELS.get,
        key="attribution",
    )
    keys = [choice.key] + ([choice.twin_key] if choice.twin_key else [])
    cols = st.columns(4)  # the same size with or without a twin
    for col, key in zip(cols, keys, strict=False):
        name = state.model_by_key(key).spec.get("name", key)
        col.image(
            results.attribution_png(key, x_np, method),
            caption=f"{name}: {ATTRIBUTION_LABELS[method]}",
            width="stretch",
            output_format="PNG",
        )
    st.caption(
        "Red pushes the score of the predicted class up, blue pushes it down; "
        "each map is scaled to its own largest value."
    )


def downloads(name: str, v: dict) -> None:
    """PNG downloads, drawn only when clicked (a download does not rerun the page)."""
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
