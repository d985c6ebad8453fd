"""What a spec would cost, worked out before anything is allocated.

A model file is a few hundred bytes of JSON that can ask for gigabytes: a
padding of 8,000, an `input_size` of 8,192, a 3,000 × 3,000 Björck layer, ten
thousand outputs. `check_budget` follows the input through every layer on
torch's meta device (shapes only, no memory), checks that each layer fits
the shape it receives, and refuses a spec over any of the documented limits
below with a ModelFileError naming the limit. Only then is the model built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .errors import ModelFileError

MAX_PARAMETERS = 25_000_000
"""Every tensor a model holds: weights, biases and constraint buffers."""
MAX_ACTIVATIONS = 2_000_000
"""Values one layer outputs for one input (8 MB in float32)."""
MAX_OUTPUTS = 1_000
"""Class scores of the last layer (one per class, or one for a binary model)."""
MAX_FFT_ENTRIES = 8_000_000
"""Complex entries of one convolution's kernel spectrum (its norm is an FFT)."""
MAX_FORWARD_MACS = 1_000_000_000
"""Multiply-adds of one forward pass for one input."""
MAX_BUILD_FLOPS = 30_000_000_000
"""Floating-point work to build and measure the weights (Björck, AOL Gram
matrices, FFT norms, eigenvalues, the rounding profile): a few CPU seconds."""
MAX_BUILD_BYTES = 256_000_000
"""The largest temporary one layer needs while it is built or measured (an
AOL Gram matrix, a convolution's unfolded kernel, a spectrum)."""
LAYER_OVERHEAD_FLOPS = 50_000_000
"""Each layer's fixed cost to build, fill, measure and probe (~20 ms), as work."""
BJORCK_STEPS = 15

_LINEAR = {
    "SpectralLinear",
    "AOLLinear",
    "OrthogonalLinear",
    "FrobeniusLinear",
    "Linear",
}
_CONV = {"SpectralConv2d", "AOLConv2d", "Conv2d"}
_POOL = {"ScaledL2NormPool2d", "ScaledAvgPool2d", "MaxPool2d", "AvgPool2d"}
_UNSHUFFLE = {
    "InvertibleDownSampling": "kernel_size",
    "PixelUnshuffle": "downscale_factor",
}
_SAME_SHAPE = {"ReLU", "Dropout", "FullSort"}
_GROUPED = {"GroupSort": None, "GroupSort2": 2}


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

    @property
    def outputs(self) -> int:
        return math.prod(self.shapes[-1])


def check_budget(spec: Mapping[str, Any]) -> Budget:
    """The shape after every layer and the costs of a validated spec, within limits.

    Raises ModelFileError when a layer does not fit the shape it receives
    (wrong features or channels, a kernel larger than its input, a padding
    larger than kernel − 1, an `input_size` smaller than the real input, a
    group size that does not divide the channels) or when any limit is
    exceeded.
    """
    x = torch.empty(1, *spec["input_shape"], device="meta")
    budget = Budget(shapes=[])
    for i, entry in enumerate(spec["layers"]):
        kind, args = entry["type"], entry.get("args", {})
        budget.build_flops += LAYER_OVERHEAD_FLOPS
        try:
            x = _step(kind, args, x, budget)
        except (RuntimeError, ValueError, IndexError) as e:
            raise ModelFileError(
                f"layer {i} ({kind}) does not fit its input of shape "
                f"{list(x.shape[1:])}: {e}"
            ) from None
        size = math.prod(x.shape[1:])
        if size > MAX_ACTIVATIONS:
            raise ModelFileError(
                f"layer {i} ({kind}) outputs {size:,} values per input, over the "
                f"MAX_ACTIVATIONS limit of {MAX_ACTIVATIONS:,}"
            )
        budget.shapes.append(tuple(x.shape[1:]))
    if x.dim() != 2:
        raise ModelFileError(
            f"the last layer outputs shape {list(x.shape[1:])}: a model must end in "
            "a flat vector of class scores (add a Flatten and a dense layer)"
        )
    for name, value, limit in (
        ("MAX_OUTPUTS", budget.outputs, MAX_OUTPUTS),
        ("MAX_PARAMETERS", budget.parameters, MAX_PARAMETERS),
        ("MAX_FORWARD_MACS", budget.forward_macs, MAX_FORWARD_MACS),
        ("MAX_BUILD_FLOPS", budget.build_flops, MAX_BUILD_FLOPS),
        ("MAX_FFT_ENTRIES", budget.largest_fft, MAX_FFT_ENTRIES),
        ("MAX_BUILD_BYTES", budget.build_bytes, MAX_BUILD_BYTES),
    ):
        if value > limit:
            raise ModelFileError(
                f"the spec needs {value:,} for {name}, over its limit of {limit:,}"
            )
    return budget


def _step(
    kind: str, a: Mapping[str, Any], x: torch.Tensor, budget: Budget
) -> torch.Tensor:
    """One layer on the meta device: its output, with its costs added to `budget`."""
    if kind in _LINEAR:
        return _linear(kind, a, x, budget)
    if kind in _CONV:
        return _conv(kind, a, x, budget)
    if kind == "OrthogonalConv2d":
        return _orthogonal(a, x, budget)
    if kind == "BlockOrthogonalConv2d":
        return _block_orthogonal(a, x, budget)
    if kind in _POOL:
        _need_image(x)
        return F.avg_pool2d(x, _pair(a["kernel_size"]))
    if kind in _UNSHUFFLE:
        _need_image(x)
        return F.pixel_unshuffle(x, a[_UNSHUFFLE[kind]])
    if kind in ("LipFlatten", "Flatten"):
        return x.flatten(1)
    if kind in _GROUPED:
        group = _GROUPED[kind] or a.get("group_size", 2)
        if x.shape[1] % group:
            raise ValueError(
                f"{x.shape[1]} channels are not a multiple of the group size {group}"
            )
        return x
    if kind == "MaxMin":
        return torch.cat([x, x], dim=1)
    if kind in _SAME_SHAPE:
        return x
    raise ValueError(f"no shape rule for {kind}")


def _linear(
    kind: str, a: Mapping[str, Any], x: torch.Tensor, budget: Budget
) -> torch.Tensor:
    n_in, n_out = a["in_features"], a["out_features"]
    if x.dim() != 2 or x.shape[1] != n_in:
        raise ValueError(
            f"in_features is {n_in}, the input has shape {list(x.shape[1:])}"
        )
    budget.parameters += (
        n_in * n_out + n_out + (n_in if kind == "SpectralLinear" else 0)
    )
    budget.forward_macs += n_in * n_out
    small = min(n_in, n_out)
    # The rigorous bound: the smaller Gram matrix and its eigenvalues, in float64.
    budget.build_flops += 2 * n_in * n_out * small + 10 * small**3
    budget.temporary(3 * 8 * small * small)
    if kind == "SpectralLinear":
        budget.build_flops += _bjorck_flops(n_out, n_in)
    if kind == "OrthogonalLinear":  # a Gram matrix, its Cholesky, a solve
        budget.build_flops += 4 * n_in * n_out * small + small**3
    if kind == "AOLLinear":  # WᵀW: an in × in Gram matrix, and its |·| row sums
        budget.build_flops += 2 * n_in * n_in * n_out
        budget.temporary(3 * 4 * n_in * n_in)
    return torch.empty(1, n_out, device="meta")


def _conv(
    kind: str, a: Mapping[str, Any], x: torch.Tensor, budget: Budget
) -> torch.Tensor:
    _need_image(x)
    cin, cout = a["in_channels"], a["out_channels"]
    kh, kw = _pair(a["kernel_size"])
    default = (0, 0) if kind == "Conv2d" else (kh // 2, kw // 2)
    ph, pw = _pair(a.get("padding", default))
    stride = a.get("stride", 1)
    mode = a.get("padding_mode", "zeros")
    if ph > kh - 1 or pw > kw - 1:
        raise ValueError(f"padding ({ph}, {pw}) is larger than kernel_size − 1")
    h, w = x.shape[2:]
    if kind == "SpectralConv2d":
        ih, iw = _pair(a["input_size"])
        if mode == "circular" and (h, w) != (ih, iw):
            raise ValueError(
                f"circular padding needs input_size {[h, w]}, not {[ih, iw]}"
            )
        if h > ih or w > iw:
            raise ValueError(
                f"input_size {[ih, iw]} is smaller than the input {[h, w]}"
            )
        budget.largest_fft = max(budget.largest_fft, _fft_entries(a, (ih, iw)))
        budget.build_flops += _bjorck_flops(cout, cin * kh * kw) + _fft_flops(
            a, (ih, iw)
        )
    # The rigorous upper bound at load measures every convolution at its real size.
    budget.largest_fft = max(budget.largest_fft, _fft_entries(a, (h, w)))
    budget.build_flops += _fft_flops(a, (h, w))
    if kind == "AOLConv2d":
        # Σ|KᵀK| over offsets: the kernel convolved with itself, unfolded.
        offsets = (2 * kh - 1) * (2 * kw - 1)
        budget.build_flops += 2 * cin * cin * cout * kh * kw * offsets
        budget.temporary(4 * cin * cout * kh * kw * offsets)
    weight = torch.empty(cout, cin, kh, kw, device="meta")
    y = F.conv2d(x, weight, stride=stride, padding=(ph, pw))
    spectral = cin * kh * kw if kind == "SpectralConv2d" else 0
    budget.parameters += weight.numel() + cout + spectral
    budget.forward_macs += weight.numel() * y.shape[2] * y.shape[3]
    return y


def _grid_conv(
    a: Mapping[str, Any], x: torch.Tensor
) -> tuple[int, int, tuple[int, int], tuple[int, int]]:
    """(cin, cout, kernel, input_size) of a layer that runs on exactly its
    `input_size`, checked against the input it receives."""
    _need_image(x)
    cin, cout = a["in_channels"], a["out_channels"]
    kh, kw = _pair(a["kernel_size"])
    ih, iw = _pair(a["input_size"])
    if tuple(x.shape[1:]) != (cin, ih, iw):
        raise ValueError(
            f"expects inputs of {[cin, ih, iw]}, the input has {list(x.shape[1:])}"
        )
    if kh > ih or kw > iw:
        raise ValueError(f"kernel {[kh, kw]} is larger than the input {[ih, iw]}")
    return cin, cout, (kh, kw), (ih, iw)


def _orthogonal(a: Mapping[str, Any], x: torch.Tensor, budget: Budget) -> torch.Tensor:
    """An FFT-domain orthogonal convolution: exactly `input_size`, one matrix per
    frequency, each through a Cayley transform (an inverse of the smaller side)."""
    cin, cout, (kh, kw), (ih, iw) = _grid_conv(a, x)
    freqs = ih * (iw // 2 + 1)
    small, large = min(cin, cout), max(cin, cout)
    budget.largest_fft = max(budget.largest_fft, cout * cin * freqs)
    budget.build_flops += 8 * freqs * (small**3 + 2 * large * small**2)
    # The rounding profile's impulse response: the layer applied to cin impulses.
    budget.build_flops += cin * (8 * freqs * cin * cout + 20 * (cin + cout) * ih * iw)
    budget.temporary(16 * cout * cin * ih * iw)
    budget.parameters += cout * cin * kh * kw + 1 + cout
    budget.forward_macs += 4 * freqs * cin * cout + 10 * (cin + cout) * ih * iw
    return torch.empty(1, cout, ih, iw, device="meta")


def _block_orthogonal(
    a: Mapping[str, Any], x: torch.Tensor, budget: Budget
) -> torch.Tensor:
    """A kernel-space orthogonal convolution: exactly `input_size`, odd k×k
    kernel built from QR-orthonormalized projectors on min(cin, cout) channels,
    measured like a circular conv."""
    cin, cout, (kh, kw), (ih, iw) = _grid_conv(a, x)
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {[kh, kw]}")
    small, large = min(cin, cout), max(cin, cout)
    blocks, rank = kh + kw - 2, max(1, small // 2)
    # QR of each projector and of the 1×1 map, the block chain, the composition.
    budget.build_flops += 4 * blocks * small * rank**2 + 4 * large * small**2
    budget.build_flops += 4 * blocks * small**2 * rank * kh * kw
    budget.build_flops += 2 * large * small**2 * kh * kw
    budget.temporary(8 * large * small * kh * kw)
    conv = {**a, "padding": (kh // 2, kw // 2)}
    budget.largest_fft = max(budget.largest_fft, _fft_entries(conv, (ih, iw)))
    budget.build_flops += _fft_flops(conv, (ih, iw))
    budget.parameters += blocks * small * rank + large * small + cout
    budget.forward_macs += cout * cin * kh * kw * ih * iw
    return torch.empty(1, cout, ih, iw, device="meta")


def _fft_entries(a: Mapping[str, Any], size: Sequence[int]) -> int:
    """Complex entries of the kernel spectrum `conv_operator_norm` computes."""
    kh, kw = _pair(a["kernel_size"])
    ph, pw = _pair(a.get("padding", (kh // 2, kw // 2)))
    s = a.get("stride", 1)
    gh = math.ceil(max(size[0] + ph, kh) / s)
    gw = math.ceil(max(size[1] + pw, kw) / s)
    return a["out_channels"] * a["in_channels"] * s * s * gh * (gw // 2 + 1)


def _fft_flops(a: Mapping[str, Any], size: Sequence[int]) -> int:
    """The spectrum plus one small eigenproblem per frequency."""
    entries = _fft_entries(a, size)
    small = min(a["out_channels"], a["in_channels"] * a.get("stride", 1) ** 2)
    return 10 * entries * max(small, 1)


def _bjorck_flops(rows: int, cols: int) -> int:
    """Björck orthonormalization: a few Gram products per step, at most 15 steps."""
    return 4 * BJORCK_STEPS * rows * cols * min(rows, cols)


def _need_image(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"needs an image (C, H, W), got shape {list(x.shape[1:])}")


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))
