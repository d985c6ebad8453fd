"""A trained model's measurements for its card: accuracies and Lipschitz bounds.

`evaluate` gives clean and certified (balanced) accuracy on an ε grid;
`lipschitz_report` the declared constant beside the rigorous upper bound,
an estimate and a lower bound; `rounding_report` the floating-point
rounding bounds.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .certify import (
    box_rounding,
    certified_accuracy,
    lipschitz_estimate,
    lipschitz_lower_bound,
    lipschitz_upper_bound,
    median_gradient_norm,
    within_bound,
)
from .layers import LipSequential
from .precision import to_float64

EPS_GRID = (0.0, 0.25, 0.5, 1.0, 1.58, 2.0, 3.0)


SUBSET = 500  # the card also records the first 500 test images, for quick checks


def predict(model: nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    """Model outputs on `x`, in batches, without gradients.

    Args:
        model: any network; it is put in eval mode.
        x: the inputs, batch first.
        batch_size: how many inputs go through at once.

    Returns:
        The outputs for all of `x`, in order.
    """
    model.eval()
    with torch.no_grad():
        return torch.cat([model(b) for b in x.split(batch_size)])


def accuracy(outputs: Tensor, labels: Tensor, balanced: bool = False) -> float:
    """(Balanced) accuracy of outputs: one logit (positive = class 1) or scores.

    Args:
        outputs: (n, 1) logits or (n, classes) scores.
        labels: the n true classes.
        balanced: the mean of the per-class accuracies instead of the overall one.

    Returns:
        The accuracy in [0, 1].

    >>> accuracy(torch.tensor([[1.0], [-1.0]]), torch.tensor([1, 1]))
    0.5
    """
    pred = (
        (outputs.reshape(-1) > 0).long()
        if outputs.shape[-1] == 1
        else outputs.argmax(1)
    )
    ok = (pred == labels.long()).float()
    if not balanced:
        return float(ok.mean())
    return float(torch.stack([ok[labels == c].mean() for c in labels.unique()]).mean())


def evaluate(
    model: LipSequential,
    x: Tensor,
    y: Tensor,
    eps_list: Sequence[float] = EPS_GRID,
    balanced: bool = False,
) -> dict[str, Any]:
    """Clean and certified (balanced) accuracy on (x, y); no certificate → None.

    Args:
        model: the network to measure.
        x: test inputs.
        y: their labels.
        eps_list: the L2 radii of the certified accuracies (0 is left out).
        balanced: balanced accuracies (the mean over classes).

    Returns:
        {"n", "balanced", "clean_accuracy", "certified_accuracy"}, the last a
        dict from ε (as "%g") to accuracy, or None for an unconstrained model.
    """
    out = predict(model, x)
    metrics: dict[str, Any] = {
        "n": len(y),
        "balanced": balanced,
        "clean_accuracy": accuracy(out, y, balanced),
    }
    if model.head == "none":
        metrics["certified_accuracy"] = None
        return metrics
    shipped = as_loaded(model)
    cert = certified_accuracy(
        shipped, (x, y), [e for e in eps_list if e > 0], balanced=balanced
    )
    metrics["certified_accuracy"] = {f"{e:g}": round(v, 4) for e, v in cert.items()}
    return metrics


def as_loaded(model: nn.Module) -> nn.Module:
    """The model as `lipnet.load` will give it: a float64 copy of a float32
    model (its weights as trained), so every certificate measured on it is the
    one users get; float32 radii lose a box-wide rounding bound."""
    p = next(model.parameters(), None)
    if p is None or p.dtype != torch.float32:
        return model
    return to_float64(copy.deepcopy(model))


def lipschitz_report(model: LipSequential, x: Tensor) -> dict[str, Any]:
    """Declared constant beside the rigorous upper bound, an estimate, a lower bound.

    An unconstrained model gets its upper bound alone, to show how large it is.
    The bound is rounded up and the lower bound down, so the card never
    states a tighter interval than was measured.

    Args:
        model: the trained network.
        x: test inputs (the first 64 for the lower bound, 256 for the gradient
            norms).

    Returns:
        The card's "lipschitz" section.
    """
    upper = lipschitz_upper_bound(model, model.input_shape)
    declared = model.lipschitz_constant
    if model.head == "none":
        return {
            "declared": None,
            "upper_bound": _round_up(upper, 3),
            "note": "unconstrained: this model carries no certificate",
        }
    return {
        "declared": declared,
        "upper_bound": _round_up(upper, 6),
        "estimate": round(lipschitz_estimate(model, model.input_shape), 6),
        "lower_bound": math.floor(lipschitz_lower_bound(model, x[:64], steps=10) * 1e6)
        / 1e6,
        "median_gradient_norm": round(median_gradient_norm(model, x[:256]), 4),
        "sound": within_bound(upper, declared),
        **rounding_report(model),
        "method": "upper: product of exact per-layer norms at the real input size "
        "(dense: top eigenvalue of the Gram matrix; conv: FFT norm on the torus that "
        "embeds it; float64), rounded up; estimate: power iteration (tol 1e-7), "
        "from below; lower: largest input-gradient norm found on 64 test images; "
        "median gradient norm: on 256 test images (1 = gradient-norm preserving); "
        "rounding bound: the most floating-point rounding can change a score "
        "anywhere in the pixel box, in float64 as loaded (taken off every radius) "
        "and in float32 for comparison, rounded up",
    }


def rounding_report(model: LipSequential) -> dict[str, float]:
    """The card's rounding bounds: float64 as loaded, and float32 for comparison.

    Args:
        model: the trained network (measured on a float64 copy if float32).

    Returns:
        {"rounding_bound", "rounding_bound_float32"}, rounded up to 3 digits.
    """
    box = box_rounding(as_loaded(model))
    return {
        "rounding_bound": float(f"{box['score_error'] * (1 + 1e-3):.3g}"),
        "rounding_bound_float32": float(f"{box['score_error_float32'] * 1.001:.3g}"),
    }


def _round_up(value: float, digits: int) -> float:
    return math.ceil(value * 10**digits) / 10**digits
