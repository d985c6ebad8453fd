"""1-Lipschitz pooling and downsampling for convolutional networks."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from .base import LayerRounding, LipschitzLayer, SelectingLayer, zero_offset
from .cost import Budget, flatten_cost, pool_cost, unshuffle_cost
from .cost import pair as _pair


def window_overlap(kernel_size: Sequence[int], stride: Sequence[int]) -> int:
    """In how many pooling windows one input value can lie, at most."""
    return math.ceil(kernel_size[0] / stride[0]) * math.ceil(kernel_size[1] / stride[1])


def avg_pool_norm(
    kernel_size: int | Sequence[int], stride: int | Sequence[int] | None, scaled: bool
) -> float:
    """The L2 norm of average pooling (times √area when `scaled`).

    Each input value is in at most `overlap` windows, each averaged over
    `area` values: ‖y‖² ≤ overlap/area · ‖x‖² (times area when scaled).
    """
    k = _pair(kernel_size)
    s = _pair(stride or k)
    overlap = window_overlap(k, s)
    area = k[0] * k[1]
    scale = area if scaled else 1
    return math.sqrt(overlap * scale / area)


def avg_pool_rounding(
    kernel_size: int | Sequence[int], lipschitz: float
) -> LayerRounding:
    """Average pooling rounds a sum of `area` values and a product or two."""
    k = kernel_size
    area = k * k if isinstance(k, int) else k[0] * k[1]
    return LayerRounding(lipschitz, lipschitz, 0.0, area + 3)


class ScaledL2NormPool2d(nn.Module, LipschitzLayer):
    """L2-norm pooling over non-overlapping windows: out = ‖window‖₂.

    The L2 norm of a window is 1-Lipschitz and windows do not overlap, so the
    layer is 1-Lipschitz and gradient-norm preserving (unlike max pooling,
    which drops gradient). A tiny ε keeps the gradient finite at 0.
    """

    def __init__(self, kernel_size: int | Sequence[int], eps: float = 1e-12) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.eps = float(eps)

    def forward(self, x: Tensor) -> Tensor:
        area = self.kernel_size[0] * self.kernel_size[1]
        mean_sq = F.avg_pool2d(x * x, self.kernel_size)
        return (mean_sq * area + self.eps).sqrt()

    def config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size)}

    def rounding(self, x: Tensor, lipschitz: float) -> LayerRounding:
        """sqrt(area·mean(x²) + eps): squares, a sum, two products, a sum, a root."""
        area = self.kernel_size[0] * self.kernel_size[1]
        return LayerRounding(lipschitz, 1.0, zero_offset(self, x), area + 6)

    @classmethod
    def build_cost(cls, args: Mapping[str, Any], x: Tensor, budget: Budget) -> Tensor:
        """Free (`pool_cost`)."""
        return pool_cost(args, x, budget)


class ScaledAvgPool2d(nn.Module, LipschitzLayer):
    """Average pooling times √(window area) over non-overlapping windows.

    The map from a window of n values to their sum over √n has norm exactly 1.
    """

    def __init__(self, kernel_size: int | Sequence[int]) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        area = self.kernel_size[0] * self.kernel_size[1]
        return F.avg_pool2d(x, self.kernel_size) * area**0.5

    def config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size)}

    def operator_norm(self, input_size: tuple[int, ...], per_neuron: bool) -> float:
        """√(overlap · area / area) = 1 over non-overlapping windows."""
        return avg_pool_norm(self.kernel_size, None, scaled=True)

    def rounding(self, x: Tensor, lipschitz: float) -> LayerRounding:
        """As average pooling (`avg_pool_rounding`)."""
        return avg_pool_rounding(self.kernel_size, lipschitz)

    @classmethod
    def build_cost(cls, args: Mapping[str, Any], x: Tensor, budget: Budget) -> Tensor:
        """Free (`pool_cost`)."""
        return pool_cost(args, x, budget)


class InvertibleDownSampling(nn.PixelUnshuffle, SelectingLayer):
    """Space-to-depth: (C, H, W) → (C·k², H/k, W/k), a permutation (an isometry)."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__(int(kernel_size))

    def config(self) -> dict[str, Any]:
        return {"kernel_size": self.downscale_factor}

    def vanilla_export(self) -> nn.Module:
        """nn.PixelUnshuffle with the same factor."""
        return nn.PixelUnshuffle(self.downscale_factor)

    @classmethod
    def build_cost(cls, args: Mapping[str, Any], x: Tensor, budget: Budget) -> Tensor:
        """Free (`unshuffle_cost`)."""
        return unshuffle_cost(x, args["kernel_size"])


class Flatten(nn.Flatten, SelectingLayer):
    """nn.Flatten that knows it is an isometry."""

    def __init__(self) -> None:
        super().__init__()

    def config(self) -> dict[str, Any]:
        return {}

    def vanilla_export(self) -> nn.Module:
        """nn.Flatten."""
        return nn.Flatten()

    @classmethod
    def build_cost(cls, args: Mapping[str, Any], x: Tensor, budget: Budget) -> Tensor:
        """Free (`flatten_cost`)."""
        return flatten_cost(args, x, budget)
