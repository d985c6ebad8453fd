"""What every lipnet layer shares: a declared Lipschitz constant and a config."""

from __future__ import annotations

from typing import Any


class LipschitzLayer:
    """Mixin for lipnet layers.

    `lipschitz` is the layer's provable Lipschitz constant in L2 (1 unless a
    `k` argument says otherwise); `config()` returns the constructor arguments
    as JSON data, which is how a model folder stores the architecture.
    """

    lipschitz: float = 1.0

    def config(self) -> dict[str, Any]:
        raise NotImplementedError
