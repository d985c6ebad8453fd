"""Counterfactuals and adversarial attacks behind one API.

`counterfactual(model, x, method=..., target=None, **params)` runs one
method on a batch (or one image) and returns an AttackResult with the
perturbed input, its norms, success, outputs before and after, the certified
radius of x, the trajectory, the number of gradient evaluations and the time.
Every method respects the pixel box [0, 1] unless `box=False` (pure R^d, to
measure a certificate's tightness).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..certify import NoCertificateError, certified_radius
from ..layers import eval_mode
from .boundary import deepfool, transport
from .common import (
    AttackError,
    Tracker,
    check_inputs,
    check_positive,
    check_target,
    flipped,
    predictions,
)
from .gradient import fgsm, pgd
from .minimal import fmn, pgd_search
from .result import AttackResult

METHODS: dict[str, Callable[..., Tensor]] = {
    "transport": transport,
    "fgsm": fgsm,
    "pgd": pgd,
    "deepfool": deepfool,
    "fmn": fmn,
    "pgd_search": pgd_search,
}
METHOD_LABELS = {
    "transport": "Transport counterfactual",
    "fgsm": "FGSM",
    "pgd": "PGD",
    "deepfool": "DeepFool",
    "fmn": "Minimal L2 (FMN)",
    "pgd_search": "Minimal L2 (PGD + binary search)",
}
_POSITIVE = (
    "eps",
    "eps_max",
    "step_size",
    "steps",
    "restarts",
    "search_steps",
    "pgd_steps",
)

__all__ = ["METHODS", "METHOD_LABELS", "AttackError", "AttackResult", "counterfactual"]


def counterfactual(
    model: nn.Module,
    x: Tensor,
    method: str = "transport",
    target: Any = None,
    keep_trajectory: bool | None = None,
    **params: Any,
) -> AttackResult:
    """Run `method` on `x` ((N, C, H, W) or one (C, H, W) image); describe the result.

    Untargeted attacks flip the model's current decision; with `target`
    (multiclass only) they aim at that class. The trajectory is kept by
    default for batches of up to 16 images. Raises AttackError for bad input.
    """
    if method not in METHODS:
        raise AttackError(
            f"unknown method {method!r}; choose from {', '.join(METHODS)}"
        )
    fn = METHODS[method]
    allowed = set(inspect.signature(fn).parameters) - {"tracker", "x"}
    unknown = set(params) - allowed
    if unknown:
        raise AttackError(
            f"{method} takes no parameter {', '.join(sorted(unknown))}; "
            f"it takes {', '.join(sorted(allowed))}"
        )
    for name in _POSITIVE:
        if name in params and params[name] is not None:
            value = params[name]
            if torch.is_tensor(value):
                if not torch.isfinite(value).all() or (value <= 0).any():
                    raise AttackError(f"{name} must be positive and finite")
            else:
                check_positive(name, value)
    if method in ("fgsm", "pgd"):
        if "eps" not in params:
            raise AttackError(
                f"{method} needs eps, the size of the perturbation budget"
            )
        norm = params.setdefault("norm", "l2")
        if norm not in ("l2", "linf"):
            raise AttackError(f"norm must be 'l2' or 'linf', got {norm!r}")
    x = check_inputs(model, x)
    start = time.perf_counter()
    with eval_mode(model):
        with torch.no_grad():
            before = model(x)
        labels = predictions(before)
        tgt = check_target(before, labels, target)
        keep = x.shape[0] <= 16 if keep_trajectory is None else keep_trajectory
        tracker = Tracker(model, labels, tgt, keep)
        x_adv = fn(tracker, x, **params).detach()
        with torch.no_grad():
            after = model(x_adv)
        tracker.record(x_adv, after)
    elapsed = time.perf_counter() - start
    success = flipped(after, labels, tgt)
    try:
        radius = certified_radius(model, x)
    except NoCertificateError:
        radius = None
    traj_x, traj_out = tracker.trajectory()
    return AttackResult(
        method=method,
        params=dict(params),
        x=x,
        x_adv=x_adv,
        success=success,
        labels=labels,
        target=tgt,
        outputs_before=before,
        outputs_after=after,
        certified_radius=radius,
        n_gradients=tracker.n_gradients,
        time_s=elapsed,
        trajectory_x=traj_x,
        trajectory_outputs=traj_out,
        extra={
            "lipschitz": getattr(model, "lipschitz_constant", None),
            "head": getattr(model, "head", None),
        },
    )
