"""The card's attacks: the smallest perturbations found, against the radius."""

from __future__ import annotations

import streamlit as st

from dashboard.state import Choice

from .labels import flatten
from .tables import table


def render(choice: Choice) -> None:
    """Nothing when the card has no attack measurement.

    Args:
        choice: the model the page shows.
    """
    card = choice.spec.get("card", {})
    if not card.get("attacks"):
        return
    st.subheader("Attacks")
    st.caption(
        "The smallest perturbations the attacks found on test images, against "
        "the certified radius: a ratio of 1 means the certificate is tight."
        if choice.certified
        else "The smallest perturbations the attacks found on test images."
    )
    table(flatten(card["attacks"]), "Measurement")
