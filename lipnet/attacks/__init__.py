"""Counterfactuals and adversarial attacks behind one API.

`counterfactual(model, x, method=..., target=None, **params)` runs one
method on a batch (or one image) and returns an AttackResult with the
perturbed input, its norms, success, outputs before and after, the certified
radius of x, the trajectory, the number of gradient evaluations and the time.
Every method respects the pixel box [0, 1] unless `box=False` (pure R^d, to
measure a certificate's tightness).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn

from ..certify import NoCertificateError, certified_radius
from ..layers import eval_mode
from .common import (
    AttackError,
    Tracker,
    check_inputs,
    check_positive,
    check_target,
    flipped,
    predictions,
)
from .records import ATTACKS, METHOD_LABELS, METHODS, Attack, Param, View
from .result import AttackResult

__all__ = [
    "ATTACKS",
    "METHODS",
    "METHOD_LABELS",
    "Attack",
    "AttackError",
    "AttackResult",
    "Param",
    "View",
    "counterfactual",
]


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
    default for batches of up to 16 images. The call is checked against the
    method's record in `ATTACKS` (its arguments, which must be positive,
    whether it needs eps).

    Args:
        model: a classifier (certified or not).
        x: the input batch, pixels in [0, 1].
        method: a name in `ATTACKS`.
        target: a class to aim at (multiclass only), None for any other.
        keep_trajectory: keep every step (default: for up to 16 images).
        **params: the method's own arguments.

    Returns:
        An AttackResult. Raises AttackError for bad input.
    """
    attack = ATTACKS.get(method)
    if attack is None:
        raise AttackError(
            f"unknown method {method!r}; choose from {', '.join(ATTACKS)}"
        )
    allowed = attack.arguments()
    unknown = set(params) - allowed
    if unknown:
        raise AttackError(
            f"{method} takes no parameter {', '.join(sorted(unknown))}; "
            f"it takes {', '.join(sorted(allowed))}"
        )
    for name in attack.positive:
        if name in params and params[name] is not None:
            value = params[name]
            if torch.is_tensor(value):
                if not torch.isfinite(value).all() or (value <= 0).any():
                    raise AttackError(f"{name} must be positive and finite")
            else:
                check_positive(name, value)
    if attack.takes_eps:
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
        x_adv = attack.function(tracker, x, **params).detach()
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
