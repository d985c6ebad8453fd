"""A model's counterfactuals on a few test images, and its average change."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import counterfactual
from .records import ATTACKS


@dataclass
class CounterfactualGrid:
    """Inputs, their counterfactuals and changes, and the mean change.

    `towards` is 1 where the change goes to the positive class (class 1) and
    −1 where it goes away from it; `mean_change` averages `towards`·δ, so it
    shows what the model adds for the positive class on average (a template
    when every change is the same, a blur when they differ).
    """

    x: Tensor
    x_cf: Tensor
    delta: Tensor
    towards: Tensor
    mean_change: Tensor


def counterfactual_grid(
    model: nn.Module,
    x: Tensor,
    overshoot: float = 1.0,
    method: str = "transport",
) -> CounterfactualGrid:
    """Counterfactuals of a binary model for the images `x` (N, C, H, W).

    Overshoot 1 goes as far past the boundary as each input was before it,
    so each counterfactual is as clearly of the other class as its input was
    of its own (pixels kept in [0, 1]).
    """
    if x.dim() != 4 or len(x) == 0:
        raise ValueError(
            f"expected a non-empty (N, C, H, W) batch, got {tuple(x.shape)}"
        )
    attack = ATTACKS.get(method)
    takes = attack is not None and "overshoot" in attack.arguments()
    kwargs = {"overshoot": overshoot} if takes else {}
    r = counterfactual(model, x, method, keep_trajectory=False, **kwargs)
    towards = torch.where(r.outputs_before[:, 0] > 0, -1.0, 1.0)
    signed = r.delta * towards[:, None, None, None]
    return CounterfactualGrid(r.x, r.x_adv, r.delta, towards, signed.mean(0))
