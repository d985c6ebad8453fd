"""Certificates and Lipschitz verification.

`certified_radius` turns one forward pass into a per-sample L2 radius within
which the decision cannot change; `lipschitz_upper_bound` and
`lipschitz_lower_bound` measure the constant a model really has, so a model
that declares more robustness than it has is caught (`check_lipschitz`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from .constraints import conv_operator_norm, power_iteration
from .layers import (
    HEAD_FACTORS,
    BlockOrthogonalConv2d,
    Flatten,
    FullSort,
    GroupSort,
    InvertibleDownSampling,
    LipschitzLayer,
    MaxMin,
    OrthogonalConv2d,
    ScaledAvgPool2d,
    ScaledL2NormPool2d,
    eval_mode,
)
from .rounding import (
    RoundingProfile,
    ball_error,
    forward_with_norms,
    rounding_profile,
    unit_roundoff,
)

UNSOUND_TOLERANCE = 1e-3
POWER_ITER_TOL = 1e-7
POWER_ITER_MAX = 2000
EXACT_SLACK = 1e-9


class NoCertificateError(ValueError):
    """A certificate was asked of a model that declares no Lipschitz bound."""


def certificate_params(model: nn.Module) -> tuple[float, str]:
    """(declared Lipschitz constant, head type) of a certified model.

    Raises NoCertificateError for a model that declares no bound.
    """
    lip = getattr(model, "lipschitz_constant", None)
    head = getattr(model, "head", None)
    if lip is None or head not in HEAD_FACTORS:
        raise NoCertificateError(
            "this model declares no Lipschitz constant: it carries no certificate"
        )
    return float(lip), head


@dataclass(frozen=True)
class CertificateContext:
    """What every certificate of one model needs, measured once per parameters.

    `lipschitz` is the larger of the declared constant and the rigorous upper
    bound, rounded up: no tolerance can make a radius grow. `rounding` bounds
    what the machine's arithmetic adds (`lipnet.rounding`); `prefix[k]` is the
    product of the constants of the layers before layer k.
    """

    lipschitz: float
    declared: float
    upper: float
    head: str
    rounding: RoundingProfile
    prefix: tuple[float, ...]

    @property
    def divisor(self) -> float:
        """What the margin is divided by: c·L (c = 1, √2 or 2 by head)."""
        return HEAD_FACTORS[self.head] * self.lipschitz

    @property
    def error_factor(self) -> float:
        """How many output-error bounds the margin loses (at x and at x')."""
        return 2.0 if self.head == "binary" else 4.0


def certificate_context(
    model: nn.Module, input_shape: Sequence[int] | None = None
) -> CertificateContext:
    """The model's certificate context, cached until its parameters change.

    Raises NoCertificateError for a model without a declared bound, and
    TypeError for a layer without a bound or a rounding model.
    """
    declared, head = certificate_params(model)
    shape = tuple(getattr(model, "input_shape", None) or input_shape or ())
    if not shape:
        raise ValueError("a certificate needs the model's input shape")
    key = (shape, _fingerprint(model))
    cached = getattr(model, "_certificate_context", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    norms = [norm for _, norm in layer_norms(model, shape)]
    upper = math.prod(norms)
    lipschitz = math.nextafter(max(declared, upper), math.inf)
    prefix = tuple(math.prod(norms[:k]) for k in range(len(norms)))
    profile = rounding_profile(model, shape, norms)
    context = CertificateContext(lipschitz, declared, upper, head, profile, prefix)
    object.__setattr__(model, "_certificate_context", (key, context))
    return context


def _fingerprint(model: nn.Module) -> tuple:
    """Identifies the current parameters and buffers (storage and version)."""
    tensors = [*model.parameters(), *model.buffers()]
    return tuple((t._version, t.data_ptr(), t.dtype) for t in tensors)


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


# Parameter-free layers whose Lipschitz constant is known exactly.
_CONSTANT_LAYERS: dict[type, float] = {
    nn.ReLU: 1.0,
    nn.LeakyReLU: 1.0,
    nn.Tanh: 1.0,
    nn.Sigmoid: 0.25,
    nn.Identity: 1.0,
    nn.Dropout: 1.0,
    nn.Flatten: 1.0,
    nn.PixelUnshuffle: 1.0,
    Flatten: 1.0,
    InvertibleDownSampling: 1.0,
    GroupSort: 1.0,
    FullSort: 1.0,
    MaxMin: 1.0,
    ScaledL2NormPool2d: 1.0,
}


def layer_norm_estimates(
    model: nn.Module, input_shape: Sequence[int]
) -> list[tuple[str, float]]:
    """Per-layer L2 operator norms estimated by power iteration at their input shape.

    Fast and close, but an estimate from *below*: power iteration converges
    to each norm from underneath, so the product can fall a hair short of the
    true constant. Affine layers (dense, conv, pooling) are iterated on
    x ↦ layer(x) − layer(0), whose adjoint autograd gives, until the estimate
    moves by < 1e-7 relative (at most 2,000 steps); activations and
    isometries use their exact constant. Use `layer_norms` for a bound.
    """
    result = []
    for i, (layer, x) in enumerate(_layers_with_inputs(model, input_shape)):
        const = _constant_of(layer)
        if const is None:
            with torch.no_grad():
                offset = layer(torch.zeros_like(x))

            def op(
                u: Tensor, layer: nn.Module = layer, offset: Tensor = offset
            ) -> Tensor:
                return layer(u) - offset

            gen = torch.Generator().manual_seed(i)
            u0 = torch.randn(x.shape, generator=gen).to(x)
            const, _ = power_iteration(op, u0, POWER_ITER_MAX, POWER_ITER_TOL)
        result.append((f"{i}:{type(layer).__name__}", const))
    return result


def layer_norms(
    model: nn.Module, input_shape: Sequence[int]
) -> list[tuple[str, float]]:
    """Per-layer L2 operator norms at their input shape, each a rigorous upper bound.

    Dense layers: the exact spectral norm of the weight (the top eigenvalue
    of its smaller Gram matrix, in float64, whose rounding is ~1e-13);
    convolutions: the exact norm of the circular convolution on the smallest
    torus that embeds the zero-padded one (`conv_operator_norm`, in float64),
    which bounds it from above; pooling and activations: their exact
    constants. Each value is raised by a relative 1e-9 to cover float64
    rounding. Under a "disjoint" head the last layer counts per output
    neuron (its largest row norm), as its certificate does.
    """
    disjoint = getattr(model, "head", None) == "disjoint"
    pairs = list(_layers_with_inputs(model, input_shape))
    result = []
    for i, (layer, x) in enumerate(pairs):
        per_neuron = disjoint and i == len(pairs) - 1
        const = _exact_norm(layer, tuple(x.shape[2:]), per_neuron)
        result.append((f"{i}:{type(layer).__name__}", const * (1 + EXACT_SLACK)))
    return result


def _layers_with_inputs(
    model: nn.Module, input_shape: Sequence[int]
) -> Iterable[tuple[nn.Module, Tensor]]:
    """Each layer with the (zero) input it receives, in eval mode."""
    layers = list(model) if isinstance(model, nn.Sequential) else [model]
    x = torch.zeros(1, *(int(v) for v in input_shape))
    p = next(model.parameters(), None)
    if p is not None:
        x = x.to(p.device, p.dtype)
    with eval_mode(model):
        for layer in layers:
            yield layer, x
            with torch.no_grad():
                x = layer(x)


def _effective_weight(layer: nn.Module) -> Tensor:
    """The weight a layer really multiplies by (constrained and times k), in float64."""
    if isinstance(layer, LipschitzLayer) and hasattr(layer, "parametrizations"):
        w = layer.scaled_weight()
    else:
        w = layer.weight * getattr(layer, "k", 1.0)
    return w.detach().double().cpu()


def _exact_norm(layer: nn.Module, size: tuple[int, ...], per_neuron: bool) -> float:
    """A rigorous upper bound of one layer's L2 operator norm at input size `size`."""
    if isinstance(layer, nn.Linear):
        w = _effective_weight(layer)
        if per_neuron:
            return float(w.norm(dim=1).max())
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        return float(torch.linalg.eigvalsh(gram)[-1].clamp_min(0).sqrt())
    if isinstance(layer, OrthogonalConv2d):
        with torch.no_grad(), eval_mode(layer):
            q = layer.frequency_matrices().to(torch.complex128).cpu()
        gram = q @ q.mH if q.shape[-2] <= q.shape[-1] else q.mH @ q
        top = torch.linalg.eigvalsh(gram)[:, -1].max().clamp_min(0).sqrt()
        return float(top) * layer.k
    if isinstance(layer, BlockOrthogonalConv2d):
        with torch.no_grad(), eval_mode(layer):
            kernel = layer.kernel().detach().double().cpu()
        pad = (layer.kernel_size[0] // 2, layer.kernel_size[1] // 2)
        return float(conv_operator_norm(kernel, size, 1, pad, "circular"))
    if isinstance(layer, nn.Conv2d):
        if layer.groups != 1 or layer.dilation != (1, 1):
            raise TypeError("no exact norm for grouped or dilated convolutions")
        return float(
            conv_operator_norm(
                _effective_weight(layer),
                size,
                layer.stride[0],
                layer.padding,
                layer.padding_mode,
            )
        )
    if isinstance(layer, nn.AvgPool2d | ScaledAvgPool2d):
        # Each input value is in at most `overlap` windows, each averaged over
        # `area` values: ‖y‖² ≤ overlap/area · ‖x‖² (times area when scaled).
        k = _pair(layer.kernel_size)
        s = _pair(getattr(layer, "stride", None) or k)
        overlap = math.ceil(k[0] / s[0]) * math.ceil(k[1] / s[1])
        area = k[0] * k[1]
        scale = area if isinstance(layer, ScaledAvgPool2d) else 1
        return math.sqrt(overlap * scale / area)
    const = _constant_of(layer)
    if const is None:
        raise TypeError(f"no exact norm known for layer {type(layer).__name__}")
    return const


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _constant_of(layer: nn.Module) -> float | None:
    """Exact constant of a parameter-free layer, None for an affine one to measure."""
    for cls, const in _CONSTANT_LAYERS.items():
        if type(layer) is cls:
            return const
    if isinstance(layer, nn.Linear | nn.Conv2d | nn.AvgPool2d) or (
        isinstance(layer, LipschitzLayer) and hasattr(layer, "weight")
    ):
        return None
    if isinstance(layer, nn.MaxPool2d | nn.LPPool2d):
        k = layer.kernel_size
        s = layer.stride or k
        k, s = (k, k) if isinstance(k, int) else k, (s, s) if isinstance(s, int) else s
        overlap = math.ceil(k[0] / s[0]) * math.ceil(k[1] / s[1])
        return math.sqrt(overlap)
    if isinstance(layer, LipschitzLayer):
        return float(layer.lipschitz)
    raise TypeError(f"no Lipschitz bound known for layer {type(layer).__name__}")


def lipschitz_upper_bound(model: nn.Module, input_shape: Sequence[int]) -> float:
    """A rigorous upper bound of the model's L2 Lipschitz constant at `input_shape`.

    The product of the per-layer bounds of `layer_norms` (exact SVD and FFT
    norms): the constant the certificate uses can be no larger. Works for
    unconstrained models too, where it shows how large the constant can be.
    """
    return math.prod(norm for _, norm in layer_norms(model, input_shape))


def lipschitz_estimate(model: nn.Module, input_shape: Sequence[int]) -> float:
    """The product of the power-iteration estimates (`layer_norm_estimates`).

    Close to the upper bound and converging to the true per-layer norms from
    below; for a quick look, never for a soundness verdict.
    """
    return math.prod(norm for _, norm in layer_norm_estimates(model, input_shape))


def lipschitz_lower_bound(model: nn.Module, data: Tensor, steps: int = 20) -> float:
    """Largest local Lipschitz constant found around `data` (N, ...): a lower bound.

    Measures the gradient norm of the certificate's quantity (binary: f;
    multiclass: (f_i − f_j)/√2 over class pairs for a whole-network head,
    f_i for disjoint neurons) at the data, then climbs it by gradient ascent
    on the input for `steps` steps. Any value found is attained, so the true
    constant is at least this. (For piecewise-linear networks the gradient is
    locally constant, so the search moves by small random steps instead.)
    """
    head = getattr(model, "head", "lipschitz")
    x = data.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.01)
    gen = torch.Generator().manual_seed(0)
    best = 0.0
    with eval_mode(model):
        for _ in range(max(steps, 1)):
            norms = _local_constants(model, x, head)
            best = max(best, float(norms.detach().max()))
            grad = None
            if norms.requires_grad:  # gradient for x only: the model is untouched
                (grad,) = torch.autograd.grad(-norms.sum(), x, allow_unused=True)
            if grad is not None:
                x.grad = grad
                opt.step()
            else:  # piecewise-linear or affine: the gradient is locally constant
                with torch.no_grad():
                    x.add_(0.05 * torch.randn(x.shape, generator=gen).to(x))
    return best


def median_gradient_norm(model: nn.Module, data: Tensor) -> float:
    """Median over `data` of the gradient norm of the certified quantity.

    1.0 for a gradient-norm-preserving network (what the hKR transport step
    x − f(x)·∇f(x) needs to land on the boundary); well below 1 means the
    certificate |f|/L is loose by about that factor.
    """
    x = data.detach().clone().requires_grad_(True)
    with eval_mode(model):
        norms = _local_constants(model, x, getattr(model, "head", "lipschitz"))
    return float(norms.detach().median())


def _local_constants(model: nn.Module, x: Tensor, head: str) -> Tensor:
    """Per-sample gradient norm of the quantity the head certifies (differentiable)."""
    out = model(x)
    out = out.reshape(out.shape[0], -1)
    if out.shape[1] == 1:
        scalars = [out[:, 0]]
    elif head == "disjoint" or head == "none":
        scalars = [out[:, i] for i in range(out.shape[1])]
    else:
        top2 = out.topk(2, dim=1).indices
        pick = out.gather(1, top2)
        scalars = [(pick[:, 0] - pick[:, 1]) / math.sqrt(2.0)]
    norms = []
    for s in scalars:
        (g,) = torch.autograd.grad(s.sum(), x, create_graph=True)
        norms.append(g.flatten(1).norm(dim=1))
    return torch.stack(norms).max(dim=0).values


def check_measured(model: nn.Module, tolerance: float = UNSOUND_TOLERANCE) -> float:
    """Measure a plain model's rigorous bound and certify it if within its declared
    `measured_lipschitz` (`LipSequential.accept_measured`); returns the bound.

    Raises ValueError when the bound is over the declared constant by more
    than `tolerance` (relative), or the model declares none.
    """
    if getattr(model, "measured_lipschitz", None) is None or not model.input_shape:
        raise ValueError("check_measured needs a measured_lipschitz and input_shape")
    upper = lipschitz_upper_bound(model, model.input_shape)
    model.accept_measured(upper, tolerance)
    return upper


def within_bound(upper: float, declared: float | None) -> bool:
    """The soundness rule: a measured bound at most 1e-3 relative above the declared."""
    return declared is not None and upper <= declared * (1 + UNSOUND_TOLERANCE)


def check_lipschitz(
    model: nn.Module, input_shape: Sequence[int], data: Tensor | None = None
) -> dict[str, Any]:
    """Measured bounds beside the declared constant, and whether the model is sound.

    A model whose measured upper bound exceeds its declared constant by more
    than 1e-3 is reported unsound: its certificates cannot be trusted.
    """
    declared = getattr(model, "lipschitz_constant", None)
    upper = lipschitz_upper_bound(model, input_shape)
    report: dict[str, Any] = {
        "declared": declared,
        "upper_bound": upper,
        "sound": within_bound(upper, declared),
    }
    if data is not None:
        report["lower_bound"] = lipschitz_lower_bound(model, data)
    return report
