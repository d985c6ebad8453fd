"""2-D convolutions with a strict and tight Lipschitz bound."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..constraints import AOLRescale, ConvOperatorNorm
from .base import LipschitzLayer


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class _ConstrainedConv2d(nn.Conv2d, LipschitzLayer):
    """nn.Conv2d (groups=1) whose weight goes through a constraint, scaled by `k`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int,
        padding: int | Sequence[int] | str,
        padding_mode: str,
        bias: bool,
        k: float,
    ) -> None:
        kh, kw = _pair(kernel_size)
        if padding == "same":
            if stride != 1 or kh % 2 == 0 or kw % 2 == 0:
                raise ValueError("padding='same' needs stride 1 and an odd kernel")
            padding = (kh // 2, kw // 2)
        elif padding == "valid":
            padding = (0, 0)
        if padding_mode not in ("zeros", "circular"):
            raise ValueError(
                f"padding_mode {padding_mode!r} is not supported: 'reflect' and "
                "'replicate' duplicate border pixels, which breaks a tight "
                "Lipschitz bound; use 'zeros' or 'circular'"
            )
        super().__init__(
            in_channels,
            out_channels,
            (kh, kw),
            stride=int(stride),
            padding=_pair(padding),
            padding_mode=padding_mode,
            bias=bias,
        )
        self._init_weights(k)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.scaled_weight(), self.bias)

    def config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": self.stride[0],
            "padding": list(self.padding),
            "padding_mode": self.padding_mode,
            "bias": self.bias is not None,
            "k": self.k,
        }


class SpectralConv2d(_ConstrainedConv2d):
    """Convolution normalized by its exact operator norm at the input size.

    The kernel goes through spectral normalization + Björck on its reshaped
    (cout, cin·kh·kw) matrix, then is divided by the exact L2 norm of the
    convolution operator on the padded `input_size` grid, computed from the
    kernel's FFT (`lipnet.constraints.conv_operator_norm`). The layer is
    strictly k-Lipschitz for every input of height ≤ H and width ≤ W with
    zero padding, and for inputs of exactly H×W with circular padding
    (`input_size` = (H, W)); a larger input raises an error. Unlike the
    reshaped-kernel factor of deel-torchlip, the bound is tight: the measured
    norm at the model's input size is 0.97–1.0 (5×5 kernels at 28 px are the
    loosest).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        input_size: int | Sequence[int],
        stride: int = 1,
        padding: int | Sequence[int] | str = "same",
        padding_mode: str = "zeros",
        bias: bool = True,
        k: float = 1.0,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            padding_mode,
            bias,
            k,
        )
        self.input_size = _pair(input_size)
        parametrize.register_parametrization(
            self,
            "weight",
            ConvOperatorNorm(
                self.weight.shape,
                self.input_size,
                self.stride[0],
                self.padding,
                self.padding_mode,
            ),
        )

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        ok = (
            (h, w) == self.input_size
            if self.padding_mode == "circular"
            else h <= self.input_size[0] and w <= self.input_size[1]
        )
        if not ok:
            raise ValueError(
                f"SpectralConv2d is certified for inputs up to {self.input_size}, "
                f"got {h}x{w}"
            )
        return super().forward(x)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "input_size": list(self.input_size)}


class AOLConv2d(_ConstrainedConv2d):
    """Convolution with AOL rescaling (arXiv 2208.03160): strict, no iterations.

    The per-input-channel rescaling bounds the stride-1 zero-padded
    convolution at every input size; with a stride the bound still holds
    (subsampling is 1-Lipschitz) but is looser.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int = 1,
        padding: int | Sequence[int] | str = "same",
        padding_mode: str = "zeros",
        bias: bool = True,
        k: float = 1.0,
    ) -> None:
        if padding_mode != "zeros":
            raise ValueError("AOLConv2d supports padding_mode='zeros' only")
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            padding_mode,
            bias,
            k,
        )
        parametrize.register_parametrization(self, "weight", AOLRescale())
