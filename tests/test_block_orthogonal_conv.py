"""BlockOrthogonalConv2d: orthogonal by construction (every singular value of
the exact Jacobian is 1), rigorously bounded, exported exactly, stored and
loaded, and the default convolution of GNP networks."""

from __future__ import annotations

import pytest
import torch

import lipnet
from lipnet.budget import check_budget
from lipnet.certify import lipschitz_upper_bound
from lipnet.errors import ModelFileError
from lipnet.export import _plain, export_folder
from lipnet.layers import BlockOrthogonalConv2d
from lipnet.models import build_model
from lipnet.precision import to_float64
from lipnet.rounding import layer_rounding

GNP = {
    "kind": "gnp",
    "channels": [12, 24],
    "convs_per_stage": 2,
    "widths": [32],
    "head": "frobenius",
}


def _trained_like(layer: BlockOrthogonalConv2d, seed: int) -> BlockOrthogonalConv2d:
    """A layer with random (far from initial) parameters and bias, as after training."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(3 * torch.randn(p.shape, generator=gen))
    return layer


def _jacobian(layer: BlockOrthogonalConv2d) -> torch.Tensor:
    """The exact matrix of the layer without its bias, in float64."""
    cin, (h, w) = layer.in_channels, layer.input_size
    eye = torch.eye(cin * h * w, dtype=torch.float64).reshape(-1, cin, h, w)
    layer = layer.double()
    with torch.no_grad():
        y = layer(eye) - (0 if layer.bias is None else layer.bias[:, None, None])
    return y.flatten(1).T  # (cout·h·w, cin·h·w)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(
    ("cin", "cout", "kernel", "size"),
    [(6, 6, 3, 5), (12, 4, 3, 4), (4, 12, 3, 4), (3, 3, 5, 6), (5, 3, (3, 1), 4)],
)
def test_every_singular_value_is_one(cin, cout, kernel, size, training):
    layer = _trained_like(BlockOrthogonalConv2d(cin, cout, kernel, size), cin + cout)
    layer.train(training)
    s = torch.linalg.svdvals(_jacobian(layer))
    rank = min(cin, cout) * size * size
    assert s.shape[0] == rank
    assert float(s.max()) <= 1.0
    assert float(s.min()) >= 1 - 1e-4
    # The same holds for the float32 layer as trained, measured on real inputs.
    layer = layer.float()
    x = torch.randn(5, cin, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = layer(x) - layer.bias[:, None, None]
    ratio = y.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    if cout >= cin:
        assert torch.allclose(ratio, torch.ones(5), atol=1e-4)
    else:
        assert float(ratio.max()) <= 1.0


def test_training_and_eval_compute_the_same_map():
    for cin, cout in [(8, 3), (3, 8), (5, 5)]:
        layer = _trained_like(BlockOrthogonalConv2d(cin, cout, 3, 6), seed=cin)
        x = torch.randn(4, cin, 6, 6)
        factored = layer.train()(x)
        with torch.no_grad():
            composed = layer.eval()(x)
        assert torch.allclose(factored, composed, atol=1e-5)


@pytest.mark.parametrize(("cin", "cout"), [(4, 6), (6, 4), (5, 5)])
def test_rigorous_bound_and_exact_export(cin, cout):
    layer = _trained_like(BlockOrthogonalConv2d(cin, cout, 3, 7), seed=cin * cout)
    layer.eval()
    bound = lipschitz_upper_bound(torch.nn.Sequential(layer), (cin, 7, 7))
    exact = float(torch.linalg.svdvals(_jacobian(layer)).max())
    assert exact <= bound <= 1.0
    assert bound == pytest.approx(exact, abs=1e-6)
    layer = layer.float()
    plain = _plain(layer)
    assert type(plain) is torch.nn.Conv2d and plain.padding_mode == "circular"
    assert plain.kernel_size == (3, 3)
    x = torch.rand(3, cin, 7, 7)
    with torch.no_grad():
        assert torch.allclose(plain(x), layer(x), atol=1e-6)
    bound_plain = lipschitz_upper_bound(torch.nn.Sequential(plain), (cin, 7, 7))
    assert bound_plain == pytest.approx(bound, abs=1e-6)


def test_k_scales_the_map_and_its_bound():
    layer = _trained_like(BlockOrthogonalConv2d(4, 4, 3, 5, k=2.5), seed=3).eval()
    s = torch.linalg.svdvals(_jacobian(layer))
    assert torch.allclose(s, torch.full_like(s, 2.5), atol=1e-4)
    bound = lipschitz_upper_bound(torch.nn.Sequential(layer), (4, 5, 5))
    assert float(s.max()) <= bound <= 2.5


def test_rounding_model_covers_the_float32_layer():
    layer = _trained_like(BlockOrthogonalConv2d(6, 4, 3, 5), seed=9).eval()
    x = torch.rand(1, 6, 5, 5, dtype=torch.float64)
    entry = layer_rounding(layer.double(), x, 1.0)
    assert entry.terms == 6 * 9 + 1
    assert entry.gain >= 1.0


def test_a_gnp_network_keeps_gradient_norm_one_and_survives_save_load(tmp_path):
    torch.manual_seed(0)
    model = build_model(GNP, (3, 16, 16), ["no", "yes"])
    convs = [m for m in model if isinstance(m, BlockOrthogonalConv2d)]
    assert len(convs) == 4
    for i, m in enumerate(convs):
        _trained_like(m, seed=i)
    model.eval()
    x = torch.rand(8, 3, 16, 16, requires_grad=True)
    (g,) = torch.autograd.grad(model(x).sum(), x)
    assert torch.allclose(g.flatten(1).norm(dim=1), torch.ones(8), atol=1e-3)
    assert 0.999 <= lipschitz_upper_bound(model, model.input_shape) <= 1.0
    lipnet.save(model, tmp_path / "m", card={}, name="gnp-block")
    loaded = lipnet.load(tmp_path / "m")
    assert loaded.lipschitz_check["sound"] is True
    with torch.no_grad():
        # Loaded in float64 with the float32-built kernels: the same function
        # (up to the float32 rounding of `model` itself).
        assert torch.allclose(loaded(x), model(x), atol=2e-5)
        export_folder(loaded, tmp_path / "plain")
        plain = lipnet.load(tmp_path / "plain")
        assert not any(isinstance(m, BlockOrthogonalConv2d) for m in plain)
        assert torch.allclose(plain(x), model(x), atol=2e-5)
    assert plain.lipschitz_check["sound"] is True


def test_float64_copy_keeps_the_float32_kernel():
    layer = _trained_like(BlockOrthogonalConv2d(6, 4, 3, 5), seed=2).eval()
    built = layer.kernel().clone()
    model = to_float64(torch.nn.Sequential(layer))
    assert model[0].kernel().dtype == torch.float64
    assert torch.equal(model[0].kernel(), built.double())


def test_wrong_sizes_are_refused_before_and_after_building():
    layer = BlockOrthogonalConv2d(3, 3, 3, 8)
    with pytest.raises(ValueError, match="expects inputs of 3x8x8"):
        layer(torch.rand(1, 3, 9, 9))
    with pytest.raises(ValueError, match="expects inputs of 3x8x8"):
        layer(torch.rand(1, 4, 8, 8))
    with pytest.raises(ValueError, match="larger than the input"):
        BlockOrthogonalConv2d(3, 3, 9, 8)
    with pytest.raises(ValueError, match="odd"):
        BlockOrthogonalConv2d(3, 3, 2, 8)
    spec = {
        "input_shape": [3, 16, 16],
        "layers": [
            {
                "type": "BlockOrthogonalConv2d",
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
    spec["layers"][0]["args"]["input_size"] = [16, 16]
    spec["layers"][0]["args"]["kernel_size"] = [4, 4]
    with pytest.raises(ModelFileError, match="odd"):
        check_budget(spec)


def test_a_globally_pooled_gnp_moves_its_gradient_with_the_input(tmp_path):
    """`global_pool`: the trunk's grid is L2-pooled, so a circular shift by a
    multiple of the total stride (low-pass 2 × one space-to-depth = 4) leaves
    the score unchanged and shifts the input gradient, hence the transport
    counterfactual, exactly; a 2-pixel shift (half a cell) does not."""
    torch.manual_seed(0)
    arch = {**GNP, "channels": [16], "convs_per_stage": 3, "low_pass": 2}
    model = build_model({**arch, "global_pool": True}, (3, 16, 16), ["no", "yes"])
    for i, m in enumerate(model):
        if isinstance(m, BlockOrthogonalConv2d):
            _trained_like(m, seed=i)
    model.eval()
    assert 0.999 <= lipschitz_upper_bound(model, model.input_shape) <= 1.0
    x = torch.rand(4, 3, 16, 16, dtype=torch.float64)
    net = to_float64(model)

    def score_and_gradient(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = inputs.clone().requires_grad_(True)
        score = net(inputs).sum()
        return score.detach(), torch.autograd.grad(score, inputs)[0]

    score, grad = score_and_gradient(x)
    for shift, exact in [(4, True), (8, True), (2, False)]:
        moved = torch.roll(x, (shift, shift), dims=(-2, -1))
        moved_score, moved_grad = score_and_gradient(moved)
        expected = torch.roll(grad, (shift, shift), dims=(-2, -1))
        cosine = torch.nn.functional.cosine_similarity(
            moved_grad.flatten(1), expected.flatten(1), dim=1
        )
        if exact:
            assert torch.allclose(moved_score, score, atol=1e-10)
            assert float(cosine.min()) > 1 - 1e-10
        else:
            assert float(cosine.max()) < 0.99
    lipnet.save(model, tmp_path / "m", card={}, name="gnp-pooled")
    loaded = lipnet.load(tmp_path / "m")
    assert loaded.lipschitz_check["sound"] is True
    export_folder(loaded, tmp_path / "plain")
    plain = lipnet.load(tmp_path / "plain")
    with torch.no_grad():
        assert torch.allclose(plain(x.float()), model(x.float()), atol=2e-5)
