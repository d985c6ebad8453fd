"""The card's training: time, machine, the config, the last epochs, the command."""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st

from dashboard.state import Choice

from .labels import flatten, label, show
from .tables import history_table, table


def render(choice: Choice) -> None:
    """The settings table (the summary left out: the header shows it), the last
    epochs, and the command that reproduces the model.

    Args:
        choice: the model the page shows.
    """
    card = choice.spec.get("card", {})
    st.subheader("Training")
    training = card.get("training", {})
    if isinstance(training, Mapping) and training:
        rows = []
        if "train_time_s" in training:
            rows.append((label("train_time_s"), f"{show(training['train_time_s'])} s"))
        if "machine" in training:
            rows.append((label("machine"), show(training["machine"])))
        config = training.get("config", {})
        if isinstance(config, Mapping):
            # The summary is shown at the top of the page already.
            config = {
                k: v
                for k, v in config.items()
                if not (k == "summary" and v == card.get("summary"))
            }
        rows += flatten(config)
        table(rows, "Setting")
        history_table(training.get("history"))
    if card.get("reproduce"):
        st.code(card["reproduce"], language="bash")
