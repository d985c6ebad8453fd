"""Gradient-norm-preserving activations: 1-Lipschitz and piecewise isometric."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import SelectingLayer
from .cost import Budget, same_shape


def group_sort(x: Tensor, group_size: int | None = None) -> Tensor:
    """Sort the channels (dim 1) in ascending order within groups of `group_size`.

    A permutation on each linear piece, hence 1-Lipschitz and norm preserving.
    `group_size=None` sorts all channels (FullSort); 2 gives min/max pairs.
    """
    c = x.shape[1]
    g = c if group_size is None else group_size
    if c % g:
        raise ValueError(f"{c} channels are not a multiple of the group size {g}")
    shape = (x.shape[0], c // g, g, *x.shape[2:])
    grouped = x.reshape(shape)
    if g == 2:
        lo, hi = (
            grouped.min(dim=2, keepdim=True)[0],
            grouped.max(dim=2, keepdim=True)[0],
        )
        return torch.cat([lo, hi], dim=2).reshape(x.shape)
    return grouped.sort(dim=2)[0].reshape(x.shape)


class GroupSort(nn.Module, SelectingLayer):
    """GroupSort activation (Anil et al., 2019) over channel groups of `group_size`."""

    def __init__(self, group_size: int = 2) -> None:
        super().__init__()
        if group_size < 2:
            raise ValueError(f"group_size must be ≥ 2, got {group_size}")
        self.group_size = int(group_size)

    def forward(self, x: Tensor) -> Tensor:
        return group_sort(x, self.group_size)

    def config(self) -> dict[str, Any]:
        return {"group_size": self.group_size}

    @classmethod
    def build_cost(cls, args: Mapping[str, Any], x: Tensor, budget: Budget) -> Tensor:
        """Free; the group size must divide the channels."""
        group = cls._group_size(args)
        if x.shape[1] % group:
            raise ValueError(
                f"{x.shape[1]} channels are not a multiple of the group size {group}"
            )
        return x

    @staticmethod
    def _group_size(args: Mapping[str, Any]) -> int:
        return args.get("group_size", 2)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"


class GroupSort2(GroupSort):
    """GroupSort with groups of two: each pair becomes (min, max)."""

    def __init__(self) -> None:
        super().__init__(2)

    def config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def _group_size(args: Mapping[str, Any]) -> int:
        return 2


class FullSort(nn.Module, SelectingLayer):
    """Sort all channels: the most expressive GroupSort, a permutation per input."""

    def forward(self, x: Tensor) -> Tensor:
        return group_sort(x, None)

    def config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def build_cost(cls, args: Mapping[str, Any], x: Tensor, budget: Budget) -> Tensor:
        """Free; keeps the shape."""
        return same_shape(args, x, budget)


class MaxMin(nn.Module, SelectingLayer):
    """MaxMin (Blot et al., 2016): concat(relu(x), relu(−x)) doubles the channels.

    Norm preserving: ‖relu(x)‖² + ‖relu(−x)‖² = ‖x‖².
    """

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([F.relu(x), F.relu(-x)], dim=1)

    def config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def build_cost(cls, args: Mapping[str, Any], x: Tensor, budget: Budget) -> Tensor:
        """Free; doubles the channels."""
        return torch.cat([x, x], dim=1)
