"""Dense layers with a provable Lipschitz bound."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..constraints import AOLRescale, FrobeniusNormalize, SpectralBjorck
from .base import (
    LayerRounding,
    LipschitzLayer,
    abs_norm,
    effective_weight,
    zero_offset,
)
from .cost import Budget, bjorck_flops, dense_cost


def dense_norm(layer: nn.Linear, per_neuron: bool) -> float:
    """The exact spectral norm of a dense layer's weight (or its largest row norm).

    Args:
        layer: an nn.Linear or a lipnet dense layer (its constrained weight
            times k counts).
        per_neuron: the largest row norm (each output neuron on its own).

    Returns:
        The top eigenvalue of the smaller Gram matrix, square-rooted, in float64.
    """
    w = effective_weight(layer)
    if per_neuron:
        return float(w.norm(dim=1).max())
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    return float(torch.linalg.eigvalsh(gram)[-1].clamp_min(0).sqrt())


def dense_rounding(layer: nn.Linear, x: Tensor, lipschitz: float) -> LayerRounding:
    """A dense layer's rounding: each output sums `in_features` products and a bias."""
    gain = abs_norm(effective_weight(layer))
    return LayerRounding(lipschitz, gain, zero_offset(layer, x), layer.in_features + 1)


def dense_export(layer: nn.Linear) -> nn.Linear:
    """A plain nn.Linear with the layer's weight (times k) and bias."""
    out = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    with torch.no_grad():
        out.weight.copy_(layer.weight * getattr(layer, "k", 1.0))
        if layer.bias is not None:
            out.bias.copy_(layer.bias)
    return out


class _ConstrainedLinear(nn.Linear, LipschitzLayer):
    """nn.Linear whose weight goes through a constraint, scaled by `k`."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool, k: float
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self._init_weights(k)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.scaled_weight(), self.bias)

    def config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
            "k": self.k,
        }

    def operator_norm(self, input_size: tuple[int, ...], per_neuron: bool) -> float:
        """The exact spectral norm of the weight (`dense_norm`)."""
        return dense_norm(self, per_neuron)

    def rounding(self, x: Tensor, lipschitz: float) -> LayerRounding:
        """A matrix product and a bias (`dense_rounding`)."""
        return dense_rounding(self, x, lipschitz)

    def vanilla_export(self) -> nn.Module:
        """A plain nn.Linear with the constrained weight baked in."""
        return dense_export(self)

    @classmethod
    def build_cost(cls, args: Mapping[str, Any], x: Tensor, budget: Budget) -> Tensor:
        """A dense layer's cost (`lipnet.layers.cost.dense_cost`)."""
        return dense_cost(args, x, budget)


class SpectralLinear(_ConstrainedLinear):
    """Dense layer with spectral normalization + Björck orthonormalization.

    Strictly k-Lipschitz (the last Björck step guarantees spectral norm ≤ 1)
    and, once Björck has converged, gradient-norm preserving: all singular
    values equal 1. The constrained weight is cached in eval mode.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, k: float = 1.0
    ) -> None:
        super().__init__(in_features, out_features, bias, k)
        parametrize.register_parametrization(
            self, "weight", SpectralBjorck(self.weight.shape)
        )

    @classmethod
    def build_cost(cls, args: Mapping[str, Any], x: Tensor, budget: Budget) -> Tensor:
        """A dense layer with a power-iteration vector, orthonormalized by Björck."""
        n_in, n_out = args["in_features"], args["out_features"]
        y = dense_cost(args, x, budget, extra_parameters=n_in)
        budget.build_flops += bjorck_flops(n_out, n_in)
        return y


class AOLLinear(_ConstrainedLinear):
    """Dense layer with AOL rescaling (arXiv 2208.03160): strict, no iterations."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, k: float = 1.0
    ) -> None:
        super().__init__(in_features, out_features, bias, k)
        parametrize.register_parametrization(self, "weight", AOLRescale())

    @classmethod
    def build_cost(cls, args: Mapping[str, Any], x: Tensor, budget: Budget) -> Tensor:
        """A dense layer plus WᵀW: an in × in Gram matrix, and its |·| row sums."""
        n_in, n_out = args["in_features"], args["out_features"]
        y = dense_cost(args, x, budget)
        budget.build_flops += 2 * n_in * n_in * n_out
        budget.temporary(3 * 4 * n_in * n_in)
        return y


class FrobeniusLinear(_ConstrainedLinear):
    """Head layer normalized by the Frobenius norm.

    With one output it is exactly 1-Lipschitz and gradient-norm preserving.
    With several outputs and `disjoint_neurons=True` (the default) each output
    neuron is k-Lipschitz on its own, so a multiclass certificate divides the
    margin by 2k; with `disjoint_neurons=False` the whole map is k-Lipschitz.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        k: float = 1.0,
        disjoint_neurons: bool = True,
    ) -> None:
        super().__init__(in_features, out_features, bias, k)
        self.disjoint_neurons = bool(disjoint_neurons)
        parametrize.register_parametrization(
            self, "weight", FrobeniusNormalize(self.disjoint_neurons)
        )

    def config(self) -> dict[str, Any]:
        return {**super().config(), "disjoint_neurons": self.disjoint_neurons}
