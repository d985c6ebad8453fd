"""The card's header: the model's name, its summary, its data license."""

from __future__ import annotations

import streamlit as st

from dashboard.state import Choice


def render(choice: Choice) -> None:
    """Title, summary, the data license (a warning when non-commercial), and an
    error for a model without a certificate.

    Args:
        choice: the model the page shows.
    """
    card = choice.spec.get("card", {})
    st.title(f"Model card: {choice.name}")
    if card.get("summary"):
        st.markdown(card["summary"])
    if "NON-COMMERCIAL" in card.get("license", ""):
        st.warning(card["license"])
    elif card.get("license"):
        st.caption(f"Data license: {card['license']}")
    if not choice.certified:
        st.error("This model is unconstrained: it carries no certificate.")
