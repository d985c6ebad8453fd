"""The card's test metrics: clean accuracy, the certified accuracy curve, and
the earlier versions of the model beside it."""

from __future__ import annotations

import streamlit as st

from dashboard import eps_units, plots
from dashboard.state import Choice

from .tables import table


def render(choice: Choice) -> None:
    """Nothing when the card has no test metrics.

    Args:
        choice: the model the page shows.
    """
    spec = choice.spec
    card = spec.get("card", {})
    metrics = card.get("metrics", {}).get("test")
    if not metrics:
        return
    st.subheader("Test metrics")
    kind = "balanced accuracy" if metrics.get("balanced") else "accuracy"
    st.metric(
        f"Clean {kind} on {metrics['n']} test images",
        f"{metrics['clean_accuracy']:.2%}",
    )
    cert = metrics.get("certified_accuracy")
    if not cert:
        return
    previous = card.get("previous", [])
    curve = plots.certified_curve_figure(cert, kind, previous)
    eps_units.on_axis(curve, spec["input_shape"])
    st.plotly_chart(curve, width="stretch")
    if previous:
        table(
            [
                (
                    str(e["label"]),
                    f"clean {e['clean_accuracy']:.2%}"
                    + (f"; {e['note']}" if e.get("note") else ""),
                )
                for e in previous
            ],
            "Earlier version",
        )
