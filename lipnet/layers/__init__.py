"""Lipschitz layers, each an nn.Module with a provable L2 Lipschitz bound."""

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
