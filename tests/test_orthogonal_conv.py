"""OrthogonalConv2d: orthogonal by construction, strictly bounded, exact export,
and a network of them preserves the gradient norm (the hKR transport step)."""

from __future__ import annotations

import pytest
import torch

import lipnet
from lipnet.budget import check_budget
from lipnet.certify import lipschitz_upper_bound
from lipnet.errors import ModelFileError
from lipnet.export import _plain, export_folder
from lipnet.layers import OrthogonalConv2d
from lipnet.models import build_model

GNP = {
    "kind": "gnp",
    "conv": "cayley",
    "linear": "spectral",
    "channels": [12, 24],
    "convs_per_stage": 2,
    "widths": [32],
    "head": "frobenius",
}


def _trained_like(layer: OrthogonalConv2d, seed: int) -> OrthogonalConv2d:
    """A layer far from its identity-like start, as after training."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
        layer.scale.fill_(3.0)
        layer.bias.normal_(generator=gen)
    return layer.eval()


@pytest.mark.parametrize(
    ("cin", "cout", "size"), [(6, 6, 8), (12, 4, 8), (4, 12, 6), (3, 3, 7)]
)
def test_every_singular_value_is_one_and_never_above(cin, cout, size):
    layer = _trained_like(OrthogonalConv2d(cin, cout, 3, size), seed=cin + cout)
    q = layer.frequency_matrices().to(torch.complex128)
    s = torch.linalg.svdvals(q)
    assert float(s.max()) <= 1.0
    assert float(s.min()) >= 1 - 3e-5
    # Measured on real inputs: an isometry (cout ≥ cin) keeps every norm.
    x = torch.randn(5, cin, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = layer(x) - layer.bias[:, None, None]
    ratio = y.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    if cout >= cin:
        assert torch.allclose(ratio, torch.ones(5), atol=3e-5)
    else:
        assert float(ratio.max()) <= 1.0


@pytest.mark.parametrize("size", [8, 7])
def test_export_to_a_plain_circular_conv_is_exact(size):
    layer = _trained_like(OrthogonalConv2d(4, 6, 3, size), seed=size)
    plain = _plain(layer)
    assert isinstance(plain, torch.nn.Conv2d) and plain.padding_mode == "circular"
    x = torch.rand(3, 4, size, size)
    assert torch.allclose(plain(x), layer(x), atol=1e-5)
    # The plain conv's rigorous bound (a kernel wider than the grid, folded
    # onto the torus) is the layer's own.
    bound_plain = lipschitz_upper_bound(torch.nn.Sequential(plain), (4, size, size))
    bound_layer = lipschitz_upper_bound(torch.nn.Sequential(layer), (4, size, size))
    assert bound_plain == pytest.approx(bound_layer, abs=1e-6)
    assert bound_layer <= 1.0


def test_a_gnp_network_keeps_gradient_norm_one_and_its_certificate():
    torch.manual_seed(0)
    model = build_model(GNP, (3, 16, 16), ["no", "yes"])
    for m in model:
        if isinstance(m, OrthogonalConv2d):
            _trained_like(m, seed=7)
    model.eval()
    x = torch.rand(16, 3, 16, 16, requires_grad=True)
    (g,) = torch.autograd.grad(model(x).sum(), x)
    norms = g.flatten(1).norm(dim=1)
    assert torch.allclose(norms, torch.ones(16), atol=1e-3)
    upper = lipschitz_upper_bound(model, model.input_shape)
    assert 0.999 <= upper <= 1.0
    # Soundness on pairs: |f(x) − f(y)| ≤ ‖x − y‖.
    with torch.no_grad():
        y = x + 0.3 * torch.randn_like(x)
        gap = (model(x) - model(y)).abs().squeeze(1)
        assert bool((gap <= (x - y).flatten(1).norm(dim=1) + 1e-6).all())


def test_save_load_and_plain_export_round_trip(tmp_path):
    torch.manual_seed(1)
    model = build_model(GNP, (3, 16, 16), ["no", "yes"]).eval()
    lipnet.save(model, tmp_path / "m", card={}, name="gnp")
    loaded = lipnet.load(tmp_path / "m")
    assert loaded.lipschitz_check["sound"] is True
    x = torch.rand(4, 3, 16, 16)
    # Loaded in float64 with the float32-built spectra: the same function.
    assert torch.allclose(loaded(x), model(x), atol=1e-6)
    export_folder(loaded, tmp_path / "plain")
    plain = lipnet.load(tmp_path / "plain")
    assert not any(isinstance(m, OrthogonalConv2d) for m in plain)
    assert torch.allclose(plain(x), model(x), atol=1e-5)
    assert plain.lipschitz_check["sound"] is True


def test_wrong_input_size_is_refused_before_and_after_building():
    layer = OrthogonalConv2d(3, 3, 3, 8)
    with pytest.raises(ValueError, match="expects inputs of 3x8x8"):
        layer(torch.rand(1, 3, 9, 9))
    with pytest.raises(ValueError, match="larger than the input"):
        OrthogonalConv2d(3, 3, 9, 8)
    spec = {
        "input_shape": [3, 16, 16],
        "layers": [
            {
                "type": "OrthogonalConv2d",
                "args": {
                    "in_channels": 3,
                    "out_channels": 3,
                    "kernel_size": [3, 3],
                    "input_size": [8, 8],
                },
            }
        ],
    }
    with pytest.raises(ModelFileError, match="expects inputs of"):
        check_budget(spec)


def test_a_low_pass_gnp_network_changes_whole_blocks_and_keeps_norm_one():
    """ScaledAvgPool2d first: still ‖∇f‖ = 1, and every gradient (so every
    transport counterfactual) is constant on 2×2 blocks, with no checkerboard."""
    torch.manual_seed(2)
    model = build_model({**GNP, "low_pass": 2}, (3, 32, 32), ["no", "yes"]).eval()
    x = torch.rand(8, 3, 32, 32, requires_grad=True)
    (g,) = torch.autograd.grad(model(x).sum(), x)
    assert torch.allclose(g.flatten(1).norm(dim=1), torch.ones(8), atol=1e-3)
    blocks = g.unfold(2, 2, 2).unfold(3, 2, 2)  # (N, C, 16, 16, 2, 2)
    spread = blocks.amax(dim=(-2, -1)) - blocks.amin(dim=(-2, -1))
    assert float(spread.abs().max()) < 1e-6
    assert lipschitz_upper_bound(model, model.input_shape) <= 1.0
