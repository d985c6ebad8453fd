"""The explorer's method widgets: which attack, with which parameters.

Every widget reads its starting value from the session state (never from a
`value=` argument), so a preset or a shared link can set any of them before
the page draws, without Streamlit's double-default warning. `keep_values`
writes each value back at the start of every run: a widget that was not
drawn in the last run (the page waited for an upload or a drawing, or
another page was shown) would otherwise come back showing its own minimum
while the result used the kept value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from dashboard import eps_units
from lipnet.attacks import ATTACKS, METHOD_LABELS, Param, View

ANY = "any other class"
COMMON_DEFAULTS: dict[str, object] = {
    "method": "transport",
    "norm": "l2",
    "eps_scale": 1.2,
    "eps_l2": 1.5,
    "eps_linf": 0.1,
    "box": True,
    "target": ANY,
}
"""The widgets every method shares (method, budget, box, target) at their start."""


def _defaults() -> dict[str, object]:
    """The shared widgets' defaults, then each attack parameter's (its record's)."""
    params = {p.key: p.default for a in ATTACKS.values() for p in a.params}
    return {**COMMON_DEFAULTS, **params}


DEFAULTS: Mapping[str, object] = View(_defaults)
"""Every method widget's starting value (live: follows `lipnet.attacks.ATTACKS`)."""
VIEW_DEFAULTS: dict[str, object] = {"amplify": 1, "morph": 100, "hover": False}
"""The result views' widgets (amplification, morph, hover) at their start."""
KEPT = ("source", "gallery_index", "builtin_digit", "attribution")
"""Input and attribution widgets whose value, once chosen, is written back too."""


def keep_values() -> None:
    """Write every explorer widget's value (or its default) into the session
    again, so the browser shows the values the result is computed with."""
    for key, value in {**DEFAULTS, **VIEW_DEFAULTS}.items():
        st.session_state[key] = st.session_state.get(key, value)
    for key in KEPT:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def pick_method(classes: Sequence[str], radius: float | None, predicted: int) -> dict:
    """The method widgets; returns the method name and its parameters as a dict.

    One pill per record of `lipnet.attacks.ATTACKS`; the chosen attack's
    parameters are drawn from its record. `radius` (the input's certified
    radius, None without a certificate) scales the default L2 budget of a
    budget attack (FGSM, PGD) to 1.2 × r, so the first click shows whether a
    budget just past the certificate flips the decision. `predicted` is left
    out of the target classes: aiming at the class the input already has is
    no attack.

    Args:
        classes: the model's class names.
        radius: the input's certified radius, or None.
        predicted: the index of the class the model gives the input.

    Returns:
        {"method": name, **the method's parameters, "box": ..., "target": ...}.
    """
    method = st.pills(
        "Method",
        list(METHOD_LABELS),
        required=True,
        format_func=METHOD_LABELS.get,
        key="method",
        wrap=True,  # every method in sight: one click runs it
    )
    params: dict = {"method": method}
    attack = ATTACKS[method]
    if attack.takes_eps:
        params.update(_budget(radius))
    for p in attack.params:
        params[p.name] = _widget(p)
    params["box"] = st.checkbox("Keep pixels in [0, 1]", key="box")
    if len(classes) > 2:
        others = [c for i, c in enumerate(classes) if i != predicted]
        if st.session_state.get("target") not in (ANY, *others):
            st.session_state["target"] = ANY  # the input's own class: no attack
        target = st.selectbox("Target class", [ANY, *others], key="target")
        if target != ANY:
            params["target"] = classes.index(target)
    return params


def _widget(p: Param) -> int | float:
    """One attack parameter's widget, as its record describes it."""
    if p.widget == "number":
        return st.number_input(
            p.label, p.low, p.high, step=p.step, key=p.key, help=p.help
        )
    return st.slider(p.label, p.low, p.high, step=p.step, key=p.key, help=p.help)


def _budget(radius: float | None) -> dict:
    """FGSM/PGD's norm and budget: relative to r for L2 when there is an r."""
    norm = st.radio("Norm", ["l2", "linf"], horizontal=True, key="norm")
    if norm == "l2" and radius is not None:
        scale = st.slider(
            "Budget ε (× the certified radius r)",
            0.1,
            5.0,
            step=0.1,
            key="eps_scale",
            help="Below 1 no attack can succeed: that is the certificate.",
        )
        eps = max(scale * radius, 1e-3)
        st.caption(f"ε = {scale:g} × r = **{eps:.3f}** (L2) = {eps_units.in_255(eps)}")
        return {"norm": norm, "eps": round(eps, 6)}
    key = f"eps_{norm}"
    eps = st.number_input("Budget ε", 0.001, 50.0, step=0.1, key=key)
    st.caption(
        f"= {eps_units.in_255(eps)} in 8-bit units"
        + (" per pixel" if norm == "linf" else " (L2)")
    )
    return {"norm": norm, "eps": eps}
