"""How lipnet bounds, rounds, exports and budgets plain torch layers.

Plain layers appear in unconstrained contrast models, in plain-layer exports
and in models imported from torch. They are not lipnet's to extend, so what
the `LipschitzLayer` protocol asks of a lipnet layer is answered for them
here, by type: dense and convolution layers share their rules with the
lipnet layers built on them (`linear`, `conv`, `pooling`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor, nn

from .base import LayerRounding
from .conv import conv_cost, conv_export, conv_norm, conv_rounding
from .cost import (
    Budget,
    dense_cost,
    flatten_cost,
    pair,
    pool_cost,
    same_shape,
    unshuffle_cost,
)
from .linear import dense_export, dense_norm, dense_rounding
from .pooling import avg_pool_norm, avg_pool_rounding, window_overlap

CONSTANTS: dict[type, float] = {
    nn.ReLU: 1.0,
    nn.LeakyReLU: 1.0,
    nn.Tanh: 1.0,
    nn.Sigmoid: 0.25,
    nn.Identity: 1.0,
    nn.Dropout: 1.0,
    nn.Flatten: 1.0,
    nn.PixelUnshuffle: 1.0,
}
"""Parameter-free layers whose Lipschitz constant is known exactly (by exact type)."""
SELECTING = (
    nn.ReLU,
    nn.Identity,
    nn.Dropout,
    nn.Flatten,
    nn.PixelUnshuffle,
    nn.MaxPool2d,
)
"""Layers that only select, reorder or compare values: they round nothing."""

FAMILIES = (nn.Linear, nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d, nn.LPPool2d)
"""Torch layers whose rules also hold for a subclass (a lipnet layer built on
one): dense and convolution layers are measured from their weight, pooling
from its window."""

BuildCost = Callable[[Mapping[str, Any], Tensor, Budget], Tensor]
BUILD_COSTS: dict[type, BuildCost] = {
    nn.Linear: dense_cost,
    nn.Conv2d: lambda a, x, budget: conv_cost(a, x, budget, same=False),
    nn.ReLU: same_shape,
    nn.Dropout: same_shape,
    nn.Flatten: flatten_cost,
    nn.MaxPool2d: pool_cost,
    nn.AvgPool2d: pool_cost,
    nn.PixelUnshuffle: lambda a, x, budget: unshuffle_cost(x, a["downscale_factor"]),
}
"""The build cost of each plain layer type a model file may name."""


def exact_constant(layer: nn.Module) -> float | None:
    """A plain layer's exact constant, None for an affine one to measure.

    Raises TypeError for a layer with no known bound.
    """
    const = CONSTANTS.get(type(layer))
    if const is not None:
        return const
    if isinstance(layer, nn.Linear | nn.Conv2d | nn.AvgPool2d):
        return None
    if isinstance(layer, nn.MaxPool2d | nn.LPPool2d):
        k = pair(layer.kernel_size)
        return math.sqrt(window_overlap(k, pair(layer.stride or k)))
    raise TypeError(f"no Lipschitz bound known for layer {type(layer).__name__}")


def operator_norm(layer: nn.Module, size: tuple[int, ...], per_neuron: bool) -> float:
    """A rigorous upper bound of a plain layer's L2 operator norm at input `size`."""
    if isinstance(layer, nn.Linear):
        return dense_norm(layer, per_neuron)
    if isinstance(layer, nn.Conv2d):
        return conv_norm(layer, size)
    if isinstance(layer, nn.AvgPool2d):
        return avg_pool_norm(layer.kernel_size, layer.stride, scaled=False)
    return exact_constant(layer)


def rounding(layer: nn.Module, x: Tensor, lipschitz: float) -> LayerRounding:
    """A plain layer's rounding model; TypeError for a layer without one."""
    if isinstance(layer, SELECTING):
        return LayerRounding(lipschitz)
    if isinstance(layer, nn.LeakyReLU):
        return LayerRounding(lipschitz, gain=1.0, terms=1)
    if isinstance(layer, nn.Linear):
        return dense_rounding(layer, x, lipschitz)
    if isinstance(layer, nn.Conv2d):
        return conv_rounding(layer, x, lipschitz)
    if isinstance(layer, nn.AvgPool2d):
        return avg_pool_rounding(layer.kernel_size, lipschitz)
    raise TypeError(f"no rounding model for layer {type(layer).__name__}")


def vanilla_export(layer: nn.Module) -> nn.Module:
    """A fresh copy of a plain layer (dense and conv layers rebuilt)."""
    if isinstance(layer, nn.Linear):
        return dense_export(layer)
    if isinstance(layer, nn.Conv2d):
        return conv_export(layer)
    return copy.deepcopy(layer)
