"""1-Lipschitz pooling and downsampling for convolutional networks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from .base import LipschitzLayer


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


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


class InvertibleDownSampling(nn.PixelUnshuffle, LipschitzLayer):
    """Space-to-depth: (C, H, W) → (C·k², H/k, W/k), a permutation (an isometry)."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__(int(kernel_size))

    def config(self) -> dict[str, Any]:
        return {"kernel_size": self.downscale_factor}


class Flatten(nn.Flatten, LipschitzLayer):
    """nn.Flatten that knows it is an isometry."""

    def __init__(self) -> None:
        super().__init__()

    def config(self) -> dict[str, Any]:
        return {}
