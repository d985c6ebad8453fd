"""An orthogonal convolution: gradient-norm preserving, exact, circular padding."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..constraints import cayley
from .base import LayerRounding, LipschitzLayer, abs_norm, eval_mode, zero_offset
from .cost import Budget, grid_conv
from .cost import pair as _pair

FLOAT_MARGIN = 1e-5


class OrthogonalConv2d(nn.Module, LipschitzLayer):
    """Circular convolution made orthogonal by the Cayley transform in the FFT domain.

    After Trockman & Kolter (ICLR 2021, arXiv 2104.07167): a circular
    convolution on an H×W grid is diagonalized by the 2-D DFT into one
    cout × cin complex matrix per frequency. The layer learns a k×k kernel,
    takes its per-frequency matrices and maps each through the Cayley
    transform, which returns an exactly orthogonal matrix (orthonormal
    columns when cout ≥ cin, orthonormal rows when cout < cin). The whole
    layer is then an orthogonal operator: every singular value is 1, so
    with cout ≤ cin it preserves the norm of the gradient that flows back
    through it, which is what lets x − f(x)·∇f(x) reach the decision
    boundary (Serrurier et al., 2021). The effective kernel covers the whole
    H×W grid (`full_kernel`), which is how the layer exports to a plain
    circular nn.Conv2d. Inputs must be exactly `input_size`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        input_size: int | Sequence[int],
        bias: bool = True,
        k: float = 1.0,
    ) -> None:
        super().__init__()
        if not k > 0:
            raise ValueError(f"k must be positive, got {k}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size)
        self.input_size = _pair(input_size)
        if any(ks > n for ks, n in zip(self.kernel_size, self.input_size, strict=True)):
            raise ValueError(
                f"kernel {self.kernel_size} larger than the input {self.input_size}"
            )
        self.k = float(k)
        self.lipschitz = self.k
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self.weight = nn.Parameter(torch.empty(shape))
        # Small kernels start near the identity (a skew part close to 0).
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(math.prod(shape[1:])))
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self._cache: tuple[tuple[int, ...], Tensor] | None = None

    def frequency_matrices(self) -> Tensor:
        """The layer's orthogonal cout × cin matrix at each rfft2 frequency.

        Shape (H·(W//2+1), cout, cin), complex. The kernel is centred on the
        origin of the torus, so the layer aligns with its input like a
        "same"-padded convolution. Cached in eval mode.
        """
        key = (self.weight._version, self.scale._version, self.weight.data_ptr())
        if not self.training and self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        h, w = self.input_size
        kh, kw = self.kernel_size
        kernel = F.pad(self.weight, (0, w - kw, 0, h - kh))
        kernel = torch.roll(kernel, shifts=(-(kh // 2), -(kw // 2)), dims=(2, 3))
        spectrum = torch.fft.rfft2(kernel)  # (cout, cin, H, W//2+1)
        mats = spectrum.permute(2, 3, 0, 1).flatten(0, 1)
        mats = self.scale * mats / mats.norm().clamp_min(1e-12)
        # Float32 rounding leaves singular values within ~1e-6 of 1: the
        # margin keeps every one of them at most 1.
        q = cayley(mats) * (1 - FLOAT_MARGIN)
        if not self.training:
            q = q.detach()
            self._cache = (key, q)
        return q

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != self.input_size or x.shape[-3] != self.in_channels:
            raise ValueError(
                f"OrthogonalConv2d expects inputs of {self.in_channels}x"
                f"{self.input_size[0]}x{self.input_size[1]}, got "
                f"{'x'.join(str(v) for v in x.shape[-3:])}"
            )
        h, w = self.input_size
        batch = x.shape[:-3]
        x = x.reshape(-1, self.in_channels, h, w)
        n = x.shape[0]
        xf = torch.fft.rfft2(x).permute(2, 3, 1, 0).reshape(-1, self.in_channels, n)
        q = self.frequency_matrices()
        if self.k != 1.0:
            q = q * self.k
        # (A + iB)(X + iY) as one real batched matmul [[A, −B], [B, A]]·[X; Y]:
        # CPU kernels for small complex batched matmuls are far slower.
        a, b = q.real, q.imag
        blocks = torch.cat((torch.cat((a, -b), -1), torch.cat((b, a), -1)), -2)
        out = blocks @ torch.cat((xf.real, xf.imag), -2)
        yf = torch.complex(out[:, : self.out_channels], out[:, self.out_channels :])
        yf = yf.reshape(h, w // 2 + 1, self.out_channels, n).permute(3, 2, 0, 1)
        y = torch.fft.irfft2(yf, s=(h, w))
        if self.bias is not None:
            y = y + self.bias[:, None, None]
        return y.reshape(*batch, self.out_channels, h, w)

    def full_kernel(self) -> Tensor:
        """The (cout, cin, H, W) impulse response: y = Σ_c x_c ⊛ K[:, c] (circular).

        Measured by applying the layer, without its bias, to a unit impulse
        in each input channel, so it is the exact map the layer computes.
        """
        h, w = self.input_size
        impulses = torch.zeros(self.in_channels, self.in_channels, h, w)
        channels = torch.arange(self.in_channels)
        impulses[channels, channels, 0, 0] = 1
        impulses = impulses.to(self.weight)
        with torch.no_grad():
            y = self(impulses)
            if self.bias is not None:
                y = y - self.bias[:, None, None]
        return y.transpose(0, 1).contiguous()

    def plain_conv(self) -> nn.Conv2d:
        """The same map as a plain circular nn.Conv2d (kernel covering the grid).

        nn.Conv2d cross-correlates with symmetric padding P, so the impulse
        response is flipped and rolled into an m×m kernel (m = the odd size
        ≥ the grid, P = (m − 1)/2); an even grid gets one extra, zero row
        and column. Exact up to float rounding.
        """
        h, w = self.input_size
        m = (h | 1, w | 1)
        pad = ((m[0] - 1) // 2, (m[1] - 1) // 2)
        flipped = self.full_kernel().flip(-2, -1)
        rolled = torch.roll(
            flipped, shifts=(pad[0] - (h - 1), pad[1] - (w - 1)), dims=(2, 3)
        )
        out = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            m,
            padding=pad,
            padding_mode="circular",
            bias=self.bias is not None,
        )
        with torch.no_grad():
            out.weight.zero_()
            out.weight[:, :, :h, :w] = rolled
            if self.bias is not None:
                out.bias.copy_(self.bias)
        return out.to(self.weight.device)

    def operator_norm(self, input_size: tuple[int, ...], per_neuron: bool) -> float:
        """The largest singular value over the per-frequency matrices, times k."""
        with torch.no_grad(), eval_mode(self):
            q = self.frequency_matrices().to(torch.complex128).cpu()
        gram = q @ q.mH if q.shape[-2] <= q.shape[-1] else q.mH @ q
        top = torch.linalg.eigvalsh(gram)[:, -1].max().clamp_min(0).sqrt()
        return float(top) * self.k

    def rounding(self, x: Tensor, lipschitz: float) -> LayerRounding:
        """Two FFTs and a product per frequency, bounded as a circular conv by
        the impulse response, plus the FFTs' stages."""
        offset = zero_offset(self, x)
        with torch.no_grad():
            kernel = self.full_kernel().double().abs().sum(dim=(2, 3))
        h, w = self.input_size
        stages = 2 * math.ceil(math.log2(h * w)) + 8
        terms = self.in_channels * h * w + 2 * self.in_channels + stages
        return LayerRounding(lipschitz, abs_norm(kernel), offset, terms)

    def vanilla_export(self) -> nn.Module:
        """The circular nn.Conv2d of `plain_conv`."""
        return self.plain_conv()

    def cache_snapshot(self) -> Callable[[], None]:
        """Keeps the per-frequency matrices float32 built, cast to complex128."""
        with torch.no_grad():
            q = self.frequency_matrices()

        def restore() -> None:
            key = (self.weight._version, self.scale._version, self.weight.data_ptr())
            self._cache = (key, q.to(torch.complex128))

        return restore

    @classmethod
    def build_cost(cls, args: Mapping[str, Any], x: Tensor, budget: Budget) -> Tensor:
        """An FFT-domain orthogonal convolution: exactly `input_size`, one matrix
        per frequency, each through a Cayley transform (an inverse of the
        smaller side)."""
        cin, cout, (kh, kw), (ih, iw) = grid_conv(args, x)
        freqs = ih * (iw // 2 + 1)
        small, large = min(cin, cout), max(cin, cout)
        budget.spectrum(cout * cin * freqs)
        budget.build_flops += 8 * freqs * (small**3 + 2 * large * small**2)
        # The rounding profile's impulse response: the layer on cin impulses.
        budget.build_flops += cin * (
            8 * freqs * cin * cout + 20 * (cin + cout) * ih * iw
        )
        budget.temporary(16 * cout * cin * ih * iw)
        budget.parameters += cout * cin * kh * kw + 1 + cout
        budget.forward_macs += 4 * freqs * cin * cout + 10 * (cin + cout) * ih * iw
        return torch.empty(1, cout, ih, iw, device="meta")

    def config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "input_size": list(self.input_size),
            "bias": self.bias is not None,
            "k": self.k,
        }

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"input_size={self.input_size}, k={self.k:g}"
        )
