"""How large a model's Lipschitz constant really is: bounds from above and below.

`lipschitz_upper_bound` multiplies each layer's rigorous operator norm (the
layer's own `operator_norm`, `lipnet.layers.protocol`); `lipschitz_lower_bound`
finds a constant the model attains; `check_lipschitz` compares both with the
declared constant, so a model that declares more robustness than it has is
caught. `lipnet.certify` re-exports every name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .constraints import power_iteration
from .layers import eval_mode
from .layers import protocol as P

UNSOUND_TOLERANCE = 1e-3
POWER_ITER_TOL = 1e-7
POWER_ITER_MAX = 2000
EXACT_SLACK = 1e-9


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
        const = P.exact_constant(layer)
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
        const = P.operator_norm(layer, tuple(x.shape[2:]), per_neuron)
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
    below; for a quick look, never for a soundness verdict. Under a
    "disjoint" head each output neuron is its own classifier, so the last
    layer counts by its largest row (`_largest_row_norm`), as the bound does.
    """
    norms = [norm for _, norm in layer_norm_estimates(model, input_shape)]
    if getattr(model, "head", None) == "disjoint":
        norms[-1] = _largest_row_norm(model, input_shape)
    return math.prod(norms)


def _largest_row_norm(model: nn.Module, input_shape: Sequence[int]) -> float:
    """The largest norm of one output neuron of the model's last (affine)
    layer: the gradient of each of its outputs, taken at zero."""
    layer, x = list(_layers_with_inputs(model, input_shape))[-1]
    u = torch.zeros_like(x).requires_grad_(True)
    out = layer(u).flatten(1)
    rows = [
        torch.autograd.grad(out[:, j].sum(), u, retain_graph=True)[0]
        for j in range(out.shape[1])
    ]
    return float(max(r.norm() for r in rows))


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
