"""Does the counterfactual follow the face? Move the input, compare the changes.

A counterfactual that means something moves with what it changes: the
change made to a face shifted by 8 pixels should be the original change
shifted by 8 pixels, and the change of a mirrored face the mirrored change.
`follow_the_face` measures the cosine between the change of the moved input
and the moved change of the original, per input (1 = it follows exactly).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from . import counterfactual

TRANSFORMS = ("shift:4", "shift:8", "flip")


def move(x: Tensor, transform: str) -> Tensor:
    """Apply "shift:S" (S pixels right and down, edges repeated) or "flip"
    (left-right mirror) to a batch (N, C, H, W)."""
    if transform == "flip":
        return x.flip(-1)
    kind, _, amount = transform.partition(":")
    if kind != "shift" or not amount.isdigit() or int(amount) < 1:
        raise ValueError(f"unknown transform {transform!r}: 'shift:S' or 'flip'")
    s = int(amount)
    h, w = x.shape[-2:]
    padded = F.pad(x, (s, 0, s, 0), mode="replicate")
    return padded[..., :h, :w]


def _cosines(a: Tensor, b: Tensor) -> Tensor:
    return F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1, eps=1e-12)


def follow_the_face(
    model: nn.Module,
    x: Tensor,
    transforms: Sequence[str] = TRANSFORMS,
    overshoot: float = 1.0,
) -> dict[str, Tensor]:
    """Per transform, the cosine between CF(T x) − T x and T(CF(x) − x), per input.

    The counterfactuals are the transport counterfactuals at `overshoot`
    (as the explorer makes them); also returns "flipped:<T>", whether the
    moved input's counterfactual flipped the decision, and "counterfactual:<T>",
    the moved input's counterfactual (for a judge).
    """
    base = counterfactual(
        model, x, "transport", overshoot=overshoot, keep_trajectory=False
    )
    out: dict[str, Tensor] = {}
    for t in transforms:
        moved_x = move(x, t)
        result = counterfactual(
            model, moved_x, "transport", overshoot=overshoot, keep_trajectory=False
        )
        out[t] = _cosines(result.delta.detach(), move(base.delta.detach(), t))
        out[f"flipped:{t}"] = result.success.detach()
        out[f"counterfactual:{t}"] = result.x_adv.detach()
    return out
