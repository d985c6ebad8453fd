"""Attributions through captum, for the hKR model and its unconstrained twin."""

from __future__ import annotations

import pytest
import torch

from lipnet.attacks import AttackError
from lipnet.explain import ATTRIBUTIONS, attribute, baseline_for


@pytest.mark.parametrize("name", ["mnist08-hkr", "mnist08-baseline", "mnist10-hkr"])
@pytest.mark.parametrize("method", ATTRIBUTIONS)
def test_attributions_have_the_input_shape(load_model, mnist_test, name, method):
    model = load_model(name)
    x = mnist_test[0][:3]
    a = attribute(model, x, method)
    assert a.shape == x.shape and torch.isfinite(a).all() and a.abs().sum() > 0


def test_saliency_is_the_gradient_of_the_predicted_class(load_model, mnist08_test):
    model = load_model("mnist08-hkr")
    x = mnist08_test[0][:4].clone().requires_grad_(True)
    out = model(x)[:, 0]
    (g,) = torch.autograd.grad(out.sum(), x)
    sign = torch.where(out > 0, 1.0, -1.0).view(-1, 1, 1, 1)
    a = attribute(model, x.detach(), "saliency")
    assert torch.allclose(a, g * sign, atol=1e-6)
    # hKR + GNP layers: the gradient has unit norm.
    assert torch.allclose(a.flatten(1).norm(dim=1), torch.ones(4), atol=1e-3)


def test_integrated_gradients_completeness(load_model, mnist08_test):
    """IG sums to f(x) − f(baseline) for the attributed class."""
    model = load_model("mnist08-hkr")
    x = mnist08_test[0][:2]
    a = attribute(model, x, "integrated_gradients", baseline="black", n_steps=200)
    with torch.no_grad():
        f = model(x)[:, 0]
        f0 = model(torch.zeros_like(x))[:, 0]
    sign = torch.where(f > 0, 1.0, -1.0)
    assert torch.allclose(a.flatten(1).sum(1), sign * (f - f0), atol=0.05)


def test_baselines_and_errors(mnist08_test):
    x = mnist08_test[0][:1]
    for kind in ("black", "white", "gray", "blur"):
        b = baseline_for(x, kind)
        assert b.shape == x.shape
    with pytest.raises(AttackError, match="unknown baseline"):
        baseline_for(x, "purple")


def test_unknown_attribution(load_model, mnist08_test):
    with pytest.raises(AttackError, match="unknown attribution"):
        attribute(load_model("mnist08-hkr"), mnist08_test[0][:1], "lime")
