"""Dense layers with a provable Lipschitz bound."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..constraints import AOLRescale, FrobeniusNormalize, SpectralBjorck
from .base import LipschitzLayer


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


class AOLLinear(_ConstrainedLinear):
    """Dense layer with AOL rescaling (arXiv 2208.03160): strict, no iterations."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, k: float = 1.0
    ) -> None:
        super().__init__(in_features, out_features, bias, k)
        parametrize.register_parametrization(self, "weight", AOLRescale())


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
