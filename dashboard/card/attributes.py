"""The model card's per-attribute table, for a model with one output per attribute."""

from __future__ import annotations

import streamlit as st

from dashboard import state
from lipnet.attribute_words import attribute_rows


def render(choice: state.Choice) -> None:
    """Every attribute's test numbers, when the card has them (else nothing)."""
    rows = attribute_rows(choice.spec.get("card", {}))
    if not rows:
        return
    st.subheader("Every attribute", anchor=False)
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption(
        "Each attribute has its own 1-Lipschitz output, so its own certificate: "
        "balanced accuracy and balanced certified accuracy (decision right and "
        "certified beyond ε) on the test faces (people the model never saw); "
        "tightness = median smallest change found ÷ certified radius (1 is "
        "tight); counterfactual validity = share of transport counterfactuals "
        "an independent judge sees with the attribute (blank: not measured)."
    )
