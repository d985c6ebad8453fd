"""What a spec would cost, worked out before anything is allocated.

A model file is a few hundred bytes of JSON that can ask for gigabytes: a
padding of 8,000, an `input_size` of 8,192, a 3,000 × 3,000 Björck layer, ten
thousand outputs. `check_budget` follows the input through every layer on
torch's meta device (shapes only, no memory), checks that each layer fits
the shape it receives, and refuses a spec over any of the documented limits
below with a ModelFileError naming the limit. Only then is the model built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from .errors import ModelFileError
from .layers.cost import BJORCK_STEPS, Budget
from .layers.protocol import build_cost
from .registry import REGISTRY

__all__ = ["BJORCK_STEPS", "Budget", "check_budget"]

MAX_PARAMETERS = 25_000_000
"""Every tensor a model holds: weights, biases and constraint buffers."""
MAX_ACTIVATIONS = 2_000_000
"""Values one layer outputs for one input (8 MB in float32)."""
MAX_OUTPUTS = 1_000
"""Class scores of the last layer (one per class, or one for a binary model)."""
MAX_FFT_ENTRIES = 8_000_000
"""Complex entries of one convolution's kernel spectrum (its norm is an FFT)."""
MAX_FORWARD_MACS = 1_000_000_000
"""Multiply-adds of one forward pass for one input."""
MAX_BUILD_FLOPS = 30_000_000_000
"""Floating-point work to build and measure the weights (Björck, AOL Gram
matrices, FFT norms, eigenvalues, the rounding profile): a few CPU seconds."""
MAX_BUILD_BYTES = 256_000_000
"""The largest temporary one layer needs while it is built or measured (an
AOL Gram matrix, a convolution's unfolded kernel, a spectrum)."""
LAYER_OVERHEAD_FLOPS = 50_000_000
"""Each layer's fixed cost to build, fill, measure and probe (~20 ms), as work."""


def check_budget(spec: Mapping[str, Any]) -> Budget:
    """The shape after every layer and the costs of a validated spec, within limits.

    Each layer's costs are its class's `build_cost`
    (`lipnet.layers.protocol.build_cost`).

    Args:
        spec: a spec whose layers the registry has validated.

    Returns:
        The Budget: the shape after every layer and the totals.

    Raises ModelFileError when a layer does not fit the shape it receives
    (wrong features or channels, a kernel larger than its input, a padding
    larger than kernel − 1, an `input_size` smaller than the real input, a
    group size that does not divide the channels) or when any limit is
    exceeded.
    """
    x = torch.empty(1, *spec["input_shape"], device="meta")
    budget = Budget(shapes=[])
    for i, entry in enumerate(spec["layers"]):
        kind, args = entry["type"], entry.get("args", {})
        budget.build_flops += LAYER_OVERHEAD_FLOPS
        try:
            x = build_cost(_layer_class(kind), args, x, budget)
        except (RuntimeError, ValueError, IndexError) as e:
            raise ModelFileError(
                f"layer {i} ({kind}) does not fit its input of shape "
                f"{list(x.shape[1:])}: {e}"
            ) from None
        size = math.prod(x.shape[1:])
        if size > MAX_ACTIVATIONS:
            raise ModelFileError(
                f"layer {i} ({kind}) outputs {size:,} values per input, over the "
                f"MAX_ACTIVATIONS limit of {MAX_ACTIVATIONS:,}"
            )
        budget.shapes.append(tuple(x.shape[1:]))
    if x.dim() != 2:
        raise ModelFileError(
            f"the last layer outputs shape {list(x.shape[1:])}: a model must end in "
            "a flat vector of class scores (add a Flatten and a dense layer)"
        )
    for name, value, limit in (
        ("MAX_OUTPUTS", budget.outputs, MAX_OUTPUTS),
        ("MAX_PARAMETERS", budget.parameters, MAX_PARAMETERS),
        ("MAX_FORWARD_MACS", budget.forward_macs, MAX_FORWARD_MACS),
        ("MAX_BUILD_FLOPS", budget.build_flops, MAX_BUILD_FLOPS),
        ("MAX_FFT_ENTRIES", budget.largest_fft, MAX_FFT_ENTRIES),
        ("MAX_BUILD_BYTES", budget.build_bytes, MAX_BUILD_BYTES),
    ):
        if value > limit:
            raise ModelFileError(
                f"the spec needs {value:,} for {name}, over its limit of {limit:,}"
            )
    return budget


def _layer_class(kind: str) -> type:
    """The registered class of a spec's layer type."""
    if kind not in REGISTRY:
        raise ValueError(f"no shape rule for {kind}")
    return REGISTRY[kind][0]
