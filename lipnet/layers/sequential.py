"""A Sequential that knows its Lipschitz constant, head type and classes."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from .base import LipschitzLayer
from .linear import FrobeniusLinear

# How a certificate divides the top-1 margin, per head type (times L):
# binary |f|/L; a network L-Lipschitz as a whole (f_i − f_j)/(√2·L);
# independently L-Lipschitz output neurons (f_i − f_j)/(2·L).
HEAD_FACTORS = {"binary": 1.0, "lipschitz": math.sqrt(2.0), "disjoint": 2.0}


class LipSequential(nn.Sequential):
    """nn.Sequential of layers plus what a certificate needs to know about them.

    `lipschitz_constant` is the product of the layers' constants when every
    layer is a lipnet layer, else None (an unconstrained model: no
    certificate). `head` is "binary" (one output; positive means
    `classes[1]`), "lipschitz" (several outputs, the network L-Lipschitz as a
    whole), "disjoint" (each output neuron L-Lipschitz) or "none".
    """

    def __init__(
        self,
        *layers: nn.Module,
        input_shape: Sequence[int] | None = None,
        classes: Sequence[str] | None = None,
        head: str | None = None,
    ) -> None:
        super().__init__(*layers)
        self.input_shape = tuple(int(v) for v in input_shape) if input_shape else None
        self.classes = list(classes) if classes is not None else None
        self.head = head if head is not None else self._infer_head()
        if self.head not in (*HEAD_FACTORS, "none"):
            raise ValueError(f"unknown head type {self.head!r}")
        if self.head != "none" and self.lipschitz_constant is None:
            raise ValueError(
                f"head {self.head!r} needs every layer to be a lipnet layer with a "
                "Lipschitz bound; use head='none' for an unconstrained model"
            )

    @property
    def lipschitz_constant(self) -> float | None:
        """Product of the layers' declared constants, or None if any is unbounded."""
        if not all(isinstance(m, LipschitzLayer) for m in self):
            return None
        return math.prod(m.lipschitz for m in self)

    def _infer_head(self) -> str:
        if self.lipschitz_constant is None:
            return "none"
        last = [m for m in self if hasattr(m, "out_features")]
        if last and last[-1].out_features == 1:
            return "binary"
        if last and isinstance(last[-1], FrobeniusLinear) and last[-1].disjoint_neurons:
            return "disjoint"
        return "lipschitz"
