"""An orthogonal convolution built in kernel space, trained at a plain conv's cost."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..constraints import conv_operator_norm
from .base import (
    LayerRounding,
    LipschitzLayer,
    eval_mode,
    kernel_rounding,
    zero_offset,
)
from .cost import Budget, grid_conv, measure_conv
from .cost import pair as _pair

FLOAT_MARGIN = 1e-5


class _CircularPad(torch.autograd.Function):
    """Wrap-around padding with a one-pass forward and a folding backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, ph: int, pw: int) -> Tensor:
        ctx.pads = (ph, pw)
        h, w = x.shape[-2:]
        out = x.new_empty(*x.shape[:-2], h + 2 * ph, w + 2 * pw)
        out[..., ph : ph + h, pw : pw + w] = x
        if pw:
            out[..., ph : ph + h, :pw] = x[..., w - pw :]
            out[..., ph : ph + h, pw + w :] = x[..., :pw]
        if ph:
            out[..., :ph, :] = out[..., h : h + ph, :]
            out[..., ph + h :, :] = out[..., ph : 2 * ph, :]
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        ph, pw = ctx.pads
        h, w = grad.shape[-2] - 2 * ph, grad.shape[-1] - 2 * pw
        rows = grad[..., ph : ph + h, :].clone()
        if ph:
            rows[..., h - ph :, :] += grad[..., :ph, :]
            rows[..., :ph, :] += grad[..., ph + h :, :]
        out = rows[..., pw : pw + w].clone()
        if pw:
            out[..., w - pw :] += rows[..., :pw]
            out[..., :pw] += rows[..., pw + w :]
        return out, None, None


def circular_pad(x: Tensor, ph: int, pw: int) -> Tensor:
    """Wrap-around padding of the last two dims, as F.pad's 'circular' (ph ≤ h,
    pw ≤ w), with a cheaper backward."""
    if not (ph or pw):
        return x
    return _CircularPad.apply(x, ph, pw)


def _block(x: Tensor, q: Tensor, dim: int) -> Tensor:
    """Compose a kernel with the two-tap block [P, I − P] along tap axis `dim`.

    `x` holds the kernel taps first, each transposed: x[a, b] = K[:, :, a, b]ᵀ,
    shape (th, tw, cin, m), so a tap is a contiguous block and P acts by one
    right product over all taps. P = q qᵀ is an orthogonal projector (q has
    orthonormal columns), so the block's symbol P + (I − P)·z is unitary for
    every |z| = 1: the block is an orthogonal circular convolution, and so is
    the composition. Tap j of the result is P·K_j + (I − P)·K_{j−1}; `dim` is
    0 (down) or 1 (across).
    """
    flat = x.reshape(-1, x.shape[-1])
    px = ((flat @ q) @ q.mT).reshape(x.shape)
    after = (0, 0, 0, 0, 0, 1) if dim == 1 else (0, 0, 0, 0, 0, 0, 0, 1)
    before = (0, 0, 0, 0, 1, 0) if dim == 1 else (0, 0, 0, 0, 0, 0, 1, 0)
    return F.pad(px, after) + F.pad(x - px, before)


class BlockOrthogonalConv2d(nn.Module, LipschitzLayer):
    """Circular k×k convolution that is orthogonal by construction (BCOP).

    After Li et al. (NeurIPS 2019, arXiv 1911.00937) and the block-convolution
    form of AOC (Boissin et al., 2025): on m = min(cin, cout) channels, a
    1×1 orthogonal matrix is composed with (kh − 1) vertical and (kw − 1)
    horizontal two-tap blocks [P, I − P], each P an orthogonal projector of
    rank m/2 (columns orthonormalized by a QR decomposition, which is
    backward stable whatever the conditioning). Each factor's symbol is
    unitary at every frequency, so the k×k kernel is an orthogonal circular
    convolution: every singular value is 1 (times 1 − 10⁻⁵ for float32
    rounding) on any grid. With cin ≠ cout a 1×1 map with orthonormal rows
    (cin > cout, applied first) or columns (cin < cout, applied last) changes
    the width, so the layer is a co-isometry or an isometry, which keeps the
    gradient's norm through a GNP network. Training evaluates those two
    factors separately (cheaper than one cin × cout conv); eval mode runs
    one plain circular conv with the composed, cached kernel, the same map
    `plain_conv` exports. Inputs must be exactly `input_size`.
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
        if any(ks % 2 == 0 or ks < 1 for ks in self.kernel_size):
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if any(ks > n for ks, n in zip(self.kernel_size, self.input_size, strict=True)):
            raise ValueError(
                f"kernel {self.kernel_size} larger than the input {self.input_size}"
            )
        self.k = float(k)
        self.lipschitz = self.k
        m = min(self.in_channels, self.out_channels)
        blocks = self.kernel_size[0] + self.kernel_size[1] - 2
        self.projectors = nn.Parameter(torch.randn(blocks, m, max(1, m // 2)))
        wide = max(self.in_channels, self.out_channels)
        self.mixing = nn.Parameter(nn.init.orthogonal_(torch.empty(wide, m)))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self._cache: tuple[tuple[int, ...], Tensor] | None = None

    def _order(self) -> list[int]:
        """The blocks' tap axes, alternating (1 across, 0 down) while both last."""
        down, across = self.kernel_size[0] - 1, self.kernel_size[1] - 1
        order: list[int] = []
        while down or across:
            if across:
                order.append(1)
                across -= 1
            if down:
                order.append(0)
                down -= 1
        return order

    def factors(self) -> tuple[Tensor | None, Tensor]:
        """(R, K): the width-changing 1×1 map (cout × cin, orthonormal rows or
        columns; None when square) and the (m, m, kh, kw) orthogonal kernel
        (the 1×1 orthogonal matrix folded in when square), times (1 − 10⁻⁵)·k."""
        qs = torch.linalg.qr(self.projectors).Q
        mix = torch.linalg.qr(self.mixing).Q  # (max, m), orthonormal columns
        m = mix.shape[1]
        if self.in_channels == self.out_channels:
            x, rect = mix.reshape(1, 1, m, m), None
        else:
            x = torch.eye(m, dtype=mix.dtype, device=mix.device).reshape(1, 1, m, m)
            rect = mix.T if self.out_channels < self.in_channels else mix
        for q, dim in zip(qs, self._order(), strict=True):
            x = _block(x, q, dim)
        kernel = x.permute(3, 2, 0, 1).contiguous()
        return rect, kernel * ((1 - FLOAT_MARGIN) * self.k)

    def _key(self) -> tuple[int, ...]:
        """Identifies the parameters a cached kernel was built from."""
        return (
            self.projectors._version,
            self.mixing._version,
            self.projectors.data_ptr(),
            self.mixing.data_ptr(),
        )

    def kernel(self) -> Tensor:
        """The (cout, cin, kh, kw) kernel of the whole map; cached in eval mode."""
        key = self._key()
        if not self.training and self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        rect, x = self.factors()
        if rect is not None and self.out_channels < self.in_channels:
            x = torch.einsum("abij,bc->acij", x, rect)
        elif rect is not None:
            x = torch.einsum("ab,bcij->acij", rect, x)
        if not self.training:
            x = x.detach()
            self._cache = (key, x)
        return x

    def freeze(self, kernel: Tensor) -> None:
        """Cache `kernel` as this layer's eval-mode kernel for its current parameters
        (how a float64 copy keeps the kernel its float32 parameters built)."""
        self._cache = (self._key(), kernel.detach().to(self.projectors))

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != self.input_size or x.shape[-3] != self.in_channels:
            raise ValueError(
                f"BlockOrthogonalConv2d expects inputs of {self.in_channels}x"
                f"{self.input_size[0]}x{self.input_size[1]}, got "
                f"{'x'.join(str(v) for v in x.shape[-3:])}"
            )
        batch = x.shape[:-3]
        x = x.reshape(-1, *x.shape[-3:])
        ph, pw = self.kernel_size[0] // 2, self.kernel_size[1] // 2
        if not self.training:
            y = F.conv2d(circular_pad(x, ph, pw), self.kernel(), self.bias)
            return y.reshape(*batch, *y.shape[-3:])
        rect, kernel = self.factors()
        widen = rect is not None and self.out_channels > self.in_channels
        if rect is not None and not widen:
            x = F.conv2d(x, rect[:, :, None, None])
        y = F.conv2d(circular_pad(x, ph, pw), kernel, None if widen else self.bias)
        if widen:
            y = F.conv2d(y, rect[:, :, None, None], self.bias)
        return y.reshape(*batch, *y.shape[-3:])

    def plain_conv(self) -> nn.Conv2d:
        """The same map as a plain circular nn.Conv2d with the composed k×k kernel."""
        kernel = self.kernel().detach()
        out = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            padding=(self.kernel_size[0] // 2, self.kernel_size[1] // 2),
            padding_mode="circular",
            bias=self.bias is not None,
            device=kernel.device,
        )
        with torch.no_grad():
            out.weight.copy_(kernel)
            if self.bias is not None:
                out.bias.copy_(self.bias)
        return out

    def _eval_kernel(self) -> Tensor:
        """The composed kernel eval mode convolves with, in float64 on the CPU."""
        with torch.no_grad(), eval_mode(self):
            return self.kernel().detach().double().cpu()

    def operator_norm(self, input_size: tuple[int, ...], per_neuron: bool) -> float:
        """The FFT norm of the composed kernel as a circular convolution."""
        pad = (self.kernel_size[0] // 2, self.kernel_size[1] // 2)
        kernel = self._eval_kernel()
        return float(conv_operator_norm(kernel, input_size, 1, pad, "circular"))

    def exact_constant(self) -> float:
        """Its declared k: an isometry (or co-isometry) by construction, every
        singular value (1 − 10⁻⁵)·k, so no power iteration is run."""
        return float(self.lipschitz)

    def rounding(self, x: Tensor, lipschitz: float) -> LayerRounding:
        """Eval mode computes one circular conv with the composed kernel."""
        offset = zero_offset(self, x)
        return kernel_rounding(self._eval_kernel(), lipschitz, offset)

    def vanilla_export(self) -> nn.Module:
        """The circular nn.Conv2d of `plain_conv`."""
        return self.plain_conv()

    def cache_snapshot(self) -> Callable[[], None]:
        """Keeps the kernel float32 composed (`freeze`)."""
        with torch.no_grad():
            kernel = self.kernel()
        return lambda: self.freeze(kernel)

    @classmethod
    def build_cost(cls, args: Mapping[str, Any], x: Tensor, budget: Budget) -> Tensor:
        """A kernel-space orthogonal convolution: exactly `input_size`, odd k×k
        kernel built from QR-orthonormalized projectors on min(cin, cout)
        channels, measured like a circular conv."""
        cin, cout, (kh, kw), (ih, iw) = grid_conv(args, x)
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {[kh, kw]}")
        small, large = min(cin, cout), max(cin, cout)
        blocks, rank = kh + kw - 2, max(1, small // 2)
        # QR of each projector and of the 1×1 map, the block chain, the composition.
        budget.build_flops += 4 * blocks * small * rank**2 + 4 * large * small**2
        budget.build_flops += 4 * blocks * small**2 * rank * kh * kw
        budget.build_flops += 2 * large * small**2 * kh * kw
        budget.temporary(8 * large * small * kh * kw)
        measure_conv(budget, {**args, "padding": (kh // 2, kw // 2)}, (ih, iw))
        budget.parameters += blocks * small * rank + large * small + cout
        budget.forward_macs += cout * cin * kh * kw * ih * iw
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
