"""What building a layer costs, tallied before anything is allocated.

Each layer's `build_cost` follows its input on torch's meta device (shapes
only, no memory) and adds its parameters, multiply-adds, build work and
largest temporary to a `Budget`; `lipnet.budget.check_budget` holds the
limits. The helpers here are the rules several layers share: the FFT norm
every convolution is measured with, Björck's iterations, dense and pooling
layers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

BJORCK_STEPS = 15


def pair(v: int | Sequence[int]) -> tuple[int, int]:
    """(v, v) for an int, the first two values of a sequence."""
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


@dataclass
class Budget:
    """What a spec costs: the totals checked against the limits, and the shapes."""

    shapes: list[tuple[int, ...]]
    parameters: int = 0
    forward_macs: int = 0
    build_flops: int = 0
    largest_fft: int = 0
    build_bytes: int = 0

    def temporary(self, nbytes: int) -> None:
        """Record a temporary buffer of `nbytes` that building a layer needs."""
        self.build_bytes = max(self.build_bytes, int(nbytes))

    def spectrum(self, entries: int) -> None:
        """Record a kernel spectrum of `entries` complex values."""
        self.largest_fft = max(self.largest_fft, entries)

    @property
    def outputs(self) -> int:
        """Values the last layer outputs per input."""
        return math.prod(self.shapes[-1])


def fft_entries(a: Mapping[str, Any], size: Sequence[int]) -> int:
    """Complex entries of the kernel spectrum `conv_operator_norm` computes."""
    kh, kw = pair(a["kernel_size"])
    ph, pw = pair(a.get("padding", (kh // 2, kw // 2)))
    s = a.get("stride", 1)
    gh = math.ceil(max(size[0] + ph, kh) / s)
    gw = math.ceil(max(size[1] + pw, kw) / s)
    return a["out_channels"] * a["in_channels"] * s * s * gh * (gw // 2 + 1)


def fft_flops(a: Mapping[str, Any], size: Sequence[int]) -> int:
    """The spectrum plus one small eigenproblem per frequency."""
    entries = fft_entries(a, size)
    small = min(a["out_channels"], a["in_channels"] * a.get("stride", 1) ** 2)
    return 10 * entries * max(small, 1)


def measure_conv(budget: Budget, a: Mapping[str, Any], size: Sequence[int]) -> None:
    """Add the FFT norm of the convolution `a` at input `size` to `budget`."""
    budget.spectrum(fft_entries(a, size))
    budget.build_flops += fft_flops(a, size)


def bjorck_flops(rows: int, cols: int) -> int:
    """Björck orthonormalization: a few Gram products per step, at most 15 steps."""
    return 4 * BJORCK_STEPS * rows * cols * min(rows, cols)


def need_image(x: torch.Tensor) -> None:
    """Raise ValueError unless `x` is a batch of images (N, C, H, W)."""
    if x.dim() != 4:
        raise ValueError(f"needs an image (C, H, W), got shape {list(x.shape[1:])}")


def dense_cost(
    a: Mapping[str, Any], x: torch.Tensor, budget: Budget, extra_parameters: int = 0
) -> torch.Tensor:
    """A dense layer's output, its weight, bias and rigorous bound added to `budget`.

    Args:
        a: its arguments (`in_features`, `out_features`).
        x: the flat meta input.
        budget: the running totals.
        extra_parameters: buffers beyond the weight and bias (a power
            iteration's vector).

    Returns:
        The meta output (1, out_features).
    """
    n_in, n_out = a["in_features"], a["out_features"]
    if x.dim() != 2 or x.shape[1] != n_in:
        raise ValueError(
            f"in_features is {n_in}, the input has shape {list(x.shape[1:])}"
        )
    budget.parameters += n_in * n_out + n_out + extra_parameters
    budget.forward_macs += n_in * n_out
    small = min(n_in, n_out)
    # The rigorous bound: the smaller Gram matrix and its eigenvalues, in float64.
    budget.build_flops += 2 * n_in * n_out * small + 10 * small**3
    budget.temporary(3 * 8 * small * small)
    return torch.empty(1, n_out, device="meta")


def pool_cost(a: Mapping[str, Any], x: torch.Tensor, budget: Budget) -> torch.Tensor:
    """A pooling layer over non-overlapping `kernel_size` windows: free."""
    need_image(x)
    return F.avg_pool2d(x, pair(a["kernel_size"]))


def unshuffle_cost(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Space-to-depth by `factor`: a permutation, free."""
    need_image(x)
    return F.pixel_unshuffle(x, factor)


def same_shape(a: Mapping[str, Any], x: torch.Tensor, budget: Budget) -> torch.Tensor:
    """A layer that keeps its input's shape at no cost (an activation)."""
    return x


def flatten_cost(a: Mapping[str, Any], x: torch.Tensor, budget: Budget) -> torch.Tensor:
    """Flattening: free."""
    return x.flatten(1)


def grid_conv(
    a: Mapping[str, Any], x: torch.Tensor
) -> tuple[int, int, tuple[int, int], tuple[int, int]]:
    """(cin, cout, kernel, input_size) of a layer that runs on exactly its
    `input_size`, checked against the input it receives."""
    need_image(x)
    cin, cout = a["in_channels"], a["out_channels"]
    kh, kw = pair(a["kernel_size"])
    ih, iw = pair(a["input_size"])
    if tuple(x.shape[1:]) != (cin, ih, iw):
        raise ValueError(
            f"expects inputs of {[cin, ih, iw]}, the input has {list(x.shape[1:])}"
        )
    if kh > ih or kw > iw:
        raise ValueError(f"kernel {[kh, kw]} is larger than the input {[ih, iw]}")
    return cin, cout, (kh, kw), (ih, iw)
