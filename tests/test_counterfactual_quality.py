"""Counterfactual quality measurements on tiny synthetic cases with known answers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import lipnet
from lipnet.attacks.quality import (
    LowPass,
    counterfactual_quality,
    high_frequency_share,
    judge_validity,
    low_pass,
    luminance_share,
    noise_control,
    radial_frequency,
    specificity,
    template_control,
)
from lipnet.models import build_model

ROOT = Path(__file__).resolve().parents[1]


def test_specificity_identical_changes_is_one():
    d = torch.randn(1, 3, 8, 8).expand(5, -1, -1, -1) * torch.arange(1.0, 6.0).view(
        5, 1, 1, 1
    )
    assert specificity(d) == pytest.approx(1.0, abs=1e-9)


def test_specificity_orthogonal_changes_is_zero():
    d = torch.eye(6).view(6, 1, 2, 3) * 3.0
    assert specificity(d) == pytest.approx(0.0, abs=1e-12)


def test_specificity_opposite_pair_and_bad_input():
    d = torch.stack([torch.ones(4), -torch.ones(4)])
    assert specificity(d) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        specificity(torch.ones(1, 4))


def test_luminance_share_grey_chroma_and_mono():
    grey = torch.randn(4, 1, 5, 5).expand(-1, 3, -1, -1)
    assert luminance_share(grey) == pytest.approx(1.0)
    chroma = torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1, 1) * torch.rand(4, 1, 5, 5)
    assert luminance_share(chroma) == pytest.approx(0.0, abs=1e-12)
    assert luminance_share(torch.randn(3, 1, 4, 4)) == 1.0
    # Half grey, half chroma energy (orthogonal pixels): 0.5 per input.
    mix = torch.zeros(2, 3, 1, 2)
    mix[:, :, 0, 0] = 1.0 / math.sqrt(3)
    mix[:, :, 0, 1] = torch.tensor([1.0, -1.0, 0.0]) / math.sqrt(2)
    per = luminance_share(mix, reduce=False)
    assert torch.allclose(per, torch.full((2,), 0.5, dtype=per.dtype))


def test_luminance_share_of_rgb_noise_is_a_third():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(8, 3, 32, 32, generator=g)
    assert luminance_share(noise) == pytest.approx(1 / 3, abs=0.02)


def test_high_frequency_share_white_noise_matches_area_fraction():
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(16, 3, 32, 32, generator=g)
    area = float((radial_frequency(32, 32) > 0.25).double().mean())
    assert area == pytest.approx(1 - math.pi * 0.25**2 / 4, abs=0.01)
    assert high_frequency_share(noise) == pytest.approx(area, abs=0.01)


def test_high_frequency_share_smooth_blob_is_near_zero():
    r = torch.arange(32.0) - 15.5
    blob = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 5.0**2))
    d = blob.expand(2, 3, -1, -1)
    assert high_frequency_share(d) < 1e-3
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2.0 - 1
    assert high_frequency_share(checker.view(1, 1, 8, 8).float()) == pytest.approx(1)


def test_low_pass_of_a_constant_is_the_constant():
    x = torch.full((2, 3, 8, 8), 0.37)
    y = low_pass(x, 2)
    assert y.shape == (2, 3, 4, 4)
    assert torch.allclose(y, torch.full_like(y, 0.37))
    assert torch.equal(LowPass(4)(x), low_pass(x, 4))


class _Linear(nn.Module):
    """A hand-made judge: one logit, the mean of the first pixel row minus 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, :].mean(1, keepdim=True) - 0.5


def test_judge_validity_binary_and_multiclass():
    x = torch.zeros(10, 1, 4, 4)
    x[:7] = 1.0  # seven judged class 1, three class 0
    assert judge_validity(_Linear(), x, 1) == pytest.approx(0.7)
    assert judge_validity(_Linear(), x, 0) == pytest.approx(0.3)
    scores = nn.Sequential(nn.Flatten(), nn.Linear(16, 3, bias=False))
    with torch.no_grad():
        scores[1].weight.zero_()
        scores[1].weight[2] = 1.0  # class 2 wins on any bright image
    x[:4] = 0.0
    x[4:] = 0.5
    targets = torch.tensor([0] * 10)
    # Dark images tie at 0: argmax picks class 0; bright ones go to class 2.
    assert judge_validity(scores, x, targets) == pytest.approx(0.4)
    assert judge_validity(scores, x, 2) == pytest.approx(0.6)


def test_noise_control_has_the_requested_norms_and_is_seeded():
    x = torch.rand(5, 3, 6, 6)
    norms = torch.tensor([0.5, 1.0, 2.0, 0.1, 3.0])
    a = noise_control(x, norms, torch.Generator().manual_seed(3))
    b = noise_control(x, norms, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.allclose((a - x).flatten(1).norm(dim=1), norms, atol=1e-5)
    clipped = noise_control(x, norms, torch.Generator().manual_seed(3), clip=True)
    assert clipped.min() >= 0 and clipped.max() <= 1


def test_template_control_has_the_requested_norms_and_one_direction():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(6, 3, 5, 5, generator=g)
    deltas = torch.randn(6, 3, 5, 5, generator=g) + 0.3
    out = template_control(x, deltas)
    changes = out - x
    norms = deltas.flatten(1).norm(dim=1)
    assert torch.allclose(changes.flatten(1).norm(dim=1), norms, atol=1e-5)
    assert specificity(changes) == pytest.approx(1.0, abs=1e-6)
    mean = deltas.mean(0).flatten()
    cos = torch.nn.functional.cosine_similarity(changes[0].flatten(), mean, dim=0)
    assert float(cos) == pytest.approx(1.0, abs=1e-6)


def test_counterfactual_quality_on_a_tiny_lipschitz_model():
    torch.manual_seed(0)
    model = build_model({"kind": "dense", "widths": [16]}, (1, 8, 8), ["a", "b"])
    twin = build_model({"kind": "plain-dense", "widths": [16]}, (1, 8, 8), ["a", "b"])
    model.eval()
    twin.eval()
    judge = nn.Sequential(LowPass(2), _Linear())
    x = torch.rand(24, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        # Put all but two inputs on the "a" side of both models (target 1, "b").
        for net in (model, twin):
            out = net(x)[:, 0]
            net[-1].bias -= out.sort().values[-3] + 0.01
    r = counterfactual_quality(model, x, judge, 1, twin=twin)
    keys = {
        "n",
        "n_excluded",
        "validity",
        "noise_validity",
        "template_validity",
        "twin_validity",
        "flip_rate",
        "judge_base_rate",
        "specificity",
        "luminance_share",
        "high_frequency_share",
        "mean_l2",
        "twin",
    }
    assert keys <= set(r)
    assert r["n"] + r["n_excluded"] == len(x)
    assert r["n_excluded"] >= 2  # the inputs either model already calls "b"
    for k in (
        "validity",
        "noise_validity",
        "template_validity",
        "twin_validity",
        "flip_rate",
        "judge_base_rate",
        "high_frequency_share",
    ):
        assert 0.0 <= r[k] <= 1.0, k
    assert -1.0 <= r["specificity"] <= 1.0
    assert r["luminance_share"] == 1.0  # one channel
    assert r["mean_l2"] > 0
    assert r["flip_rate"] > 0.5
    assert r["twin"]["flip_rate"] > 0.5
    for k in ("validity", "specificity", "high_frequency_share", "mean_l2"):
        assert k in r["twin"]
    without = counterfactual_quality(model, x, judge, 1, method="deepfool")
    assert "twin" not in without and "twin_validity" not in without


def test_overshoot_one_lands_as_far_past_the_boundary():
    """A linear 1-Lipschitz model (exact, unit gradient), box not binding: the
    transport counterfactual with overshoot 1 ends at margin −m(x), ‖δ‖ = 2|m(x)|."""
    torch.manual_seed(1)
    model = build_model({"kind": "dense", "widths": []}, (1, 4, 4), ["a", "b"]).eval()
    x = 0.5 + 0.01 * torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = model(x)[:, 0]
        model[-1].bias -= before.max() + 0.02  # all "a", margins 0.02..0.1
        m0 = model(x)[:, 0].abs()
    judge = nn.Sequential(LowPass(2), _Linear())
    r = counterfactual_quality(model, x, judge, 1)
    assert r["n"] == 6 and r["flip_rate"] == 1.0
    assert r["mean_l2"] == pytest.approx(float(2 * m0.mean()), rel=1e-3)


def test_counterfactual_grid_changes_towards_the_positive_class():
    """Overshoot 1: each input ends as far past the boundary as it started,
    and the mean change points where the signed changes agree."""
    from lipnet.attacks.gallery import counterfactual_grid

    model = lipnet.load(ROOT / "assets" / "models" / "mnist08-hkr")
    x = torch.rand(6, 1, 28, 28) * 0.2
    x[:3, :, 8:20, 8:20] = 1.0  # three bright blobs, three dim squares
    g = counterfactual_grid(model, x, overshoot=1.0)
    before, after = model(g.x)[:, 0], model(g.x_cf)[:, 0]
    assert bool((torch.sign(before) != torch.sign(after)).all())
    assert torch.equal(g.towards, torch.where(before > 0, -1.0, 1.0))
    expected = (g.delta * g.towards[:, None, None, None]).mean(0)
    assert torch.allclose(g.mean_change, expected)
    with pytest.raises(ValueError, match="non-empty"):
        counterfactual_grid(model, x[:0])
