"""Certificates: from one forward pass to a radius no perturbation can cross.

`certified_radius` turns one forward pass into a per-sample L2 radius within
which the decision cannot change, rounding included; `certified_accuracy`
counts the samples certified beyond each ε. The constant they divide by is
the model's `CertificateContext` (`lipnet.certificate_context`), never less
than its rigorous upper bound (`lipnet.bounds`, which also measures the
constant a model really has, so a model that declares more robustness than
it has is caught: `check_lipschitz`). Every name of those two modules is
importable from here too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from .bounds import (
    EXACT_SLACK,
    POWER_ITER_MAX,
    POWER_ITER_TOL,
    UNSOUND_TOLERANCE,
    check_lipschitz,
    check_measured,
    layer_norm_estimates,
    layer_norms,
    lipschitz_estimate,
    lipschitz_lower_bound,
    lipschitz_upper_bound,
    median_gradient_norm,
    within_bound,
)
from .certificate_context import (
    CertificateContext,
    NoCertificateError,
    certificate_context,
    certificate_params,
)
from .layers import HEAD_FACTORS, eval_mode
from .rounding import ball_error, forward_with_norms, unit_roundoff

__all__ = [
    "EXACT_SLACK",
    "POWER_ITER_MAX",
    "POWER_ITER_TOL",
    "UNSOUND_TOLERANCE",
    "CertificateContext",
    "NoCertificateError",
    "box_rounding",
    "certificate_context",
    "certificate_params",
    "certified_accuracy",
    "certified_radius",
    "check_lipschitz",
    "check_measured",
    "layer_norm_estimates",
    "layer_norms",
    "lipschitz_estimate",
    "lipschitz_lower_bound",
    "lipschitz_upper_bound",
    "median_gradient_norm",
    "outputs_and_radius",
    "radius_from_outputs",
    "rounding_error",
    "within_bound",
]


def radius_from_outputs(
    outputs: Tensor,
    lipschitz: float,
    head: str,
    labels: Tensor | None = None,
    error: Tensor | float = 0.0,
) -> Tensor:
    """Certified L2 radius from model outputs (no forward pass).

    Binary (one output, positive means class 1): (|f| − 2e) / L. Multiclass:
    (f_top − f_second − 4e) / (√2·L) for a network L-Lipschitz as a whole, or
    / (2·L) for independently L-Lipschitz output neurons, where `e` bounds
    each output's rounding error (`lipnet.rounding`; 0 for exact
    arithmetic). With `labels`, a misclassified sample gets radius 0; so does
    a sample whose outputs or error bound are not finite.
    """
    if head not in HEAD_FACTORS:
        raise NoCertificateError(f"no certificate for head type {head!r}")
    if not math.isfinite(lipschitz) or lipschitz <= 0:
        raise ValueError(f"invalid Lipschitz constant {lipschitz}")
    dtype = outputs.dtype if outputs.is_floating_point() else torch.float64
    outputs = outputs.detach().double()
    if head == "binary":
        f = outputs.reshape(outputs.shape[0], -1)
        if f.shape[1] != 1:
            raise ValueError(f"a binary head has one output, got {f.shape[1]}")
        f = f[:, 0]
        margin, lost = f.abs(), 2.0
        predicted = (f > 0).long()
    else:
        if outputs.dim() != 2 or outputs.shape[1] < 2:
            raise ValueError(
                f"multiclass outputs must be (N, C≥2), got {outputs.shape}"
            )
        top2 = outputs.topk(2, dim=1).values
        margin, lost = top2[:, 0] - top2[:, 1], 4.0
        predicted = outputs.argmax(dim=1)
    error = torch.as_tensor(error, dtype=torch.float64).to(margin.device)
    radius = (margin - lost * error) / (HEAD_FACTORS[head] * lipschitz)
    # Division rounds to nearest: one step down keeps the radius a lower bound.
    radius = torch.nextafter(radius, torch.zeros_like(radius)).clamp_min(0.0)
    ok = torch.isfinite(radius) & torch.isfinite(outputs).all(dim=1)
    if labels is not None:
        labels = _as_class_index(labels, head)
        ok = ok & (predicted == labels.to(predicted.device))
    return _round_down(torch.where(ok, radius, torch.zeros_like(radius)), dtype)


def _round_down(value: Tensor, dtype: torch.dtype) -> Tensor:
    """`value` (float64) in `dtype`, never rounded up (a radius stays a lower bound)."""
    low = value.to(dtype)
    above = low.double() > value
    return torch.where(above, torch.nextafter(low, torch.zeros_like(low)), low)


def _as_class_index(labels: Tensor, head: str) -> Tensor:
    """Class indices from labels ({0,1} or {−1,1} for binary)."""
    labels = torch.as_tensor(labels).reshape(-1)
    if head == "binary":
        return (labels > 0).long()
    return labels.long()


def outputs_and_radius(
    model: nn.Module, x: Tensor, labels: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The model's outputs on `x` and one certified radius per sample.

    The radius holds for the function the machine computes: the rounding
    bound over the whole ball (`lipnet.rounding.ball_error`) is taken off the
    margin, and L is the larger of the declared and measured constants.
    """
    if getattr(model, "task", None) == "multilabel":
        raise NoCertificateError(
            "a multi-attribute model has one certificate per attribute: take one "
            "with lipnet.attribute(model, name), or all with "
            "lipnet.attributes.attribute_radii"
        )
    with eval_mode(model):
        context = certificate_context(model, tuple(x.shape[1:]))
        out, hidden = forward_with_norms(model, x)
    flat = out.detach().double().reshape(out.shape[0], -1)
    if context.head == "binary":
        margin = flat[:, 0].abs()
    else:
        top2 = flat.topk(2, dim=1).values
        margin = top2[:, 0] - top2[:, 1]
    nominal = (margin / context.divisor).nan_to_num(0.0, 0.0, 0.0)
    error = ball_error(context.rounding, hidden, context.prefix, nominal)
    # The caller gets the scores in x's type: each is rounded once more, by
    # at most u·|score| + the smallest normal number, at x and anywhere in
    # the ball (where a score grows by at most 2e + c·L·r).
    dtype = x.dtype if x.is_floating_point() else out.dtype
    if dtype != out.dtype:
        u, tiny = unit_roundoff(dtype), torch.finfo(dtype).tiny
        largest = flat.abs().amax(dim=1)
        error = error + u * (largest + 2 * error + context.divisor * nominal) + tiny
    radius = radius_from_outputs(out, context.lipschitz, context.head, labels, error)
    return out.to(dtype), _round_down(radius, dtype)


def certified_radius(
    model: nn.Module, x: Tensor, labels: Tensor | None = None
) -> Tensor:
    """One certified L2 radius per sample of `x` (N, ...), from one forward pass.

    No perturbation of L2 norm smaller than the radius can change the
    decision the model computes, rounding included. With `labels`,
    misclassified samples get 0. Raises NoCertificateError for a model
    without a declared Lipschitz bound.
    """
    return outputs_and_radius(model, x, labels)[1]


def box_rounding(model: nn.Module, probes: int = 8) -> dict[str, Any]:
    """The rounding bound over the whole pixel box [0, 1]^d, and a finiteness probe.

    The box lies in the ball of radius √d/2 around its centre, so the ball's
    rounding bound (`lipnet.rounding.ball_error`) covers every image. Returns
    `score_error` (that bound, in the model's arithmetic), `score_error_float32`
    (the same network computed in float32) and `finite` (every probe — the
    centre, the corners 0 and 1, and random images — gave finite outputs and
    the bound is finite).
    """
    context = certificate_context(model)
    shape = tuple(model.input_shape)
    gen = torch.Generator().manual_seed(0)
    x = torch.cat(
        (
            torch.full((1, *shape), 0.5),
            torch.zeros(1, *shape),
            torch.ones(1, *shape),
            torch.rand((probes, *shape), generator=gen),
        )
    )
    with eval_mode(model):
        out, hidden = forward_with_norms(model, x)
    radius = torch.full_like(hidden[0], math.sqrt(math.prod(shape)) / 2)
    centre = [h[:1] for h in hidden]
    error = ball_error(context.rounding, centre, context.prefix, radius[:1])
    as32 = replace(
        context.rounding,
        unit=unit_roundoff(torch.float32),
        largest=torch.finfo(torch.float32).max,
    )
    error32 = ball_error(as32, centre, context.prefix, radius[:1])
    return {
        "score_error": float(error[0]),
        "score_error_float32": float(error32[0]),
        "finite": bool(torch.isfinite(out).all()) and math.isfinite(error[0]),
    }


def rounding_error(model: nn.Module, x: Tensor) -> Tensor:
    """Per sample, the bound on the score's rounding error at x (no ball)."""
    with eval_mode(model):
        context = certificate_context(model, tuple(x.shape[1:]))
        _, hidden = forward_with_norms(model, x)
    zero = torch.zeros_like(hidden[0])
    return ball_error(context.rounding, hidden, context.prefix, zero)


def _batches(data: Any) -> Iterable[tuple[Tensor, Tensor]]:
    """Accept a DataLoader of (x, y) or a single (x, y) pair of tensors."""
    if isinstance(data, tuple | list) and len(data) == 2 and torch.is_tensor(data[0]):
        yield data[0], data[1]
        return
    for batch in data:
        yield batch[0], batch[1]


def certified_accuracy(
    model: nn.Module,
    loader: Any,
    eps_list: Sequence[float],
    balanced: bool = False,
) -> dict[float, float]:
    """Fraction of samples correctly classified with a certified radius > ε, per ε.

    ε = 0 gives the clean accuracy. `loader` yields (x, y) batches (or is one
    (x, y) pair). With `balanced`, the per-class rates are averaged (for
    imbalanced tasks such as CelebA moustaches).
    """
    _, head = certificate_params(model)
    radii, classes = [], []
    for x, y in _batches(loader):
        radii.append(certified_radius(model, x, y).cpu())
        classes.append(_as_class_index(y, head).cpu())
    r, c = torch.cat(radii), torch.cat(classes)
    return {float(eps): _rate(r, c, eps, balanced) for eps in eps_list}


def _rate(radii: Tensor, classes: Tensor, eps: float, balanced: bool) -> float:
    ok = (radii > eps) if eps > 0 else (radii > 0)
    if not balanced:
        return float(ok.float().mean())
    return float(
        torch.stack([ok[classes == k].float().mean() for k in classes.unique()]).mean()
    )
