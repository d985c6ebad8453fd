"""The explorer's context around a result: is the input like the training data,
the nearest real image of the new class, the twin's result, the attributions.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from dashboard import results, state, views
from lipnet.explain import ATTRIBUTION_LABELS


def familiarity(key: str, x_np: np.ndarray) -> None:
    """The out-of-distribution hint: is this input like the training data?

    For a face model, first the framing: a photo that is not cropped to the
    face like the training faces gets "crop to the face", whatever its pixel
    statistics say.

    Args:
        key: the model's key.
        x_np: the input, as the results cache keys it.
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


def show_nearest_real(choice: state.Choice, v: dict) -> None:
    """The nearest real test image of the counterfactual's class, for comparison:
    one the model is sure of, since the dataset's own label can be wrong.

    Args:
        choice: the model the page shows.
        v: the cached result (`dashboard.results`).
    """
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
    """The same method on the twin, beside this model's result.

    Args:
        pairs: (image PNG, caption, difference PNG) per model, this one first.
    """
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
    """Captum attributions of the input for the model and its twin.

    Args:
        choice: the model (and twin) the page shows.
        x_np: the input, as the results cache keys it.
    """
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
