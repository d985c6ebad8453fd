"""The explorer's certificate: the radius beside the change, and in words.

The three tiles (r, the size of the change, their ratio), the line in 8-bit
units, what the result was computed with, the overshoot note and the
verdict. Every number comes from `dashboard.results` or `lipnet`.
"""

from __future__ import annotations

import streamlit as st

from dashboard import eps_units
from lipnet.attacks import ATTACKS, METHOD_LABELS, View


def certificate_metrics(v: dict, overshoot: float = 0.0) -> None:
    """The radius beside the size of the change, and their ratio.

    With an overshoot o the change goes past the boundary on purpose: a
    transport step on a gradient-norm-preserving network then has size
    (1 + o)·r, so the ratio is taken against that, and 1.00 still means
    the certificate is tight. The tile's label says what is divided by what
    ("size ÷ (2 × r)"), so nobody divides the two numbers beside it and
    gets twice the value shown.

    Args:
        v: the cached result (`dashboard.results`).
        overshoot: the attack's overshoot (0: none).
    """
    radius, distance, flipped = v["radius"], v["distance"], v["flipped"]
    scale = 1 + overshoot if overshoot > 0.05 else 1.0
    a, b, c = st.columns(3)
    shape = tuple(v["result"].x.shape[1:])
    # The paper units are in each tile's tooltip and in one line under the
    # views (`units_caption`): a caption under a tile wraps in a third of the
    # column and pushes the views out of the first 1280×720 screen.
    a.metric(
        "Certified radius r",
        "none" if radius is None else f"{radius:.3f}",
        help=None if radius is None else eps_units.tile_help(radius, shape),
    )
    b.metric(
        "L2 size of the change" if flipped else "L2 size, no flip",
        f"{distance:.3f}",
        help=eps_units.tile_help(distance, shape),
    )
    ratio = (
        "—"
        if radius is None or not flipped
        else f"{distance / max(scale * radius, 1e-12):.2f}"
    )
    c.metric(
        "Ratio: size ÷ " + ("r" if scale == 1 else f"({scale:g} × r)"),
        ratio,
        help="The size of the change over r (over (1 + overshoot)·r when the "
        "change goes past the boundary on purpose). 1.00: the certificate is "
        "tight; above 1, the network needed more than r.",
    )


PARAMETER_LABELS = View(
    lambda: {
        "norm": "norm",
        "eps": "ε",
        **{p.name: p.short for a in ATTACKS.values() for p in a.params},
    }
)
"""How the caption under a result names each parameter (the records' `short`)."""


def units_caption(v: dict) -> None:
    """Under the views: r and the change in the units papers use.

    Args:
        v: the cached result.
    """
    shape = tuple(v["result"].x.shape[1:])
    parts = (
        [] if v["radius"] is None else [f"r = {eps_units.label(v['radius'], shape)}"]
    )
    parts.append(f"the change = {eps_units.label(v['distance'], shape)}")
    st.caption("In 8-bit units: " + "; ".join(parts) + ".")


def ran_caption(method: str, params: dict, classes: list[str]) -> None:
    """What the result was computed with, for the audience and to check the controls.

    Args:
        method: the attack's name.
        params: its parameters as run (with the target).
        classes: the model's classes.
    """
    parts = [
        f"{PARAMETER_LABELS[k]} {f'{v:g}' if isinstance(v, float) else v}"
        for k, v in params.items()
        if k in PARAMETER_LABELS
    ]
    parts.append(
        "pixels kept in [0, 1]" if params.get("box", True) else "pixels not clipped"
    )
    if params.get("target") is not None:
        parts.append(f"target {classes[params['target']]}")
    st.caption(f"Ran {METHOD_LABELS[method]}: {', '.join(parts)}.")


def overshoot_note(v: dict, overshoot: float) -> None:
    """Below the views: why the change is larger than r when it overshoots.

    Args:
        v: the cached result.
        overshoot: the attack's overshoot.
    """
    radius = v["radius"]
    if overshoot > 0.05 and v["flipped"] and radius is not None:
        st.caption(
            f"Overshoot {overshoot:g}: the change goes past the boundary on purpose. "
            f"A tight certificate predicts a size of (1 + {overshoot:g})·r = "
            f"{(1 + overshoot) * radius:.3f}; the chart below marks the smallest "
            "flip found (◆)."
        )


def certificate_verdict(v: dict, certified: bool) -> None:
    """The certificate in words (or the plain statement that there is none).

    Args:
        v: the cached result.
        certified: whether the model's certificate was checked on load.
    """
    radius, flipped = v["radius"], v["flipped"]
    if certified and radius is not None:
        st.success(
            f"No change of L2 size below r = {radius:.3f} can flip this decision."
            + ("" if flipped else " The attack did not flip it either.")
        )
    else:
        st.warning(
            "This model is unconstrained: it carries **no certificate**. Nothing "
            "guarantees that a tiny change does not flip its decision."
        )
