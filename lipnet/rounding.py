"""How far a forward pass in floating point can stray from exact arithmetic.

A certificate |f(x)|/L is proved for the exact function f; the machine
computes a rounded f̂. This module bounds ‖f̂(x') − f(x')‖ for every x' in an
L2 ball around x, from one forward pass at x, so `lipnet.certify` can take
the bound off the margin before dividing by L.

The model of rounding is the standard one (Higham, *Accuracy and Stability
of Numerical Algorithms*, §3): an affine layer y = A·h + b whose outputs sum
n terms is computed with an error of at most γₙ(|A|·|h| + |b|) per output in
any summation order, γₙ = n·u/(1 − n·u) with u the unit roundoff, hence
‖error‖₂ ≤ γₙ(‖|A|‖₂·‖h‖₂ + ‖b‖₂). We take n as the layer's whole fan-in
plus the FFT's stages and multiply by SAFETY = 4 so that blocked, FMA and FFT
evaluation orders are covered too; sorting, max, ReLU, flattening and
space-to-depth round nothing. Errors then travel through the following layers
at most multiplied by their Lipschitz constants. Inside the ball every hidden
vector is at most its value at x plus (prefix Lipschitz constant)·radius, so
the bound at x extends to the whole ball. In float64 the bound is ~1e-13 of
a score for the shipped models; in float32 it is ~1e-3, which is why loaded
models compute in float64 (`lipnet.precision`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .layers import eval_mode
from .layers import protocol as P
from .layers.base import LayerRounding

SAFETY = 4.0
OVERFLOW_MARGIN = 1e-6
"""A bound within this fraction of the largest float counts as an overflow."""


@dataclass(frozen=True)
class RoundingProfile:
    """Per-layer rounding data of a model, for inputs of one shape and dtype."""

    layers: tuple[LayerRounding, ...]
    unit: float
    largest: float

    def local_error(self, k: int, hidden: Tensor) -> Tensor:
        """The most layer k can round on an input of norm `hidden` (per sample)."""
        layer = self.layers[k]
        if layer.terms == 0:
            return torch.zeros_like(hidden)
        gamma = layer.terms * self.unit / (1 - layer.terms * self.unit)
        size = layer.gain * hidden + layer.offset
        error = SAFETY * gamma * size
        # A partial sum may overflow where the exact result does not.
        overflow = (
            size * layer.terms >= self.largest * OVERFLOW_MARGIN
        ) | ~torch.isfinite(size)
        return torch.where(overflow, torch.full_like(error, math.inf), error)

    def propagate(
        self, hidden: Sequence[Tensor], growth: Sequence[Tensor]
    ) -> list[Tensor]:
        """Error bounds after every layer, given bounds on each layer's input norm.

        `hidden[k]` is the computed input norm of layer k; `growth[k]` is
        added to it (how far the exact input may be from the computed one, or
        move within a ball). The last entry bounds the outputs' error.
        """
        error = torch.zeros_like(hidden[0])
        errors = []
        for k, layer in enumerate(self.layers):
            h = hidden[k] + growth[k] + error
            error = layer.lipschitz * error + self.local_error(k, h)
            errors.append(error)
        return errors


def unit_roundoff(dtype: torch.dtype) -> float:
    """u = 2⁻ᵖ for a floating type with p bits of precision (eps / 2)."""
    return torch.finfo(dtype).eps / 2


def layer_rounding(
    layer: nn.Module, x: Tensor, lipschitz: float, last_per_neuron: bool = False
) -> LayerRounding:
    """The rounding data of one layer for its input `x` (a zero batch of one).

    Args:
        layer: a lipnet layer (its `LipschitzLayer.rounding`) or a plain
            torch layer (`lipnet.layers.torch_layers.rounding`).
        x: the zero input it receives, in the model's type.
        lipschitz: its rigorous constant, how it carries incoming error.
        last_per_neuron: unused (kept for callers).

    Returns:
        The layer's LayerRounding. Raises TypeError for a layer whose
        rounding is not modelled.
    """
    return P.rounding(layer, x, lipschitz)


def rounding_profile(
    model: nn.Module, input_shape: Sequence[int], norms: Sequence[float]
) -> RoundingProfile:
    """The rounding data of every layer of a sequential model at `input_shape`.

    `norms` are the layers' rigorous Lipschitz constants (`certify.layer_norms`).
    """
    layers = list(model) if isinstance(model, nn.Sequential) else [model]
    p = next(model.parameters(), None)
    dtype = p.dtype if p is not None else torch.get_default_dtype()
    x = torch.zeros(1, *(int(v) for v in input_shape), dtype=dtype)
    if p is not None:
        x = x.to(p.device)
    result = []
    with eval_mode(model):
        for layer, lip in zip(layers, norms, strict=True):
            result.append(layer_rounding(layer, x, lip))
            with torch.no_grad():
                x = layer(x)
    return RoundingProfile(tuple(result), unit_roundoff(dtype), torch.finfo(dtype).max)


def forward_with_norms(model: nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """The model's outputs on `x` and the norm of every layer's input, per sample.

    Runs the layers one by one: the same operations as `model(x)`.
    """
    layers = list(model) if isinstance(model, nn.Sequential) else [model]
    p = next(model.parameters(), None)
    if p is not None and x.is_floating_point():
        x = x.to(p.device, p.dtype)
    hidden = []
    with torch.no_grad():
        for layer in layers:
            hidden.append(_norms(x))
            x = layer(x)
    return x, hidden


def ball_error(
    profile: RoundingProfile,
    hidden: Sequence[Tensor],
    prefix: Sequence[float],
    radius: Tensor,
) -> Tensor:
    """A bound of ‖f̂(x') − f(x')‖ over every x' within `radius` of x (per sample).

    With eₖ(x) the error of layer k's input at x, the exact input of layer k
    at x' has norm at most ‖ĥₖ(x)‖ + eₖ(x) + Pₖ·radius, Pₖ the product of
    the constants of the layers before k (`prefix`). Covers x itself too.
    """
    zero = torch.zeros_like(hidden[0])
    at_x = profile.propagate(hidden, [zero] * len(hidden))
    incoming = [zero, *at_x[:-1]]
    growth = [e + pk * radius for e, pk in zip(incoming, prefix, strict=True)]
    return profile.propagate(hidden, growth)[-1]


def _norms(x: Tensor) -> Tensor:
    """Per-sample L2 norm, in float64, raised a hair for its own rounding."""
    return x.detach().double().flatten(1).norm(dim=1) * (1 + 1e-9)
