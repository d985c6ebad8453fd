"""The card's counterfactual quality, as bench/bench_counterfactuals.py measured it."""

from __future__ import annotations

from collections.abc import Mapping

from dashboard.state import Choice

from .labels import flatten
from .tables import titled_table


def render(choice: Choice) -> None:
    """Nothing when the card has no "counterfactual_quality" entry.

    Args:
        choice: the model the page shows.
    """
    card = choice.spec.get("card", {})
    if not isinstance(card.get("counterfactual_quality"), Mapping):
        return
    titled_table(
        "Counterfactual quality",
        "Measured by bench/bench_counterfactuals.py: an independent judge (its own "
        "network, never used to make counterfactuals) classifies the counterfactuals "
        "and three controls; specificity is the mean cosine between the changes "
        "(1 = one template pasted on every input).",
        flatten(card["counterfactual_quality"]),
        "Measurement",
    )
