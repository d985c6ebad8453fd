"""Every layer is provably 1-Lipschitz: measured norms, Björck, caching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from deel import torchlip
from helpers import measured_norm, train_steps
from scipy import sparse  # scipy comes with foolbox (requirements-dev.txt)
from scipy.sparse.linalg import eigsh

import lipnet
from lipnet.constraints import bjorck_orthonormalize, conv_operator_norm

TOL = 1e-4


@pytest.mark.parametrize(
    ("fan_in", "fan_out"), [(784, 128), (32, 64), (50, 50), (128, 1)]
)
@pytest.mark.parametrize("cls", [lipnet.SpectralLinear, lipnet.AOLLinear])
def test_dense_layers_are_1_lipschitz(cls, fan_in, fan_out):
    torch.manual_seed(fan_in + fan_out)
    layer = cls(fan_in, fan_out)
    train_steps(layer, (fan_in,))
    assert measured_norm(layer, (fan_in,)) <= 1 + TOL


def test_spectral_linear_is_orthonormal_after_training():
    """Björck converges: every singular value is 1 (gradient norm preserving)."""
    for shape in [(784, 128), (64, 256)]:
        layer = lipnet.SpectralLinear(*shape)
        train_steps(layer, (shape[0],))
        layer.eval()
        sv = torch.linalg.svdvals(layer.weight)
        assert sv.max() <= 1 + TOL
        assert sv.min() >= 1 - 1e-3


def test_k_scales_the_bound():
    layer = lipnet.SpectralLinear(20, 30, k=2.5)
    train_steps(layer, (20,))
    assert abs(measured_norm(layer, (20,)) - 2.5) <= 2.5 * 1e-3
    assert layer.lipschitz == 2.5


def test_bjorck_is_strict_even_unconverged_and_from_large_norms():
    torch.manual_seed(0)
    for scale in [0.1, 1.0, 1.9, 50.0]:
        w = torch.randn(40, 30) * scale
        for iters in [1, 2, 15]:
            out = bjorck_orthonormalize(w, max_iter=iters, grad_iter=1)
            assert torch.linalg.matrix_norm(out, ord=2) <= 1 + 1e-5
    converged = bjorck_orthonormalize(torch.randn(40, 30) / 12, max_iter=30, tol=1e-6)
    sv = torch.linalg.svdvals(converged)
    assert torch.allclose(sv, torch.ones_like(sv), atol=1e-4)


def test_bjorck_gradient_flows():
    w = torch.randn(20, 10, requires_grad=True)
    bjorck_orthonormalize(w / 5).sum().backward()
    assert (
        w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
    )


CONV_CASES = [
    # (kernel, stride, input size, padding mode)
    (3, 1, 16, "zeros"),
    (3, 2, 16, "zeros"),
    (5, 1, 16, "zeros"),
    (3, 1, 28, "zeros"),
    (5, 2, 28, "zeros"),
    (1, 1, 12, "zeros"),
    (3, 1, 16, "circular"),
    (3, 2, 16, "circular"),
    (5, 1, 16, "circular"),
]


@pytest.mark.parametrize(("kernel", "stride", "size", "mode"), CONV_CASES)
def test_spectral_conv_is_strict(kernel, stride, size, mode):
    torch.manual_seed(kernel * 10 + stride)
    conv = lipnet.SpectralConv2d(
        4,
        8,
        kernel,
        input_size=size,
        stride=stride,
        padding=kernel // 2,
        padding_mode=mode,
    )
    train_steps(conv, (4, size, size))
    norm = measured_norm(conv, (4, size, size))
    assert norm <= 1 + TOL
    # Smaller inputs stay within the bound with zero padding.
    if mode == "zeros" and size > 8:
        assert measured_norm(conv, (4, size // 2, size // 2)) <= 1 + TOL


# --------------------------------------------------------------------------
# Tightness of SpectralConv2d, measured exactly.
#
# The layer divides its kernel by the exact norm of the convolution on the
# circular torus of n + p cells per axis (n the input size, p the padding,
# rounded up to a multiple of the stride; `conv_operator_norm`). So:
#   * on that torus (and for circular padding, on the input itself) the
#     layer's norm is 1 / (1 + 1e-6): 1 up to the layer's rounding margin;
#   * with zero padding, the layer at its real n×n input is the torus operator
#     restricted to inputs that vanish on the p padding cells and cropped at
#     the output. Its norm is ≤ 1, below 1 by an "embedding gap": the torus's
#     top singular vector is a plane wave that fills the whole torus, and the
#     best input that fits in n×n is that wave under a window vanishing at
#     the border. The window spreads the frequency by about π/(n + 1), so the
#     gap is second order: about c·(π/(n + 1))² per axis, with c the curvature
#     of the kernel's spectrum at its peak, which grows with the kernel's
#     width. It depends on the kernel, not only on k and n.
#
# The floors below come from exact norms of many kernels (float64 Lanczos on
# the sparse matrix of the layer, as below): the worst of 150 seeded random
# orthonormal kernels, of 12 kernels after 20 Adam steps (`train_steps`) and of
# the box filter (every tap equal: its spectrum peaks at frequency 0, and it
# had the largest gap of all) were
#     3×3 at 28: 0.9947 random, 0.9950 trained, 0.9922 box      → floor 0.985
#     3×3 at 28, stride 2: 0.9921, 0.9948, 0.9907               → floor 0.985
#     5×5 at 28: 0.9822, 0.9796, 0.9776                         → floor 0.97
#     3×3 at 64: 0.9990, 0.9989, 0.9984 (gap ÷ 5 = ((64+1)/(28+1))²) → 0.997
# The floors sit 1.3 to 1.9 times the box filter's gap below 1.
#
# An earlier version of this test trained the kernel (20 Adam steps), measured
# it by power iteration and asked for 0.98 at 5×5 and 28. Adam's first steps
# move every weight by about ±lr whatever the size of its gradient, so the
# trained kernel, and its gap, changed with the machine's BLAS and thread
# count (1 or 4 threads here: 0.9842 or 0.9788 for one seed); the test's own
# kernel (seed 3) has an exact norm of 0.97960 on this machine, the value a
# failing run reported; and power iteration, a lower bound, stopped up to 7e-4
# short of the norm. Here the kernels are
# seeded (no training, nothing for rounding to amplify) and the norms exact.

# (kernel, stride, input size, padding mode, floor at the input size)
TIGHT_CASES = [
    (3, 1, 16, "circular", 1 - 1e-5),
    (3, 2, 16, "circular", 1 - 1e-5),
    (5, 1, 16, "circular", 1 - 1e-5),
    (3, 1, 28, "zeros", 0.985),
    (3, 2, 28, "zeros", 0.985),
    (5, 1, 28, "zeros", 0.97),
    (3, 1, 64, "zeros", 0.997),
]
TIGHT_SEEDS = (0, 1, 2)  # seeded orthonormal kernels, plus the box filter


def conv_matrix(weight: torch.Tensor, size: int, stride: int, pad: int, wrap: bool):
    """x ↦ conv2d(x, weight) on size×size inputs as a sparse float64 matrix.

    Padding `pad` on each side, zeros or (`wrap`) circular; rows are the
    flattened (cout, h, w) outputs, columns the flattened (cin, h, w) inputs.
    """
    w = weight.detach().double().numpy()
    cout, cin, kh, kw = w.shape
    out = (size + 2 * pad - kh) // stride + 1
    o, c, a, b, i, j = np.meshgrid(
        *(np.arange(v) for v in (cout, cin, kh, kw, out, out)), indexing="ij"
    )
    r, q = stride * i + a - pad, stride * j + b - pad
    if wrap:
        r, q, keep = r % size, q % size, np.ones(r.shape, dtype=bool)
    else:
        keep = (r >= 0) & (r < size) & (q >= 0) & (q < size)
    rows = ((o * out + i) * out + j)[keep]
    cols = ((c * size + r) * size + q)[keep]
    shape = (cout * out * out, cin * size * size)
    return sparse.csr_matrix((w[o, c, a, b][keep], (rows, cols)), shape=shape)


def exact_norm(matrix) -> float:
    """Largest singular value, by Lanczos (ARPACK) on MᵀM in float64.

    Deterministic (seeded start) and accurate to about 1e-10, where power
    iteration on a spectrum with many close singular values stops short.
    """
    v0 = np.random.default_rng(0).standard_normal(matrix.shape[1])
    (top,) = eigsh(
        (matrix.T @ matrix).tocsr(),
        k=1,
        which="LA",
        v0=v0,
        tol=1e-10,
        return_eigenvectors=False,
    )
    return math.sqrt(top)


def seeded_conv(kernel, stride, size, mode, seed):
    """A SpectralConv2d with a seeded orthonormal kernel (None: the box filter)."""
    torch.manual_seed(0 if seed is None else seed)
    conv = lipnet.SpectralConv2d(
        4,
        8,
        kernel,
        input_size=size,
        stride=stride,
        padding=kernel // 2,
        padding_mode=mode,
    )
    if seed is None:
        with torch.no_grad():
            conv.parametrizations.weight.original.fill_(1.0)
    return conv.eval()


@pytest.mark.parametrize(("kernel", "stride", "size", "mode", "floor"), TIGHT_CASES)
def test_spectral_conv_is_tight_at_its_input_size(kernel, stride, size, mode, floor):
    pad = kernel // 2
    if mode == "circular":  # the layer's own input is the torus
        torus = size
    else:
        torus = stride * math.ceil(max(size + pad, kernel) / stride)
    for seed in (*TIGHT_SEEDS, None):
        conv = seeded_conv(kernel, stride, size, mode, seed)
        at_size = conv_matrix(conv.weight, size, stride, pad, mode == "circular")
        # The matrix is the layer (minus its bias), not a model of it.
        x = torch.randn(2, 4, size, size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            got = (conv(x) - conv(torch.zeros_like(x))).flatten(1).double().numpy()
        want = (at_size @ x.flatten(1).double().numpy().T).T
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)

        # Tight: the norm the layer divided by is the exact norm on the torus.
        wrapped = conv_matrix(conv.weight, torus, stride, pad, wrap=True)
        assert abs(exact_norm(wrapped) - 1) <= 1e-5, seed
        # Strict at its input size; below 1 only by the embedding gap.
        norm = exact_norm(at_size)
        assert floor <= norm <= 1 + 1e-5, (seed, norm)


@pytest.mark.parametrize(("kernel", "stride"), [(3, 1), (3, 2), (5, 1)])
def test_spectral_conv_uses_more_budget_than_deel_torchlip(kernel, stride):
    """deel-torchlip's reshaped-kernel factor wastes budget; ours does not."""
    size = 16
    torch.manual_seed(7)
    ours = lipnet.SpectralConv2d(
        4, 8, kernel, input_size=size, stride=stride, padding=kernel // 2
    )
    theirs = torchlip.SpectralConv2d(4, 8, kernel, stride=stride, padding=kernel // 2)
    train_steps(ours, (4, size, size))
    train_steps(theirs, (4, size, size))
    n_ours = measured_norm(ours, (4, size, size))
    n_theirs = measured_norm(theirs, (4, size, size))
    assert n_ours <= 1 + TOL
    assert n_ours > n_theirs


def test_conv_operator_norm_matches_dense_matrix():
    """The FFT bound equals the exact norm of the circular operator."""
    torch.manual_seed(0)
    w = torch.randn(3, 2, 3, 3)
    for stride in (1, 2):
        n = 8
        eye = torch.eye(2 * n * n).reshape(-1, 2, n, n)
        padded = torch.nn.functional.pad(eye, (1, 1, 1, 1), mode="circular")
        mat = torch.nn.functional.conv2d(padded, w, stride=stride).reshape(
            2 * n * n, -1
        )
        exact = torch.linalg.matrix_norm(mat, ord=2)
        fft = conv_operator_norm(w, (n, n), stride, (1, 1), "circular")
        assert torch.isclose(fft, exact, rtol=1e-5)


def test_conv_rejects_unbounded_configurations():
    with pytest.raises(ValueError, match="padding_mode"):
        lipnet.SpectralConv2d(1, 2, 3, input_size=8, padding_mode="reflect")
    conv = lipnet.SpectralConv2d(1, 2, 3, input_size=8)
    with pytest.raises(ValueError, match="certified for inputs up to"):
        conv(torch.zeros(1, 1, 16, 16))


@pytest.mark.parametrize(("kernel", "stride"), [(3, 1), (5, 1), (3, 2)])
def test_aol_conv_is_strict(kernel, stride):
    torch.manual_seed(0)
    conv = lipnet.AOLConv2d(4, 8, kernel, stride=stride, padding=kernel // 2)
    train_steps(conv, (4, 12, 12))
    for size in (6, 12, 20):
        assert measured_norm(conv, (4, size, size)) <= 1 + TOL


def test_frobenius_head():
    head = lipnet.FrobeniusLinear(32, 1)
    train_steps(head, (32,))
    assert abs(measured_norm(head, (32,)) - 1.0) <= TOL
    multi = lipnet.FrobeniusLinear(32, 10)
    train_steps(multi, (32,))
    multi.eval()
    rows = multi.weight.norm(dim=1)
    assert torch.allclose(rows, torch.ones(10), atol=1e-5)
    whole = lipnet.FrobeniusLinear(32, 10, disjoint_neurons=False)
    train_steps(whole, (32,))
    assert measured_norm(whole, (32,)) <= 1 + TOL


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (lipnet.GroupSort(4), (16, 4, 4)),
        (lipnet.GroupSort2(), (8,)),
        (lipnet.FullSort(), (12,)),
        (lipnet.MaxMin(), (6, 4, 4)),
        (lipnet.ScaledL2NormPool2d(2), (3, 8, 8)),
        (lipnet.ScaledAvgPool2d(2), (3, 8, 8)),
        (lipnet.InvertibleDownSampling(2), (3, 8, 8)),
    ],
)
def test_parameter_free_layers_are_1_lipschitz(layer, shape):
    """Difference quotients on random pairs never exceed 1; isometries hit 1."""
    torch.manual_seed(0)
    x = torch.randn(256, *shape)
    directions = [torch.randn_like(x), x]  # random and radial
    if len(shape) == 3:  # constant over 2x2 windows
        coarse = torch.randn(256, shape[0], shape[1] // 2, shape[2] // 2)
        directions.append(coarse.repeat_interleave(2, 2).repeat_interleave(2, 3))
    best = 0.0
    for d in directions:
        y = x + 1e-2 * d
        num = (layer(x) - layer(y)).flatten(1).norm(dim=1)
        ratio = num / (x - y).flatten(1).norm(dim=1)
        assert ratio.max() <= 1 + 1e-5
        best = max(best, float(ratio.max()))
    assert best >= 0.99


def test_gradient_norm_preserving_activations():
    x = torch.randn(4, 12, requires_grad=True)
    for act in (lipnet.GroupSort2(), lipnet.FullSort(), lipnet.MaxMin()):
        out = act(x)
        assert torch.allclose(out.norm(dim=1), x.norm(dim=1), atol=1e-5)


def test_eval_caching_gives_the_same_outputs_and_follows_updates():
    torch.manual_seed(0)
    model = lipnet.LipSequential(
        lipnet.SpectralConv2d(1, 4, 3, input_size=8),
        lipnet.GroupSort2(),
        lipnet.Flatten(),
        lipnet.SpectralLinear(256, 16),
        lipnet.FullSort(),
        lipnet.FrobeniusLinear(16, 1),
        input_shape=(1, 8, 8),
    )
    x = torch.rand(5, 1, 8, 8)
    model.train()
    with torch.no_grad():
        train_out = model(x)
    model.eval()
    first = model(x)
    assert torch.allclose(first, train_out, atol=1e-5)
    assert torch.equal(model(x), first)  # served from the cache
    cache = model[3].parametrizations.weight[0]._cache
    assert cache is not None and model[3].weight is cache
    # An in-place update of the parameter invalidates the cache.
    with torch.no_grad():
        model[3].parametrizations.weight.original.mul_(0.5).add_(0.1)
    assert not torch.equal(model(x), first)
    # Training then eval recomputes as well.
    train_steps(model, (1, 8, 8), steps=2)
    model.eval()
    with torch.no_grad():
        again = model(x)
    model.train()
    with torch.no_grad():
        fresh = model(x)
    assert torch.allclose(again, fresh, atol=1e-5)


def test_lip_sequential_knows_its_constant_and_head():
    binary = lipnet.LipSequential(
        lipnet.SpectralLinear(4, 8, k=2.0),
        lipnet.FullSort(),
        lipnet.FrobeniusLinear(8, 1),
    )
    assert binary.lipschitz_constant == 2.0 and binary.head == "binary"
    disjoint = lipnet.LipSequential(
        lipnet.SpectralLinear(4, 8), lipnet.FrobeniusLinear(8, 3)
    )
    assert disjoint.head == "disjoint"
    whole = lipnet.LipSequential(
        lipnet.SpectralLinear(4, 8), lipnet.SpectralLinear(8, 3)
    )
    assert whole.head == "lipschitz"
    plain = lipnet.LipSequential(
        torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)
    )
    assert plain.lipschitz_constant is None and plain.head == "none"
    with pytest.raises(ValueError, match="head"):
        lipnet.LipSequential(torch.nn.Linear(4, 1), head="binary")
