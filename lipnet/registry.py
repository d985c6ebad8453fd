"""The layer types a model file may name, and how a layer maps to its spec entry.

A spec stores the architecture as data: a type from this fixed registry and
its constructor arguments with their kinds. Nothing outside it can be built
from a file, so loading runs only code we ship.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch import nn
from torch.nn.utils import parametrize

from . import layers as L
from .errors import ModelFileError

Pair = "pair"
# type name -> (class, {argument: kind}); kinds: int, float, bool, str, pair.
REGISTRY: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {
    "SpectralLinear": (
        L.SpectralLinear,
        {"in_features": int, "out_features": int, "bias": bool, "k": float},
    ),
    "AOLLinear": (
        L.AOLLinear,
        {"in_features": int, "out_features": int, "bias": bool, "k": float},
    ),
    "OrthogonalLinear": (
        L.OrthogonalLinear,
        {"in_features": int, "out_features": int, "bias": bool, "k": float},
    ),
    "FrobeniusLinear": (
        L.FrobeniusLinear,
        {
            "in_features": int,
            "out_features": int,
            "bias": bool,
            "k": float,
            "disjoint_neurons": bool,
        },
    ),
    "SpectralConv2d": (
        L.SpectralConv2d,
        {
            "in_channels": int,
            "out_channels": int,
            "kernel_size": Pair,
            "input_size": Pair,
            "stride": int,
            "padding": Pair,
            "padding_mode": str,
            "bias": bool,
            "k": float,
        },
    ),
    "OrthogonalConv2d": (
        L.OrthogonalConv2d,
        {
            "in_channels": int,
            "out_channels": int,
            "kernel_size": Pair,
            "input_size": Pair,
            "bias": bool,
            "k": float,
        },
    ),
    "BlockOrthogonalConv2d": (
        L.BlockOrthogonalConv2d,
        {
            "in_channels": int,
            "out_channels": int,
            "kernel_size": Pair,
            "input_size": Pair,
            "bias": bool,
            "k": float,
        },
    ),
    "AOLConv2d": (
        L.AOLConv2d,
        {
            "in_channels": int,
            "out_channels": int,
            "kernel_size": Pair,
            "stride": int,
            "padding": Pair,
            "padding_mode": str,
            "bias": bool,
            "k": float,
        },
    ),
    "GroupSort": (L.GroupSort, {"group_size": int}),
    "GroupSort2": (L.GroupSort2, {}),
    "FullSort": (L.FullSort, {}),
    "MaxMin": (L.MaxMin, {}),
    "ScaledL2NormPool2d": (L.ScaledL2NormPool2d, {"kernel_size": Pair}),
    "ScaledAvgPool2d": (L.ScaledAvgPool2d, {"kernel_size": Pair}),
    "InvertibleDownSampling": (L.InvertibleDownSampling, {"kernel_size": int}),
    "LipFlatten": (L.Flatten, {}),
    # Plain torch layers, for unconstrained contrast models.
    "Linear": (nn.Linear, {"in_features": int, "out_features": int, "bias": bool}),
    "Conv2d": (
        nn.Conv2d,
        {
            "in_channels": int,
            "out_channels": int,
            "kernel_size": Pair,
            "stride": int,
            "padding": Pair,
            "padding_mode": str,
            "bias": bool,
        },
    ),
    "ReLU": (nn.ReLU, {}),
    "Flatten": (nn.Flatten, {}),
    "MaxPool2d": (nn.MaxPool2d, {"kernel_size": Pair}),
    "AvgPool2d": (nn.AvgPool2d, {"kernel_size": Pair}),
    "Dropout": (nn.Dropout, {"p": float}),
    "PixelUnshuffle": (nn.PixelUnshuffle, {"downscale_factor": int}),
}


def _plain_config(m: nn.Module) -> dict[str, Any]:
    """Constructor arguments of a registered plain torch layer."""
    if isinstance(m, nn.Linear):
        return {
            "in_features": m.in_features,
            "out_features": m.out_features,
            "bias": m.bias is not None,
        }
    if isinstance(m, nn.Conv2d):
        return {
            "in_channels": m.in_channels,
            "out_channels": m.out_channels,
            "kernel_size": list(m.kernel_size),
            "stride": m.stride[0],
            "padding": list(m.padding),
            "padding_mode": m.padding_mode,
            "bias": m.bias is not None,
        }
    if isinstance(m, nn.MaxPool2d | nn.AvgPool2d):
        k = m.kernel_size
        return {"kernel_size": [k, k] if isinstance(k, int) else list(k)}
    if isinstance(m, nn.Dropout):
        return {"p": m.p}
    if isinstance(m, nn.PixelUnshuffle):
        return {"downscale_factor": m.downscale_factor}
    return {}


def layer_spec(m: nn.Module) -> dict[str, Any]:
    """{"type": name, "args": {...}} for one layer of a registered type.

    Args:
        m: a layer whose class is in REGISTRY (read at every call, so an
            entry added later counts).

    Returns:
        Its spec entry: the registry's name and the constructor arguments
        (`LipschitzLayer.config`, or those of a plain torch layer).
    """
    cls = parametrize.type_before_parametrizations(m)
    names = {kind: name for name, (kind, _) in REGISTRY.items()}
    if cls not in names:
        raise ModelFileError(f"layer type {cls.__name__} cannot be saved")
    args = m.config() if isinstance(m, L.LipschitzLayer) else _plain_config(m)
    return {"type": names[cls], "args": args}


def check_layer(i: int, entry: Any) -> None:
    """Validate one layer entry against the registry."""
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise ModelFileError(f"layer {i} must be an object with a 'type'")
    kind = entry["type"]
    if kind not in REGISTRY:
        raise ModelFileError(f"layer {i} has unknown type {kind!r}")
    args = entry.get("args", {})
    if not isinstance(args, dict):
        raise ModelFileError(f"layer {i} ({kind}): 'args' must be an object")
    allowed = REGISTRY[kind][1]
    for name, value in args.items():
        if name not in allowed:
            raise ModelFileError(f"layer {i} ({kind}): unknown argument {name!r}")
        in_range = _RANGES.get(name, lambda v: True)
        if not _valid_value(allowed[name], value) or not in_range(value):
            raise ModelFileError(f"layer {i} ({kind}): invalid {name}={value!r}")


# Ranges beyond the kind, by argument name: sizes start at 1, a constant k
# stays where a product of 256 of them can neither overflow nor vanish.
_RANGES: dict[str, Callable[[Any], bool]] = {
    "in_features": lambda v: v >= 1,
    "out_features": lambda v: v >= 1,
    "in_channels": lambda v: v >= 1,
    "out_channels": lambda v: v >= 1,
    "kernel_size": lambda v: min(v) >= 1 if isinstance(v, list) else v >= 1,
    "input_size": lambda v: min(v) >= 1,
    "stride": lambda v: v >= 1,
    "group_size": lambda v: v >= 2,
    "downscale_factor": lambda v: v >= 1,
    "k": lambda v: 1e-3 <= v <= 1e3,
    "p": lambda v: 0 <= v <= 1,
    "padding_mode": lambda v: v in ("zeros", "circular"),
}


def _valid_value(kind: Any, value: Any) -> bool:
    checks: dict[Any, Callable[[Any], bool]] = {
        int: lambda v: (
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 1 << 20
        ),
        float: lambda v: (
            isinstance(v, int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
            and 0 <= v <= 1e6
        ),
        bool: lambda v: isinstance(v, bool),
        str: lambda v: isinstance(v, str) and len(v) <= 32,
        Pair: lambda v: (
            isinstance(v, list) and len(v) == 2 and all(checks[int](x) for x in v)
        ),
    }
    return checks[kind](value)
