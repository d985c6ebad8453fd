"""Every registered layer type describes itself: budget, export, bound, rounding.

The library asks a layer (`lipnet.layers.protocol`) instead of branching on
its type, so one generic check per question covers every entry of
`lipnet.registry.REGISTRY`: the build cost the budget counts before
anything is built matches the model that is built, the plain export
computes the same function, the rigorous bound is an upper bound and within
the declared constant, and the rounding model exists. `check_layer_kind`
is what `tests/test_extension_points.py` runs on a toy layer too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

import lipnet
from lipnet.budget import check_budget
from lipnet.certify import layer_norms, lipschitz_estimate, lipschitz_upper_bound
from lipnet.export import vanilla_export
from lipnet.io import model_spec
from lipnet.layers import LipschitzLayer
from lipnet.registry import REGISTRY
from lipnet.rounding import rounding_profile

IMAGE = (2, 6, 6)
FLAT = (8,)
EXAMPLES: dict[str, tuple[tuple[int, ...], Callable[[], nn.Module]]] = {
    "SpectralLinear": (FLAT, lambda: lipnet.SpectralLinear(8, 4)),
    "AOLLinear": (FLAT, lambda: lipnet.AOLLinear(8, 4)),
    "OrthogonalLinear": (FLAT, lambda: lipnet.OrthogonalLinear(8, 4)),
    "FrobeniusLinear": (FLAT, lambda: lipnet.FrobeniusLinear(8, 3)),
    "SpectralConv2d": (IMAGE, lambda: lipnet.SpectralConv2d(2, 3, 3, input_size=6)),
    "OrthogonalConv2d": (IMAGE, lambda: lipnet.OrthogonalConv2d(2, 3, 3, input_size=6)),
    "BlockOrthogonalConv2d": (
        IMAGE,
        lambda: lipnet.BlockOrthogonalConv2d(2, 4, 3, input_size=6),
    ),
    "AOLConv2d": (IMAGE, lambda: lipnet.AOLConv2d(2, 3, 3)),
    "GroupSort": (FLAT, lambda: lipnet.GroupSort(4)),
    "GroupSort2": (FLAT, lambda: lipnet.GroupSort2()),
    "FullSort": (FLAT, lambda: lipnet.FullSort()),
    "MaxMin": (FLAT, lambda: lipnet.MaxMin()),
    "ScaledL2NormPool2d": (IMAGE, lambda: lipnet.ScaledL2NormPool2d(2)),
    "ScaledAvgPool2d": (IMAGE, lambda: lipnet.ScaledAvgPool2d(2)),
    "InvertibleDownSampling": (IMAGE, lambda: lipnet.InvertibleDownSampling(2)),
    "LipFlatten": (IMAGE, lambda: lipnet.Flatten()),
    "Linear": (FLAT, lambda: nn.Linear(8, 4)),
    "Conv2d": (IMAGE, lambda: nn.Conv2d(2, 3, 3, padding=1)),
    "ReLU": (FLAT, lambda: nn.ReLU()),
    "Flatten": (IMAGE, lambda: nn.Flatten()),
    "MaxPool2d": (IMAGE, lambda: nn.MaxPool2d(2)),
    "AvgPool2d": (IMAGE, lambda: nn.AvgPool2d(2)),
    "Dropout": (FLAT, lambda: nn.Dropout(0.5)),
    "PixelUnshuffle": (IMAGE, lambda: nn.PixelUnshuffle(2)),
}
"""Every registered type: the input shape it takes and a small instance."""


def example_model(layer: nn.Module, shape: tuple[int, ...]) -> lipnet.LipSequential:
    """`layer` alone (then flattened if it outputs an image), as a savable model."""
    with torch.no_grad():
        image_out = layer.eval()(torch.zeros(1, *shape)).dim() == 4
    layers = [layer, lipnet.Flatten()] if image_out else [layer]
    return lipnet.LipSequential(*layers, input_shape=shape, head="none").eval()


def check_layer_kind(layer: nn.Module, shape: tuple[int, ...]) -> None:
    """The generic checks: budget, export, bound and rounding of one layer."""
    model = example_model(layer, shape)
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(1))

    # The budget, worked out from the spec alone, is the model that is built.
    budget = check_budget(model_spec(model))
    state = sum(t.numel() for t in model.state_dict().values())
    assert budget.parameters == state
    with torch.no_grad():
        shapes = [tuple(model[: i + 1](x[:1]).shape[1:]) for i in range(len(model))]
    assert budget.shapes == shapes

    # The plain export computes the same function with plain layers only.
    plain = vanilla_export(model)
    assert not any(hasattr(m, "parametrizations") for m in plain.modules())
    with torch.no_grad():
        assert torch.allclose(plain(x), model(x), atol=1e-5)

    # The rigorous bound is above the power-iteration estimate (an isometry's
    # estimate is its declared constant, which a float margin of 1e-5 keeps
    # just above its norm), and within the declared constant of a lipnet layer.
    upper = lipschitz_upper_bound(model, shape)
    assert math.isfinite(upper)
    assert upper >= lipschitz_estimate(model, shape) * (1 - 1e-4)
    if isinstance(layer, LipschitzLayer):
        assert upper <= model.lipschitz_constant * (1 + 1e-3)

    # Every layer has a rounding model, finite on this input.
    norms = [n for _, n in layer_norms(model, shape)]
    profile = rounding_profile(model, shape, norms)
    assert all(math.isfinite(r.gain) and r.terms >= 0 for r in profile.layers)


def test_every_registered_type_has_an_example():
    assert set(EXAMPLES) == set(REGISTRY)
    for name, (_, make) in EXAMPLES.items():
        assert isinstance(make(), REGISTRY[name][0])


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_a_registered_layer_describes_itself(name):
    shape, make = EXAMPLES[name]
    torch.manual_seed(0)
    check_layer_kind(make(), shape)
