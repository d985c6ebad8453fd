"""Model card: what the model is, how it was trained, how good and how sound it is.

Layout only: the sections below, top to bottom, each drawn by its module in
`dashboard.card` from the chosen model's card.
"""

from __future__ import annotations

from dashboard import state
from dashboard.card import (
    architecture,
    attacks,
    attributes,
    bounds,
    changes,
    data,
    downloads,
    header,
    metrics,
    ood_hint,
    quality,
    training,
)

SECTIONS = (
    header.render,  # name, summary, data license
    bounds.render,  # declared constant, upper and lower bounds, rounding
    architecture.render,
    metrics.render,  # clean and certified accuracy
    attributes.render,  # per attribute, for a multi-attribute model
    changes.render,  # what the model changes (counterfactual grid)
    quality.render,  # counterfactual quality (bench_counterfactuals)
    attacks.render,
    training.render,
    data.render,
    ood_hint.render,
    downloads.render,
)
"""The card's sections in page order. A new section: a module in
dashboard/card with `render(choice)`, and its line here."""

choice = state.current()
for section in SECTIONS:
    section(choice)
