"""One entry point per question the library asks a layer, lipnet or plain.

`lipnet.certify`, `lipnet.rounding`, `lipnet.export`, `lipnet.precision` and
`lipnet.budget` call these instead of branching on a layer's type: a lipnet
layer answers through its `LipschitzLayer` methods, a plain torch layer
through `lipnet.layers.torch_layers`. A lipnet layer built on a torch layer
(a `LipschitzLayer` that is also an nn.Linear, say) and that leaves one of
the methods to the protocol's default is answered by the torch layer's
rules for that method, as it is the same map.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor, nn

from . import torch_layers
from .base import LayerRounding, LipschitzLayer
from .cost import Budget


def _answers(layer: nn.Module | type, name: str) -> bool:
    """Whether a lipnet layer answers `name` itself.

    It does when it defines the method (anywhere below LipschitzLayer in its
    class hierarchy), or when no torch family's rules apply to it.
    """
    cls = layer if isinstance(layer, type) else type(layer)
    if not issubclass(cls, LipschitzLayer):
        return False
    owner = next(k for k in cls.__mro__ if name in vars(k))
    return owner is not LipschitzLayer or not issubclass(cls, torch_layers.FAMILIES)


def operator_norm(
    layer: nn.Module, input_size: tuple[int, ...], per_neuron: bool = False
) -> float:
    """A rigorous upper bound of one layer's L2 operator norm.

    Args:
        layer: a lipnet layer or a supported plain torch layer.
        input_size: the spatial size of its input (() when flat).
        per_neuron: count each output neuron on its own (a "disjoint" head's
            last layer).

    Returns:
        The bound (before the float64 slack `lipnet.certify` adds). Raises
        TypeError for a layer without a known bound.
    """
    if _answers(layer, "operator_norm"):
        return layer.operator_norm(input_size, per_neuron)
    return torch_layers.operator_norm(layer, input_size, per_neuron)


def exact_constant(layer: nn.Module) -> float | None:
    """The constant of a layer with nothing to measure, None for one to estimate.

    Args:
        layer: a lipnet layer or a supported plain torch layer.

    Returns:
        The exact constant, or None for an affine layer that power iteration
        measures. Raises TypeError for a layer without a known bound.
    """
    if _answers(layer, "exact_constant"):
        return layer.exact_constant()
    return torch_layers.exact_constant(layer)


def rounding(layer: nn.Module, x: Tensor, lipschitz: float) -> LayerRounding:
    """The rounding model of one layer for its (zero) input `x`.

    Args:
        layer: a lipnet layer or a supported plain torch layer.
        x: the zero input it receives, in the model's type.
        lipschitz: its rigorous constant.

    Returns:
        Its LayerRounding. Raises TypeError for a layer without a model.
    """
    if _answers(layer, "rounding"):
        return layer.rounding(x, lipschitz)
    return torch_layers.rounding(layer, x, lipschitz)


def vanilla_export(layer: nn.Module) -> nn.Module:
    """The same map as plain torch layers.

    Args:
        layer: a lipnet layer or a plain torch layer.

    Returns:
        A parameter-for-parameter plain copy. Raises TypeError for a lipnet
        layer with parameters and no export.
    """
    if _answers(layer, "vanilla_export"):
        return layer.vanilla_export()
    return torch_layers.vanilla_export(layer)


def cache_snapshot(layer: nn.Module) -> Callable[[], None] | None:
    """What re-installs a layer's own cache after a cast to float64 (or None).

    Args:
        layer: any module.

    Returns:
        The layer's `LipschitzLayer.cache_snapshot`, None for a plain layer.
    """
    return layer.cache_snapshot() if isinstance(layer, LipschitzLayer) else None


def build_cost(
    cls: type[nn.Module], args: Mapping[str, Any], x: Tensor, budget: Budget
) -> Tensor:
    """One layer type on the meta device: its output, its costs added to `budget`.

    Args:
        cls: the registered layer class.
        args: its validated spec arguments.
        x: the meta input it receives.
        budget: the running totals.

    Returns:
        The meta output. Raises ValueError when the layer does not fit `x`.
    """
    if _answers(cls, "build_cost"):
        return cls.build_cost(args, x, budget)
    if cls not in torch_layers.BUILD_COSTS:
        raise ValueError(f"no shape rule for {cls.__name__}")
    return torch_layers.BUILD_COSTS[cls](args, x, budget)
