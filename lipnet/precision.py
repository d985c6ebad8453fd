"""Run a trained model in float64 without changing the function it computes.

A certificate is proved for exact arithmetic; the closer the machine comes to
it, the less the rounding bound (`lipnet.rounding`) takes from each radius.
`to_float64` keeps the constrained weights exactly as float32 computed them
(the Björck, AOL, Cayley and block-orthogonal results of the trained model,
cast exactly to float64) and runs every forward pass in float64 from then on, so scores,
certificates and counterfactuals describe the trained function to ~1e-13.
"""

from __future__ import annotations

import torch
from torch import nn

from .constraints import _CachedInEval
from .layers import eval_mode
from .layers.protocol import cache_snapshot


def _constrained_weights(model: nn.Module) -> list[tuple[nn.Module, torch.Tensor]]:
    """Each weight constraint with the weight it gives now (built in eval mode)."""
    found = []
    with eval_mode(model), torch.no_grad():
        for module in model.modules():
            plist = getattr(module, "parametrizations", None)
            if plist is None or "weight" not in plist:
                continue
            _ = module.weight  # fills the eval-mode cache
            for p in plist["weight"]:
                if isinstance(p, _CachedInEval) and p._cache is not None:
                    found.append((p, p._cache))
    return found


def to_float64(model: nn.Module) -> nn.Module:
    """Convert `model` in place to float64, keeping its constrained weights as built.

    Training it afterwards recomputes the constraints in float64, as any
    `model.double()` would. Weight constraints are kept here; a layer with a
    cache of its own keeps it through `LipschitzLayer.cache_snapshot`.

    Args:
        model: a lipnet model (any nn.Module).

    Returns:
        The same model, in float64 and in eval mode.
    """
    model.eval()
    weights = _constrained_weights(model)
    with torch.no_grad():
        snapshots = [cache_snapshot(m) for m in model.modules()]
    model.double()
    with torch.no_grad():
        for p, w in weights:
            parent_original = _original_of(model, p)
            p._cache = w.to(torch.float64)
            p._cache_key = p._key(parent_original)
        for restore in snapshots:
            if restore is not None:
                restore()
    return model


def _original_of(model: nn.Module, constraint: nn.Module) -> torch.Tensor:
    """The raw parameter a weight constraint reads (its `original`)."""
    for module in model.modules():
        plist = getattr(module, "parametrizations", None)
        if (
            plist is not None
            and "weight" in plist
            and constraint in list(plist["weight"])
        ):
            return plist["weight"].original
    raise ValueError("the constraint belongs to no layer of this model")


def compute_dtype(model: nn.Module) -> torch.dtype:
    """The floating-point type a model computes in (its parameters' type)."""
    p = next(model.parameters(), None)
    return p.dtype if p is not None else torch.get_default_dtype()
