"""The `parametrize` modules that apply the constraints to a layer's weight.

Each recomputes the constrained weight in training and caches it in eval
mode (`_CachedInEval`), so inference costs what a plain layer costs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .operators import aol_scale, bjorck_orthonormalize, conv_operator_norm


class _CachedInEval(nn.Module):
    """Base for weight parametrizations: recompute in training, cache in eval.

    In eval mode the constrained weight is computed once and reused until the
    underlying parameter changes (tracked by its version counter and storage),
    so inference costs what a plain layer costs.
    """

    def __init__(self) -> None:
        super().__init__()
        self._cache: Tensor | None = None
        self._cache_key: tuple[int, ...] | None = None
        self._buffers_seen: list[Tensor] | None = None

    def _key(self, original: Tensor) -> tuple[int, ...]:
        if self._buffers_seen is None:
            self._buffers_seen = list(self.buffers())
        keys = [original._version, original.data_ptr()]
        for b in self._buffers_seen:
            keys += [b._version, b.data_ptr()]
        return tuple(keys)

    def cached(self, original: Tensor) -> Tensor | None:
        """The cached eval-mode weight if it is still valid, else None."""
        if self._cache is not None and self._cache_key == self._key(original):
            return self._cache
        return None

    def forward(self, original: Tensor) -> Tensor:
        if self.training:
            self._cache = None
            return self.constrain(original)
        key = self._key(original)
        if self._cache is None or self._cache_key != key:
            with torch.no_grad():
                self._cache = self.constrain(original).detach()
            self._cache_key = self._key(original)
        return self._cache

    def constrain(self, original: Tensor) -> Tensor:
        raise NotImplementedError


class SpectralBjorck(_CachedInEval):
    """Spectral normalization then Björck orthonormalization of a weight.

    The weight is reshaped to (out, -1), divided by its largest singular value
    (power iteration with a persistent vector, one step per training forward),
    then orthonormalized with `bjorck_orthonormalize`, whose final step makes
    the spectral norm ≤ 1 whatever the estimate's error.
    """

    def __init__(self, shape: Sequence[int], n_power_iter: int = 1) -> None:
        super().__init__()
        self.n_power_iter = n_power_iter
        fan_in = int(math.prod(shape[1:]))
        self.register_buffer("u", F.normalize(torch.randn(fan_in), dim=0))

    def constrain(self, original: Tensor) -> Tensor:
        w = original.reshape(original.shape[0], -1)
        u = self.u.clone()
        if self.training:
            with torch.no_grad():
                for _ in range(self.n_power_iter):
                    u = F.normalize(w.T @ F.normalize(w @ u, dim=0), dim=0)
                self.u.copy_(u)
        sigma = torch.linalg.vector_norm(w @ u)
        w = bjorck_orthonormalize(w / sigma.clamp_min(1e-12))
        return w.reshape(original.shape)


class ConvOperatorNorm(_CachedInEval):
    """Spectral + Björck on the reshaped kernel, then division by the conv's exact norm.

    Björck makes the reshaped kernel orthonormal (a good, well-conditioned
    start); `conv_operator_norm` then rescales by the exact norm of the
    convolution operator at the layer's input size, so the layer is strictly
    1-Lipschitz and tight (its measured norm is 1 up to the gap between the
    zero-padded operator and its circular embedding).
    """

    def __init__(
        self,
        shape: Sequence[int],
        input_size: Sequence[int],
        stride: int,
        padding: Sequence[int],
        padding_mode: str,
    ) -> None:
        super().__init__()
        self.spectral = SpectralBjorck(shape)
        self.input_size = tuple(int(v) for v in input_size)
        self.stride = int(stride)
        self.padding = tuple(int(v) for v in padding)
        self.padding_mode = padding_mode

    def constrain(self, original: Tensor) -> Tensor:
        w = self.spectral.constrain(original)
        norm = conv_operator_norm(
            w, self.input_size, self.stride, self.padding, self.padding_mode
        )
        # The tiny relative margin absorbs float32 rounding of the eigensolver.
        return w / (norm * (1 + 1e-6)).clamp_min(1e-12)


class AOLRescale(_CachedInEval):
    """AOL: rescale the input columns of a dense or conv weight (no iterations).

    For a dense weight W, d = (Σ_j |WᵀW|_ij)^(-1/2); for a convolution the Gram
    matrix sums |KᵀK| over all kernel offsets (the channel-wise conv of the
    kernel with itself), which bounds the stride-1 zero-padded conv at every
    input size. Strict, cheap, and tight when W is near orthogonal.
    """

    def constrain(self, original: Tensor) -> Tensor:
        if original.dim() == 2:
            d = aol_scale(original.T @ original)
            return original * d[None, :]
        kh, kw = original.shape[-2:]
        kt = original.transpose(0, 1)  # (cin, cout, kh, kw)
        gram = F.conv2d(kt, kt, padding=(kh - 1, kw - 1))  # (cin, cin, 2kh-1, 2kw-1)
        d = aol_scale(gram.abs().sum(dim=(2, 3)))
        return original * d[None, :, None, None]


class FrobeniusNormalize(_CachedInEval):
    """Divide a dense weight by its Frobenius norm (per row if `disjoint`).

    With one output, the Frobenius and spectral norms coincide (an exactly
    1-Lipschitz, gradient-norm-preserving head); with several outputs and
    `disjoint`, each output neuron is 1-Lipschitz on its own.
    """

    def __init__(self, disjoint: bool) -> None:
        super().__init__()
        self.disjoint = disjoint

    def constrain(self, original: Tensor) -> Tensor:
        norms = original.norm(dim=1, keepdim=True) if self.disjoint else original.norm()
        return original / norms.clamp_min(1e-12)
