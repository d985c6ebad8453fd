"""The card's attacks: the smallest perturbations found, against the radius."""

from __future__ import annotations

from dashboard.state import Choice

from .labels import flatten
from .tables import titled_table


def render(choice: Choice) -> None:
    """Nothing when the card has no attack measurement.

    Args:
        choice: the model the page shows.
    """
    card = choice.spec.get("card", {})
    if not card.get("attacks"):
        return
    titled_table(
        "Attacks",
        "The smallest perturbations the attacks found on test images, against "
        "the certified radius: a ratio of 1 means the certificate is tight."
        if choice.certified
        else "The smallest perturbations the attacks found on test images.",
        flatten(card["attacks"]),
        "Measurement",
    )
