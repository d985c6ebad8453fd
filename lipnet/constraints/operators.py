"""The maths of the constraints: norms and orthogonalization of a weight.

Power iteration, Björck orthonormalization with a strict final step, the
exact operator norm of a convolution (via the FFT of its kernel), the Cayley
transform and AOL rescaling; plain functions of tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

BJORCK_MAX_ITER = 15
BJORCK_TOL = 1e-3
BJORCK_GRAD_ITER = 3
BJORCK_SWITCH = 0.25


def power_iteration(
    op: Callable[[Tensor], Tensor],
    u: Tensor,
    n_iter: int = 100,
    tol: float = 1e-6,
) -> tuple[float, Tensor]:
    """Largest singular value of a linear map by power iteration on `op`ᵀ`op`.

    `op` must be linear; its adjoint is taken by autograd, so any linear map
    (a conv at its real input size, a pooling, a whole affine layer minus its
    offset) works. Iterates until the estimate changes by less than `tol`
    (relative) or `n_iter` steps; the estimate is a lower bound that converges
    to the true norm. Returns (sigma, unit right singular vector).
    """
    u = F.normalize(u.detach().flatten(), dim=0).view_as(u)
    sigma = 0.0
    for _ in range(n_iter):
        with torch.enable_grad():
            x = u.detach().requires_grad_(True)
            y = op(x)
            (g,) = torch.autograd.grad(0.5 * y.pow(2).sum(), x)
        new_sigma = math.sqrt(max(float((g * u).sum()), 0.0))
        norm = g.norm()
        if norm == 0:
            return 0.0, u
        u = g / norm
        if abs(new_sigma - sigma) <= tol * max(new_sigma, 1e-12):
            sigma = new_sigma
            break
        sigma = new_sigma
    with torch.no_grad():
        sigma = max(sigma, float(op(u).norm()))
    return sigma, u


def _gram(w: Tensor) -> Tensor:
    """The smaller Gram matrix of a 2-D weight (WWᵀ or WᵀW)."""
    return w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w


def _bjorck_step(w: Tensor, gram: Tensor) -> Tensor:
    """One Björck step W ← 1.5·W − 0.5·W·WᵀW (β = 0.5), as one fused matmul."""
    if w.shape[0] <= w.shape[1]:
        return torch.addmm(w, gram, w, beta=1.5, alpha=-0.5)
    return torch.addmm(w, w, gram, beta=1.5, alpha=-0.5)


def _distance_to_orthonormal(gram: Tensor) -> Tensor:
    """‖WᵀW − I‖_F on the small Gram matrix: twice the size of the next step."""
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    return torch.linalg.matrix_norm(gram - eye)


def bjorck_orthonormalize(
    w: Tensor,
    max_iter: int = BJORCK_MAX_ITER,
    tol: float = BJORCK_TOL,
    grad_iter: int = BJORCK_GRAD_ITER,
) -> Tensor:
    """Björck orthonormalization of a 2-D weight, strict by construction.

    A step with β = 0.5 maps each singular value σ to 1.5σ − 0.5σ³, which lies
    in [−1, 1] whenever σ ≤ 2. The input is rescaled once if the max-row-sum
    of its Gram matrix (an upper bound of σ_max²) exceeds 4; every later step
    then starts from σ ≤ 1, so the result has spectral norm ≤ 1 after any
    number (≥ 1) of steps, converged or not. Iteration stops when the next
    step would move W by less than about `tol` (½‖WᵀW − I‖_F, measured on the
    small Gram matrix). When a gradient is needed, the first
    steps run without autograd until W is close to orthonormal and pass the
    gradient straight through; only the last (at least `grad_iter`) steps
    are differentiated, which keeps the backward pass cheap.
    """
    gram = _gram(w.detach())
    bound = gram.abs().sum(dim=1).max()
    if bound > 4.0:
        w = w / bound.sqrt()
    x, steps = w, 0
    track = torch.is_grad_enabled() and w.requires_grad
    if track:
        with torch.no_grad():
            y = w.detach()
            while steps < max_iter - grad_iter:
                gram = _gram(y)
                if steps and _distance_to_orthonormal(gram) < 2 * BJORCK_SWITCH:
                    break
                y, steps = _bjorck_step(y, gram), steps + 1
        x = w + (y - w).detach()
    tracked = 0
    while steps < max_iter:
        gram = _gram(x)
        done = tracked >= grad_iter or not track
        if steps and done and _distance_to_orthonormal(gram.detach()) < 2 * tol:
            break
        x, steps, tracked = _bjorck_step(x, gram), steps + 1, tracked + 1
    return x


def conv_operator_norm(
    weight: Tensor,
    input_size: Sequence[int],
    stride: int = 1,
    padding: Sequence[int] = (0, 0),
    padding_mode: str = "zeros",
) -> Tensor:
    """Strict upper bound of a 2-D convolution's L2 operator norm, tight in practice.

    A stride-s convolution is rewritten as a stride-1 circular convolution of
    the space-to-depth input (an isometry) with a kernel of cin·s² channels, on
    the smallest torus that holds the image and p zeros (n + p cells per
    axis: those zeros serve as the padding on both sides). A circular convolution is
    diagonalized by the 2-D DFT, so its exact norm is the largest singular
    value of the per-frequency cout × cin·s² matrices. A zero-padded
    convolution on an H×W input is that circular one restricted to inputs
    supported inside the grid and cropped at the output, so its norm is at
    most this value (equal in the limit of large inputs). The bound holds for
    every input of height ≤ H and width ≤ W with zero padding, and for exactly
    H×W with circular padding. Differentiable with respect to `weight` (the
    gradient flows through the maximizing frequency).
    """
    cout, _, kh, kw = weight.shape
    h, w = (int(v) for v in input_size)
    ph, pw = (int(v) for v in padding)
    s = int(stride)
    if padding_mode == "circular":
        if h % s or w % s:
            raise ValueError(
                f"circular padding with stride {s} needs an input size divisible "
                f"by the stride, got {h}x{w}"
            )
        out_h, out_w = (h + 2 * ph - kh) // s + 1, (w + 2 * pw - kw) // s + 1
        if out_h > h // s or out_w > w // s:
            raise ValueError("circular padding larger than the kernel needs")
        grid_h, grid_w = h, w
        if kh > h or kw > w:
            if s != 1:
                raise ValueError(f"kernel {kh}x{kw} larger than the input {h}x{w}")
            # On the torus, taps p and p + h read the same pixel: fold them.
            weight = _fold(weight, h, w)
            cout, _, kh, kw = weight.shape
    elif padding_mode == "zeros":
        if ph > kh - 1 or pw > kw - 1:
            raise ValueError(
                "zero padding larger than kernel_size - 1 is not supported"
            )
        # A torus of n + p cells holds the image and p zeros, which serve as
        # both the left and the right padding: no read wraps onto a pixel.
        grid_h = s * math.ceil(max(h + ph, kh) / s)
        grid_w = s * math.ceil(max(w + pw, kw) / s)
    else:
        raise ValueError(
            f"padding_mode {padding_mode!r} is not supported: 'reflect' and "
            "'replicate' duplicate border pixels, which breaks a tight Lipschitz "
            "bound; use 'zeros' or 'circular'"
        )
    # Pad the kernel to a multiple of the stride and fold the stride phases
    # into channels: K'[o, c·s²+r1·s+r2, q1, q2] = K[o, c, s·q1+r1, s·q2+r2].
    kh2, kw2 = s * math.ceil(kh / s), s * math.ceil(kw / s)
    k = F.pad(weight, (0, kw2 - kw, 0, kh2 - kh))
    if s > 1:
        k = F.pixel_unshuffle(k, s)
    gh, gw = grid_h // s, grid_w // s
    spectrum = torch.fft.rfft2(k, s=(gh, gw))  # (cout, cin·s², gh, gw//2+1)
    mats = spectrum.permute(2, 3, 0, 1).reshape(-1, cout, k.shape[1])
    with torch.no_grad():
        gram = mats @ mats.mH if cout <= k.shape[1] else mats.mH @ mats
        top = torch.linalg.eigvalsh(gram)[:, -1]
        best = int(top.argmax())
    m = mats[best]
    g = m @ m.mH if cout <= k.shape[1] else m.mH @ m
    # The top eigenvalue of one small Hermitian matrix, with its gradient.
    sigma_sq = torch.linalg.eigvalsh(g)[-1]
    sigma_sq = torch.maximum(sigma_sq, top[best].to(sigma_sq.dtype))
    return sigma_sq.clamp_min(0).sqrt()


def cayley(w: Tensor) -> Tensor:
    """Cayley transform of (…, m, n) complex matrices: orthogonal by construction.

    With m ≥ n, split W into its top n×n block U and the rest V, set the
    skew-Hermitian-plus-PSD A = U − Uᴴ + VᴴV, and return
    [(I + A)⁻¹(I − A); −2V(I + A)⁻¹], whose columns are orthonormal
    (Trockman & Kolter, 2021); with m < n, the transpose of the transform of
    Wᵀ (orthonormal rows). I + A is always invertible: its Hermitian part
    I + VᴴV is positive definite.
    """
    m, n = w.shape[-2:]
    if m < n:
        return cayley(w.transpose(-2, -1)).transpose(-2, -1)
    u, v = w[..., :n, :], w[..., n:, :]
    eye = torch.eye(n, dtype=w.dtype, device=w.device)
    a = u - u.mH + v.mH @ v
    inv = torch.linalg.inv(eye + a)
    return torch.cat((inv @ (eye - a), -2 * v @ inv), dim=-2)


def _fold(weight: Tensor, h: int, w: int) -> Tensor:
    """A circular kernel larger than the h×w torus, summed onto it (tap p → p mod h)."""
    kh, kw = weight.shape[-2:]
    ah, aw = math.ceil(kh / h), math.ceil(kw / w)
    k = F.pad(weight, (0, aw * w - kw, 0, ah * h - kh))
    k = k.reshape(*weight.shape[:2], ah, h, aw, w)
    return k.sum(dim=(2, 4))


def aol_scale(gram: Tensor) -> Tensor:
    """AOL rescaling factors d with ‖W·diag(d)‖₂ ≤ 1 (Prach & Lampert, 2022).

    `gram` is WᵀW (or the channel-by-channel sum of |KᵀK| over offsets for a
    convolution); d_i = (Σ_j |gram_ij|)^(-1/2) makes the rescaled map 1-Lipschitz
    with a single Gram matrix and no iteration.
    """
    return gram.abs().sum(dim=1).clamp_min(1e-12).rsqrt()
