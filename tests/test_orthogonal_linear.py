"""OrthogonalLinear: orthonormal rows or columns by one Cholesky factorization,
the same map in training and eval, rigorous bound, export and storage."""

from __future__ import annotations

import pytest
import torch

import lipnet
from lipnet.certify import lipschitz_upper_bound
from lipnet.export import _plain
from lipnet.layers import OrthogonalLinear


def _trained_like(layer: OrthogonalLinear, seed: int) -> OrthogonalLinear:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        original = layer.parametrizations["weight"].original
        original.copy_(torch.randn(original.shape, generator=gen))
        layer.bias.normal_(generator=gen)
    return layer


@pytest.mark.parametrize(("n_in", "n_out"), [(40, 8), (8, 40), (16, 16)])
def test_singular_values_are_one_and_training_matches_eval(n_in, n_out):
    layer = _trained_like(OrthogonalLinear(n_in, n_out), seed=n_in)
    x = torch.randn(6, n_in)
    trained = layer.train()(x)
    with torch.no_grad():
        evaluated = layer.eval()(x)
        s = torch.linalg.svdvals(layer.weight.double())
    assert torch.allclose(trained, evaluated, atol=1e-5)
    assert float(s.max()) <= 1 + 1e-6
    assert float(s.min()) >= 1 - 1e-4
    bound = lipschitz_upper_bound(torch.nn.Sequential(layer), (n_in,))
    assert bound == pytest.approx(float(s.max()), abs=1e-6)


def test_k_scales_the_map():
    layer = _trained_like(OrthogonalLinear(12, 5, k=3.0), seed=1).eval()
    s = torch.linalg.svdvals(layer.scaled_weight().double())
    assert torch.allclose(s, torch.full_like(s, 3.0), atol=1e-4)
    x = torch.randn(4, 12)
    assert torch.allclose(layer.train()(x), layer.eval()(x), atol=1e-5)


def test_a_rank_deficient_weight_stays_below_one():
    layer = OrthogonalLinear(10, 4)
    with torch.no_grad():
        original = layer.parametrizations["weight"].original
        original.copy_(torch.ones(4, 10))  # rank one: the first ridge fails
    x = torch.randn(3, 10)
    assert torch.isfinite(layer.train()(x)).all()
    with torch.no_grad():
        s = torch.linalg.svdvals(layer.eval().weight.double())
    assert float(s.max()) <= 1 + 1e-6


def test_export_save_and_load(tmp_path):
    torch.manual_seed(0)
    layer = _trained_like(OrthogonalLinear(48, 6), seed=3).eval()
    plain = _plain(layer)
    assert type(plain) is torch.nn.Linear
    x = torch.randn(5, 48)
    with torch.no_grad():
        assert torch.allclose(plain(x), layer(x), atol=1e-6)
    model = lipnet.LipSequential(
        lipnet.Flatten(),
        layer,
        lipnet.GroupSort2(),
        lipnet.FrobeniusLinear(6, 1),
        input_shape=(3, 4, 4),
        classes=["a", "b"],
    ).eval()
    x = torch.rand(5, 3, 4, 4)
    lipnet.save(model, tmp_path / "m", card={}, name="orthogonal-linear")
    loaded = lipnet.load(tmp_path / "m")
    assert loaded.lipschitz_check["sound"] is True
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)


def test_the_gram_matrix_has_autograds_gradients_first_and_second_order():
    from lipnet.layers.orthogonal_linear import gram

    gen = torch.Generator().manual_seed(5)
    a = torch.randn(4, 7, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(gram, (a,))
    assert torch.autograd.gradgradcheck(gram, (a,))
    weights = torch.randn(4, 4, dtype=torch.float64, generator=gen)
    (ours,) = torch.autograd.grad((gram(a) * weights).sum(), a)
    (theirs,) = torch.autograd.grad(((a @ a.mT) * weights).sum(), a)
    assert torch.allclose(ours, theirs, atol=1e-12)
