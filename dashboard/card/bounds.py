"""The card's bounds: the declared Lipschitz constant, the upper bound measured
now, the lower bound of the card, and what rounding takes off every radius."""

from __future__ import annotations

import streamlit as st

from dashboard import state
from dashboard.state import Choice
from lipnet import lipschitz_upper_bound


@st.cache_data(show_spinner="Measuring the Lipschitz upper bound…", max_entries=32)
def measured_upper_bound(key: str) -> float:
    """The rigorous upper bound of a model, measured once per key.

    Args:
        key: the model's key (`dashboard.state.model_by_key`).

    Returns:
        `lipnet.lipschitz_upper_bound` at the model's input shape.
    """
    model = state.model_by_key(key)
    return lipschitz_upper_bound(model, model.input_shape)


def render(choice: Choice) -> None:
    """Three numbers side by side, then the rounding bound and the method.

    Args:
        choice: the model the page shows.
    """
    spec = choice.spec
    lip = spec.get("card", {}).get("lipschitz", {})
    a, b, c = st.columns(3)
    a.metric(
        "Declared Lipschitz constant",
        "none"
        if spec.get("lipschitz_constant") is None
        else f"{spec['lipschitz_constant']:g}",
    )
    b.metric("Measured upper bound (now)", f"{measured_upper_bound(choice.key):.4f}")
    c.metric(
        "Measured lower bound (card)",
        f"{lip['lower_bound']:.4f}" if "lower_bound" in lip else "—",
    )
    if "rounding_bound" in lip:
        st.caption(
            "Floating-point rounding can change a score by at most "
            f"{lip['rounding_bound']:.2g} anywhere in the pixel box (float64, as "
            f"loaded; float32 would allow {lip['rounding_bound_float32']:.2g}): every "
            "certified radius has it taken off, so the certificate holds for what "
            "this machine computes."
        )
    if lip.get("method"):
        st.caption(lip["method"])
