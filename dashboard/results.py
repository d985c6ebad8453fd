"""The explorer's cached computations: attacks, attributions and result views.

A module of its own so the caches are defined once per process: a page
script runs again at every interaction, and a decorator that runs again
re-reads its function's source each time.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from streamlit.runtime.scriptrunner import get_script_run_ctx

from dashboard import state, svg_charts, views
from dashboard.work_queue import HEAVY
from lipnet import ood
from lipnet.attacks import ATTACKS, AttackResult, counterfactual
from lipnet.attacks.common import margin, predictions
from lipnet.attacks.measure import nearest_of_class
from lipnet.certify import NoCertificateError, certified_radius
from lipnet.explain import attribute
from lipnet.framing_check import Framing, check_framing

NEAREST_POOL = 500
"""Test images searched for the nearest real counterfactual."""


@st.cache_data(max_entries=256, ttl=3600, show_spinner=False)
def run_attack(key: str, x: np.ndarray, method: str, params: tuple) -> AttackResult:
    """One cached attack: reruns with the same model, input and parameters are free.

    Every method but the quick ones (the transport counterfactual, in
    milliseconds: `Attack.quick`) takes its turn in the shared work queue; the
    explorer's spinner shows while it waits.
    """
    model = state.model_by_key(key)
    attack = ATTACKS.get(method)
    if attack is not None and attack.quick:
        return counterfactual(model, torch.from_numpy(x), method, **dict(params))
    ctx = get_script_run_ctx()
    with HEAVY.slot(ctx.session_id if ctx is not None else "explorer"):
        return counterfactual(model, torch.from_numpy(x), method, **dict(params))


@st.cache_data(max_entries=256, ttl=3600, show_spinner=False)
def attribution_png(key: str, x: np.ndarray, method: str) -> bytes:
    """One cached attribution map, on a scale symmetric around its largest value."""
    a = attribute(state.model_by_key(key), torch.from_numpy(x), method)
    return views.signed_map_png(a[0], scale=None)


@st.cache_resource(max_entries=128, ttl=3600, show_spinner=False)
def result_views(
    key: str, twin_key: str | None, x: np.ndarray, method: str, params: tuple
) -> dict:
    """Every view and download of one result, built once per input.

    A resource cache, not a data cache: the views are read-only and shared by
    all sessions as they are, so a rerun neither rebuilds nor unpickles them
    (unpickling a plotly figure re-validates it, milliseconds each).
    """
    model = state.model_by_key(key)
    classes, certified = model.spec["classes"], model.head != "none"
    result = run_attack(key, x, method, params)
    before = classes[int(result.labels[0])]
    out = result.outputs_after
    after_index = int(out.argmax(1)[0]) if len(classes) > 2 else int(out[0, 0] > 0)
    after = classes[after_index]
    verdict = "flipped" if bool(result.success[0]) else "not flipped"
    radius = (
        None if result.certified_radius is None else float(result.certified_radius[0])
    )
    distance = float(result.l2[0])
    overshoot = float(dict(params).get("overshoot", 0.0))
    views_out = {
        "headline": f"{before} → {after} ({verdict})",
        "after": after,
        "after_index": after_index,
        "flipped": bool(result.success[0]),
        "radius": radius,
        "distance": distance,
        "result": result,
        "titles": [
            f"Original: {before}",
            f"Counterfactual: {after}",
            "Difference",
        ],
        "three": [
            views.image_png(result.x[0]),
            views.image_png(result.x_adv[0]),
            views.signed_map_png(result.delta[0]),
        ],
        "scores": svg_charts.scores_chart(
            result.outputs_before[0], result.outputs_after[0], classes
        ),
        "certificate": svg_charts.certificate_chart(
            radius,
            distance,
            flipped=bool(result.success[0]),
            overshoot=overshoot,
            smallest=smallest_flip(key, x, params) if overshoot > 0.05 else None,
        )
        if certified
        else None,
        "path": result.path(),
        "frames": result.trajectory_x,
        "twin": [],
    }
    if views_out["path"] is not None:
        views_out["path_figure"] = svg_charts.path_chart(
            views_out["path"], "this model"
        )
    pairs = [(key, result, certified)]
    if twin_key:
        pairs.append((twin_key, run_attack(twin_key, x, method, params), not certified))
    if len(pairs) == 2:
        for name, res, cert in pairs:
            tag = "certified" if cert else "no certificate"
            name = state.model_by_key(name).spec.get("name", name)
            views_out["twin"].append(
                (
                    views.image_png(res.x_adv[0]),
                    f"{name} ({tag}): ‖δ‖₂ = {float(res.l2[0]):.2f}, "
                    + ("flipped" if bool(res.success[0]) else "not flipped"),
                    views.signed_map_png(res.delta[0]),
                )
            )
    return views_out


SMALLEST_OVERSHOOT = 0.02
"""The transport step just past the boundary: the smallest flip it finds."""


def smallest_flip(key: str, x: np.ndarray, params: tuple) -> float | None:
    """The size of the smallest flip the transport step finds (overshoot 0.02,
    the same box and target as `params`), or None when it does not flip."""
    kept = dict(params)
    small = (
        ("box", kept.get("box", True)),
        ("overshoot", SMALLEST_OVERSHOOT),
        ("step_size", 1.0),
        ("target", kept.get("target")),
    )
    r = run_attack(key, x, "transport", small)
    return float(r.l2[0]) if bool(r.success[0]) else None


@st.cache_data(max_entries=256, ttl=3600, show_spinner=False)
def prediction(key: str, x: np.ndarray) -> tuple[int, float | None]:
    """The input's predicted class index and certified radius (None: no certificate)."""
    model = state.model_by_key(key)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        predicted = int(predictions(model(xt))[0])
    try:
        return predicted, float(certified_radius(model, xt)[0])
    except NoCertificateError:
        return predicted, None


@st.cache_data(max_entries=256, ttl=3600, show_spinner=False)
def ood_hint(key: str, x: np.ndarray) -> ood.OODResult | None:
    """The out-of-distribution check of one input (None: no calibration)."""
    return ood.check(state.model_by_key(key), torch.from_numpy(x))


@st.cache_data(max_entries=256, ttl=3600, show_spinner=False)
def framing(x: np.ndarray) -> Framing:
    """Whether a face image is framed like the face models' training crops."""
    return check_framing(torch.from_numpy(x))


@st.cache_data(max_entries=256, ttl=3600, show_spinner=False)
def nearest_real(key: str, x: np.ndarray, cls: int) -> tuple[int, float] | None:
    """The nearest test image of class `cls` among 500 that the model is sure
    of (labelled and predicted `cls`, margin in the upper half): (index, L2
    distance), or None."""
    images = state.gallery(key, NEAREST_POOL)
    if isinstance(images, str):
        return None
    pool, labels = images
    with torch.no_grad():
        outputs = state.model_by_key(key)(pool)
    margins = margin(outputs, torch.full((len(pool),), cls), None)
    return nearest_of_class(torch.from_numpy(x)[0], pool, labels, cls, margins)
