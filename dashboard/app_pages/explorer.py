"""The counterfactual explorer: one input, one attack, its certificate and its path."""

from __future__ import annotations

from functools import partial

import numpy as np
import streamlit as st
import torch
from PIL import Image

from dashboard import results, state, views
from lipnet import ood
from lipnet.attacks import METHOD_LABELS, AttackError
from lipnet.data import (
    ImageError,
    grace_hopper_face,
    image_to_tensor,
    load_image,
    rendered_digit,
)
from lipnet.explain import ATTRIBUTION_LABELS

INTRO = """
A **1-Lipschitz** network cannot change its score faster than the input moves:
|f(x) − f(y)| ≤ ‖x − y‖. So the score itself is a **certificate**: no change of
the image smaller than the certified radius can flip the decision. Trained with
the hKR loss, such a network's shortest way to the other class is a
*meaningful* change — the **counterfactual** — where an ordinary network is
fooled by noise. Pick an input and a method; each certified model is shown
beside its unconstrained twin (and the other way round).
"""
DIFF_LEGEND = (
    "Difference maps share one fixed scale for every model: red = the pixel got "
    f"brighter, blue = darker, full colour at ±{views.DIFF_SCALE}."
)
SOURCES = [
    "Test image",
    "Grace Hopper (built-in face)",
    "Built-in digit",
    "Upload an image",
    "Camera",
    "Draw",
]


def pick_input(choice: state.Choice) -> torch.Tensor | None:
    """The input widgets; returns the model-ready (1, C, H, W) tensor or None."""
    spec = choice.spec
    channels = spec["input_shape"][0]
    digits = channels == 1 and any(c.isdigit() for c in spec.get("classes", []))
    sources = [
        s
        for s in SOURCES
        if (s != "Draw" or channels == 1) and (s != "Built-in digit" or digits)
    ]
    if st.session_state.get("source") not in sources:  # e.g. "Draw" on a face model
        st.session_state["source"] = sources[0]
    source = st.radio("Input", sources, horizontal=True, key="source")
    if source == "Test image":
        images = state.gallery(choice.key, st.session_state.get("gallery_size", 48))
        if isinstance(images, str):
            st.warning(
                images + " Set LIPNET_DATA to a data folder; meanwhile here is the "
                "built-in example."
            )
            return builtin_example(spec, digits)
        x, y = images
        i = st.slider("Test image", 0, len(x) - 1, 0, key="gallery_index")
        st.caption(f"Test image #{i}, true class: **{spec['classes'][int(y[i])]}**")
        return x[i : i + 1].clone()  # never a view into the shared gallery
    if source.startswith("Grace Hopper"):
        return image_to_tensor(grace_hopper_face(), spec)
    if source == "Built-in digit":
        return builtin_example(spec, digits)
    if source == "Draw":
        return _drawing(spec)
    if source == "Camera":
        file = st.camera_input("Take a picture", key="camera")
    else:
        file = st.file_uploader("An image file (PNG, JPEG, …)", key="image_upload")
    if file is None:
        st.info("Waiting for an image.")
        return None
    return decoded_once(file, spec)


def decoded_once(file, spec: dict) -> torch.Tensor | None:
    """An uploaded image, decoded once per upload and model shape, not per rerun.

    Decoding a 16-megapixel file takes seconds; every click on the page
    reruns it, so the session keeps the tensor (or the reason it was refused).
    """
    memo_key = (file.file_id, tuple(spec["input_shape"]))
    memo = st.session_state.get("decoded_upload")
    if memo is None or memo[0] != memo_key:
        try:
            value = load_image(file, spec)
        except ImageError as e:
            value = f"This image cannot be used: {e}"
        memo = (memo_key, value)
        st.session_state["decoded_upload"] = memo
    if isinstance(memo[1], str):
        st.error(memo[1])
        return None
    return memo[1].clone()


def builtin_example(spec: dict, digits: bool) -> torch.Tensor:
    """A digit rendered from a font (digit models) or Grace Hopper's face."""
    if not digits:
        return image_to_tensor(grace_hopper_face(), spec)
    classes = [c for c in spec["classes"] if c.isdigit()]
    digit = st.selectbox("Digit", classes, key="builtin_digit")
    return image_to_tensor(rendered_digit(int(digit)), spec, invert=False)


def _drawing(spec: dict) -> torch.Tensor | None:
    """A canvas for digits: white ink on black, like MNIST."""
    from streamlit_drawable_canvas import st_canvas

    canvas = st_canvas(
        stroke_width=18,
        stroke_color="#ffffff",
        background_color="#000000",
        height=224,
        width=224,
        drawing_mode="freedraw",
        key="canvas",
    )
    data = None if canvas is None else canvas.image_data
    if data is None or not np.asarray(data)[..., :3].any():
        st.warning("The canvas is empty: draw a digit.")
        return None
    img = Image.fromarray(np.asarray(data).astype(np.uint8), "RGBA").convert("L")
    return image_to_tensor(img, spec, invert=False)


def pick_method(choice: state.Choice) -> tuple[str, dict]:
    """The method widgets; returns the method name and its parameters."""
    method = st.pills(
        "Method",
        list(METHOD_LABELS),
        default="transport",
        required=True,
        format_func=METHOD_LABELS.get,
        key="method",
        wrap=True,  # every method in sight: one click runs it
    )
    params: dict = {}
    if method in ("fgsm", "pgd"):
        norm = st.radio("Norm", ["l2", "linf"], horizontal=True, key="norm")
        default = 1.5 if norm == "l2" else 0.1
        params["norm"] = norm
        params["eps"] = st.number_input(
            "Budget ε", 0.001, 50.0, default, step=0.1, key=f"eps_{norm}"
        )
    if method == "pgd":
        params["steps"] = st.slider("Steps", 5, 200, 50, key="pgd_steps")
        params["restarts"] = st.slider("Restarts", 1, 5, 1, key="restarts")
    if method in ("transport", "deepfool"):
        params["overshoot"] = st.slider(
            "Overshoot (× the initial margin, past the boundary)",
            0.0,
            5.0,
            0.02,
            0.01,
            key="overshoot",
        )
    if method == "transport":
        params["step_size"] = st.slider(
            "Step size (1 = one Newton step; smaller = smooth gradient flow)",
            0.1,
            1.0,
            1.0,
            key="step_size",
        )
    if method == "fmn":
        params["steps"] = st.slider("Steps", 10, 300, 100, key="fmn_steps")
    if method == "pgd_search":
        params["eps_max"] = st.number_input("Largest ε", 0.1, 50.0, 5.0, key="eps_max")
        params["search_steps"] = st.slider("Bisection steps", 2, 12, 6, key="search")
        params["pgd_steps"] = st.slider("PGD steps per ε", 5, 100, 20, key="search_pgd")
    params["box"] = st.checkbox("Keep pixels in [0, 1]", True, key="box")
    classes = choice.spec["classes"]
    if len(classes) > 2:
        target = st.selectbox(
            "Target class", ["any other class", *classes], key="target"
        )
        if target != "any other class":
            params["target"] = classes.index(target)
    return method, params


def chart(where, svg: str) -> None:
    """Show one of `svg_charts`' plots (st.html would strip SVG)."""
    where.markdown(svg, unsafe_allow_html=True)


def familiarity(model: torch.nn.Module, x: torch.Tensor) -> None:
    """The out-of-distribution hint: is this input like the training data?"""
    result = ood.check(model, x)
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


def certificate_panel(v: dict, certified: bool) -> None:
    """The radius, the distance the attack needed, their ratio, in words and a bar."""
    radius, distance = v["radius"], v["distance"]
    a, b, c = st.columns(3)
    a.metric("Certified radius r", "none" if radius is None else f"{radius:.3f}")
    b.metric("L2 distance the attack needed", f"{distance:.3f}")
    ratio = "—" if radius is None else f"{distance / max(radius, 1e-12):.2f}"
    c.metric("Ratio distance / r", ratio)
    if certified and radius is not None:
        st.success(
            f"No change of L2 size below r = {radius:.3f} can flip this decision."
            + ("" if v["flipped"] else " The attack did not flip it either.")
        )
        chart(st, v["certificate"])
    else:
        st.warning(
            "This model is unconstrained: it carries **no certificate**. Nothing "
            "guarantees that a tiny change does not flip its decision."
        )


def main() -> None:
    st.title("Counterfactual explorer")
    st.markdown(INTRO)
    choice = state.current()
    left, right = st.columns([3, 2])
    with left:
        x = pick_input(choice)
    with right:
        method, params = pick_method(choice)
    if x is None:
        st.stop()
    with left:
        st.image(
            views.image_png(x[0], size=140),
            caption="What the network sees",
            output_format="PNG",
        )
    target = params.pop("target", None)
    key_params = (*sorted(params.items()), ("target", target))
    x_np = x.numpy()
    try:
        with st.spinner("Running the attack…"):
            v = results.result_views(
                choice.key, choice.twin_key, x_np, method, key_params
            )
    except AttackError as e:
        st.error(f"The attack cannot run: {e}")
        st.stop()
    show_result(choice, v, x_np)


def show_result(choice: state.Choice, v: dict, x_np: np.ndarray) -> None:
    """Lay out the views of one result and its twin's."""
    st.subheader(v["headline"])
    show_views(v)
    left, right = st.columns([2, 3])
    chart(left, v["scores"])
    with right:
        certificate_panel(v, choice.certified)
        familiarity(choice.model, torch.from_numpy(x_np))
    if v["path"] is not None:
        show_path(v)
    if v["twin"]:
        show_twin(v["twin"])
    show_attributions(choice, x_np)
    # Drawn only when clicked, and a download does not rerun the page.
    r = v["result"]
    st.download_button(
        "Download the three views (PNG)",
        partial(views.views_png, r.x[0], r.x_adv[0]),
        file_name=f"{choice.name}-views.png",
        mime="image/png",
        on_click="ignore",
    )
    st.download_button(
        "Download the counterfactual (PNG)",
        partial(views.png_bytes, r.x_adv[0]),
        file_name=f"{choice.name}-counterfactual.png",
        mime="image/png",
        on_click="ignore",
    )


@st.fragment
def show_views(v: dict) -> None:
    """Original, counterfactual and difference: sharp images, or on request
    interactive plots that show every pixel's value on hover."""
    hover = st.toggle("Pixel values on hover", key="hover")
    cols = st.columns(3)
    if hover:
        r = v["result"]
        figures = [
            views.image_figure(r.x[0], v["titles"][0]),
            views.image_figure(r.x_adv[0], v["titles"][1]),
            views.signed_map_figure(r.delta[0], v["titles"][2]),
        ]
        for col, fig in zip(cols, figures, strict=True):
            col.plotly_chart(fig, width="stretch")
    else:
        for col, png, title in zip(cols, v["three"], v["titles"], strict=True):
            col.image(png, caption=title, width="stretch", output_format="PNG")
    st.caption(DIFF_LEGEND)


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
    cols = st.columns(len(keys))
    for col, key in zip(cols, keys, strict=True):
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


main()
