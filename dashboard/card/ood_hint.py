"""The card's out-of-distribution hint: how `lipnet.ood` was calibrated."""

from __future__ import annotations

from collections.abc import Mapping

from dashboard.state import Choice
from lipnet import ood

from .labels import flatten
from .tables import titled_table


def render(choice: Choice) -> None:
    """Nothing when the card has no "ood" entry.

    Args:
        choice: the model the page shows.
    """
    card = choice.spec.get("card", {})
    if not isinstance(card.get("ood"), Mapping):
        return
    titled_table(
        "Out-of-distribution hint",
        "The explorer flags an input whose score is above the threshold as "
        "unlike the training data (`lipnet.ood`); the certificate still holds.",
        flatten(ood.summary(card["ood"])),
        "Calibration",
    )
