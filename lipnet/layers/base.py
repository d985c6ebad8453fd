"""What every lipnet layer shares, and what it tells the rest of lipnet about itself.

A layer declares its Lipschitz constant and its config, and describes itself
to the library through the `LipschitzLayer` protocol: its rigorous operator
norm (`lipnet.certify`), its rounding model (`lipnet.rounding`), its plain
export (`lipnet.export`), its build cost (`lipnet.budget`) and the caches a
float64 copy keeps (`lipnet.precision`). None of those modules branches on a
layer's type, so a new layer is one file plus its registry entry.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from .cost import Budget


@dataclass(frozen=True)
class LayerRounding:
    """What one layer can add to the error, and how it carries the error it gets.

    `lipschitz` carries incoming error; a layer rounds by at most
    SAFETY·γ(`terms`)·(`gain`·‖h‖ + `offset`) on an input of norm ‖h‖, where
    `gain` bounds ‖|A|‖₂ and `offset` is ‖layer(0)‖ (its bias as applied).
    `terms` = 0: the layer rounds nothing.
    """

    lipschitz: float
    gain: float = 0.0
    offset: float = 0.0
    terms: int = 0


class LipschitzLayer:
    """Mixin and protocol for lipnet layers.

    `lipschitz` is the layer's provable Lipschitz constant in L2 (1 unless a
    `k` argument says otherwise); `config()` returns the constructor arguments
    as JSON data, which is how a model folder stores the architecture. The
    other methods describe the layer to the library; their defaults fit a
    parameter-free layer whose constant is `lipschitz`, and a layer with a
    weight overrides them.
    """

    lipschitz: float = 1.0

    def config(self) -> dict[str, Any]:
        """The constructor arguments, as JSON data (a spec's `args`)."""
        raise NotImplementedError

    def operator_norm(self, input_size: tuple[int, ...], per_neuron: bool) -> float:
        """A rigorous upper bound of the layer's L2 operator norm.

        Args:
            input_size: the spatial size of the input the layer receives
                (() for a flat input, (H, W) for an image).
            per_neuron: the bound per output neuron (the largest row norm) for
                the last layer under a "disjoint" head, else as a whole map.

        Returns:
            The bound, before `lipnet.certify` raises it for float64 rounding.
            The default is the declared constant; a layer with parameters must
            measure it.
        """
        if any(True for _ in self.parameters()):
            raise TypeError(f"no exact norm known for layer {type(self).__name__}")
        return float(self.lipschitz)

    def exact_constant(self) -> float | None:
        """The layer's constant when it is known without measuring, else None.

        Returns:
            The declared constant for a layer without parameters; None for one
            whose norm `lipnet.certify.layer_norm_estimates` estimates by power
            iteration.
        """
        if any(True for _ in self.parameters()):
            return None
        return float(self.lipschitz)

    def rounding(self, x: Tensor, lipschitz: float) -> LayerRounding:
        """The layer's rounding model for its input `x` (a zero batch of one).

        Args:
            x: the zero input the layer receives, in the model's type.
            lipschitz: the layer's rigorous constant (how it carries error).

        Returns:
            A LayerRounding; raises TypeError when the layer has no model.
        """
        raise TypeError(f"no rounding model for layer {type(self).__name__}")

    def vanilla_export(self) -> nn.Module:
        """The same map as plain torch layers (no lipnet parametrization).

        Returns:
            A plain module computing what this layer computes in eval mode;
            by default a copy of a parameter-free layer.
        """
        if any(True for _ in self.parameters()):
            raise TypeError(f"cannot export {type(self).__name__}")
        return copy.deepcopy(self)

    def cache_snapshot(self) -> Callable[[], None] | None:
        """What re-installs this layer's built cache after a cast to float64.

        Returns:
            None when the layer keeps no cache of its own (its weight
            constraints are kept by `lipnet.precision`), else a function that,
            called after `model.double()`, caches the values float32 built.
        """
        return None

    @classmethod
    def build_cost(cls, args: Mapping[str, Any], x: Tensor, budget: Budget) -> Tensor:
        """The layer's output on torch's meta device, its costs added to `budget`.

        Args:
            args: the spec's constructor arguments (validated by the registry).
            x: the meta input the layer receives (batch of one).
            budget: the running totals (`lipnet.layers.cost.Budget`).

        Returns:
            The meta output. Raises ValueError when the layer does not fit `x`.
        """
        raise ValueError(f"no shape rule for {cls.__name__}")

    def _init_weights(self, k: float) -> None:
        """Set the constant k, an orthogonal weight and a zero bias."""
        if not k > 0:
            raise ValueError(f"k must be positive, got {k}")
        self.k = float(k)
        self.lipschitz = self.k
        nn.init.orthogonal_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def scaled_weight(self) -> Tensor:
        """The constrained weight times k (cached in eval mode)."""
        w = constrained_weight(self)
        return w if self.k == 1.0 else w * self.k


class SelectingLayer(LipschitzLayer):
    """A layer that only selects, reorders or compares values: it rounds nothing."""

    def rounding(self, x: Tensor, lipschitz: float) -> LayerRounding:
        """No rounding: the outputs are some of the inputs, exactly."""
        return LayerRounding(lipschitz)


def constrained_weight(layer: nn.Module) -> Tensor:
    """`layer.weight`, read straight from the eval-mode cache when it is valid.

    Skips the parametrize machinery on the hot path, so a lipnet layer in
    eval mode costs what a plain layer costs.
    """
    if not layer.training:
        plist = layer.parametrizations["weight"]
        hit = plist[0].cached(plist.original)
        if hit is not None:
            return hit
    return layer.weight


def effective_weight(layer: nn.Module) -> Tensor:
    """The weight a layer really multiplies by (constrained and times k), in float64."""
    if isinstance(layer, LipschitzLayer) and hasattr(layer, "parametrizations"):
        w = layer.scaled_weight()
    else:
        w = layer.weight * getattr(layer, "k", 1.0)
    return w.detach().double().cpu()


def abs_norm(w: Tensor) -> float:
    """A rigorous upper bound of ‖|W|‖₂ for a 2-D weight (rows = outputs).

    The smaller of the Frobenius norm and √(‖|W|‖₁·‖|W|‖∞), both bounds of
    the spectral norm, slightly raised for float64 rounding.
    """
    a = w.double().abs().reshape(w.shape[0], -1)
    frobenius = float(a.norm())
    holder = math.sqrt(float(a.sum(dim=0).max()) * float(a.sum(dim=1).max()))
    return min(frobenius, holder) * (1 + 1e-9)


def zero_offset(layer: nn.Module, x: Tensor) -> float:
    """‖layer(0)‖ for the zero input `x` (its bias as applied), raised a hair."""
    with torch.no_grad():
        return float(layer(torch.zeros_like(x)).double().norm()) * (1 + 1e-9)


def kernel_rounding(w: Tensor, lipschitz: float, offset: float) -> LayerRounding:
    """The rounding model of a convolution by the (cout, cin, kh, kw) kernel `w`."""
    terms = w.shape[1] * w.shape[2] * w.shape[3] + 1
    return LayerRounding(lipschitz, abs_norm(w.abs().sum(dim=(2, 3))), offset, terms)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block with `model` in eval mode, touching it only if it was training.

    A model shared between threads (a dashboard's cached model) is already in
    eval mode and is then left alone: no thread ever flips it to training,
    where a forward pass would update its power-iteration vectors.
    """
    if not model.training:
        yield model
        return
    model.eval()
    try:
        yield model
    finally:
        model.train()
