"""What every lipnet layer shares: a declared Lipschitz constant and a config."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn


class LipschitzLayer:
    """Mixin for lipnet layers.

    `lipschitz` is the layer's provable Lipschitz constant in L2 (1 unless a
    `k` argument says otherwise); `config()` returns the constructor arguments
    as JSON data, which is how a model folder stores the architecture.
    """

    lipschitz: float = 1.0

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

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
