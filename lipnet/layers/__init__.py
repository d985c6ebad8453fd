"""Lipschitz layers, each an nn.Module with a provable L2 Lipschitz bound.

Each layer describes itself to the library through the `LipschitzLayer`
protocol (`base.py`: its bound, rounding, plain export and build cost);
`protocol.py` is where the library asks, for plain torch layers too
(`torch_layers.py`). A new layer is one file here plus its entry in
`lipnet.registry.REGISTRY` (see docs/architecture.md).
"""

from .activations import FullSort, GroupSort, GroupSort2, MaxMin, group_sort
from .base import LipschitzLayer, eval_mode
from .block_orthogonal_conv import BlockOrthogonalConv2d
from .conv import AOLConv2d, SpectralConv2d
from .linear import AOLLinear, FrobeniusLinear, SpectralLinear
from .orthogonal_conv import OrthogonalConv2d
from .orthogonal_linear import OrthogonalLinear
from .pooling import (
    Flatten,
    InvertibleDownSampling,
    ScaledAvgPool2d,
    ScaledL2NormPool2d,
)
from .sequential import HEAD_FACTORS, LipSequential

__all__ = [
    "HEAD_FACTORS",
    "AOLConv2d",
    "AOLLinear",
    "BlockOrthogonalConv2d",
    "Flatten",
    "FrobeniusLinear",
    "FullSort",
    "GroupSort",
    "GroupSort2",
    "InvertibleDownSampling",
    "LipSequential",
    "LipschitzLayer",
    "MaxMin",
    "OrthogonalConv2d",
    "OrthogonalLinear",
    "ScaledAvgPool2d",
    "ScaledL2NormPool2d",
    "SpectralConv2d",
    "SpectralLinear",
    "eval_mode",
    "group_sort",
]
