"""Certificates: the radius formulas, soundness under attack, measured bounds."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import pgd_l2_flips, toy_binary_model
from torch import nn

import lipnet
from lipnet.certify import NoCertificateError, radius_from_outputs
from lipnet.layers import LipschitzLayer
from lipnet.precision import to_float64

ZOO = Path(__file__).resolve().parents[1] / "assets" / "models"


def test_radius_formulas_by_hand():
    f = torch.tensor([[3.0], [-1.0]])
    assert torch.allclose(
        radius_from_outputs(f, 2.0, "binary"), torch.tensor([1.5, 0.5])
    )
    labels = torch.tensor([1, 1])
    assert torch.allclose(
        radius_from_outputs(f, 2.0, "binary", labels), torch.tensor([1.5, 0.0])
    )
    out = torch.tensor([[4.0, 1.0, 0.0], [0.0, 2.0, 1.5]])
    whole = radius_from_outputs(out, 1.0, "lipschitz")
    assert torch.allclose(whole, torch.tensor([3 / math.sqrt(2), 0.5 / math.sqrt(2)]))
    disjoint = radius_from_outputs(out, 1.0, "disjoint", torch.tensor([0, 0]))
    assert torch.allclose(disjoint, torch.tensor([1.5, 0.0]))


def test_multiclass_radius_is_exactly_tight_for_a_linear_map():
    """For f(x) = Wx with orthonormal rows, the nearest decision change is at
    margin/√2: the certificate is exact, not just sound."""
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(8, 3))
    model = lipnet.LipSequential(lipnet.SpectralLinear(8, 3, bias=False))
    with torch.no_grad():
        model[0].parametrizations.weight.original.copy_(q.T)
    to_float64(model)  # float64 rounding takes ~1e-15 off the radius
    x = torch.randn(1, 8, dtype=torch.float64)
    out = model(x)
    r = lipnet.certified_radius(model, x)
    top2 = out.topk(2).indices[0]
    w = model[0].weight
    direction = w[top2[1]] - w[top2[0]]
    needed = (out[0, top2[0]] - out[0, top2[1]]) / direction.norm() ** 2
    flipped = model(x + (needed * 1.0001) * direction)
    assert flipped.argmax() != out.argmax()
    assert torch.isclose(r[0], needed * direction.norm(), rtol=1e-7)


def test_certified_radius_needs_a_certificate():
    plain = lipnet.LipSequential(nn.Linear(4, 1))
    with pytest.raises(NoCertificateError, match="no certificate"):
        lipnet.certified_radius(plain, torch.zeros(1, 4))


def test_certificates_are_sound_under_pgd():
    """PGD with restarts never flips a decision inside the certified radius,
    and does flip most of them just outside (the attack is not toothless)."""
    model, x, y = toy_binary_model()
    x, y = x[:200], y[:200]
    r = lipnet.certified_radius(model, x, y)
    ok = r > 0.05
    assert ok.float().mean() > 0.8
    inside = pgd_l2_flips(model, x[ok], y[ok], r[ok] * 0.999, steps=40, restarts=3)
    assert not inside.any()
    outside = pgd_l2_flips(model, x[ok], y[ok], r[ok] * 1.5, steps=40, restarts=1)
    assert outside.float().mean() > 0.5


def test_certified_accuracy_curve():
    model, x, y = toy_binary_model()
    acc = lipnet.certified_accuracy(model, (x, y), [0.0, 0.5, 1.0, 100.0])
    radii = lipnet.certified_radius(model, x, y)
    assert acc[0.0] == pytest.approx(float((radii > 0).float().mean()))
    assert acc[0.5] == pytest.approx(float((radii > 0.5).float().mean()))
    assert acc[0.0] >= acc[0.5] >= acc[1.0] >= acc[100.0] == 0.0
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=64
    )
    assert lipnet.certified_accuracy(model, loader, [0.5]) == {0.5: acc[0.5]}
    balanced = lipnet.certified_accuracy(model, (x, y), [0.0], balanced=True)[0.0]
    per_class = [float((radii[y == k] > 0).float().mean()) for k in (0, 1)]
    assert balanced == pytest.approx(sum(per_class) / 2)


def test_upper_and_lower_bounds_bracket_a_trained_model():
    model, x, _ = toy_binary_model()
    upper = lipnet.lipschitz_upper_bound(model, (20,))
    lower = lipnet.lipschitz_lower_bound(model, x[:32])
    assert lower <= upper + 1e-4
    assert upper <= 1 + 1e-3
    assert lower >= 0.9  # hKR + GNP layers: the gradient norm is ~1 almost everywhere
    report = lipnet.check_lipschitz(model, (20,), x[:8])
    assert report["sound"] and report["declared"] == 1.0


def test_upper_bound_of_a_plain_network_is_the_product_of_norms():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    expected = torch.linalg.matrix_norm(
        net[0].weight.detach(), 2
    ) * torch.linalg.matrix_norm(net[2].weight.detach(), 2)
    assert lipnet.lipschitz_upper_bound(net, (6,)) == pytest.approx(
        float(expected), rel=1e-5
    )


def _conv_matrix(conv: nn.Conv2d, n: int) -> torch.Tensor:
    """The dense matrix of a convolution on n × n inputs, column by column."""
    eye = torch.eye(conv.in_channels * n * n).reshape(-1, conv.in_channels, n, n)
    with torch.no_grad():
        out = conv._conv_forward(eye, conv.weight, None)
    return out.reshape(conv.in_channels * n * n, -1).double()


@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
def test_conv_upper_bound_is_a_bound_at_the_real_input_size(padding_mode):
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=True, padding_mode=padding_mode)
    n = 6
    exact = float(torch.linalg.matrix_norm(_conv_matrix(conv, n), ord=2))
    model = nn.Sequential(conv)
    upper = lipnet.lipschitz_upper_bound(model, (2, n, n))
    estimate = lipnet.certify.lipschitz_estimate(model, (2, n, n))
    assert estimate == pytest.approx(exact, rel=1e-5)  # from below, converged
    assert upper >= exact * (1 - 1e-12)
    if padding_mode == "circular":  # the torus is the real operator: exact
        assert upper == pytest.approx(exact, rel=1e-6)
    else:  # the 7 × 7 torus that embeds the zero-padded 6 × 6 conv
        assert upper <= 1.25 * exact


def test_upper_bound_is_never_below_the_power_iteration_estimate():
    """Power iteration converges from below; the bound must sit above it."""
    model = lipnet.load(ZOO / "mnist08-hkr")
    shape = model.input_shape
    upper = lipnet.lipschitz_upper_bound(model, shape)
    assert upper >= lipnet.certify.lipschitz_estimate(model, shape)
    assert upper <= 1 + 1e-5


class _LyingLayer(nn.Linear, LipschitzLayer):
    """Declares 1-Lipschitz but is not: the check must catch it."""

    lipschitz = 1.0


def test_unsound_model_is_reported():
    layer = _LyingLayer(4, 1)
    with torch.no_grad():
        layer.weight.fill_(1.0)  # norm 2
    model = lipnet.LipSequential(layer, head="binary")
    report = lipnet.check_lipschitz(model, (4,))
    assert report["upper_bound"] == pytest.approx(2.0, rel=1e-5)
    assert report["sound"] is False
