"""The card's data: dataset, source, license, split and counts."""

from __future__ import annotations

import streamlit as st

from dashboard.state import Choice

from .labels import flatten
from .tables import table


def render(choice: Choice) -> None:
    """The data table, or a line saying the card has none.

    Args:
        choice: the model the page shows.
    """
    st.subheader("Data")
    data = choice.spec.get("card", {}).get("data", {})
    if data:
        table(flatten(data))
    else:
        st.caption("The card says nothing about the data.")
