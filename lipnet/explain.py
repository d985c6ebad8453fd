"""Attributions through captum: Saliency, IntegratedGradients, SmoothGrad.

For a 1-Lipschitz network trained with hKR the input gradient points along
the transport plan, so its saliency map already looks like the change that
would flip the decision; for an unconstrained network it looks like noise.
"""

from __future__ import annotations

from typing import Any

import torch
from captum.attr import IntegratedGradients, NoiseTunnel, Saliency
from torch import Tensor, nn

from .attacks.common import AttackError, check_inputs, predictions
from .layers import eval_mode

ATTRIBUTIONS = ("saliency", "integrated_gradients", "smoothgrad")
ATTRIBUTION_LABELS = {
    "saliency": "Saliency (input gradient)",
    "integrated_gradients": "Integrated Gradients",
    "smoothgrad": "SmoothGrad (noise tunnel)",
}


class _Decision(nn.Module):
    """The score of each sample's class as one output per class.

    A binary model's single logit becomes two scores (−f, f), so "the
    attribution for class c" means the same thing for binary and multiclass
    models: evidence for c.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        return torch.cat([-out, out], dim=1) if out.shape[-1] == 1 else out


def baseline_for(x: Tensor, kind: str = "black") -> Tensor:
    """Reference input for Integrated Gradients: "black" (zeros), "white", "gray"
    or "blur" (a heavy box blur of x, which keeps colour but removes detail)."""
    if kind == "black":
        return torch.zeros_like(x)
    if kind == "white":
        return torch.ones_like(x)
    if kind == "gray":
        return torch.full_like(x, 0.5)
    if kind == "blur":
        k = max(3, (min(x.shape[-2:]) // 4) | 1)
        weight = torch.ones(x.shape[1], 1, k, k, device=x.device) / (k * k)
        padded = nn.functional.pad(x, (k // 2,) * 4, mode="replicate")
        return nn.functional.conv2d(padded, weight, groups=x.shape[1])
    raise AttackError(f"unknown baseline {kind!r}; choose black, white, gray or blur")


def attribute(
    model: nn.Module,
    x: Tensor,
    method: str = "saliency",
    target: Any = None,
    baseline: str = "black",
    n_steps: int = 32,
    n_samples: int = 16,
    noise: float = 0.1,
) -> Tensor:
    """Attribution map (same shape as x) of the evidence for `target`.

    `target` defaults to each sample's predicted class. Saliency returns the
    signed input gradient; IntegratedGradients integrates it from `baseline`
    in `n_steps`; SmoothGrad averages saliency over `n_samples` noisy copies
    (noise std `noise`, in pixel units).
    """
    if method not in ATTRIBUTIONS:
        raise AttackError(
            f"unknown attribution {method!r}; choose from {', '.join(ATTRIBUTIONS)}"
        )
    x = check_inputs(model, x)
    decision = _Decision(model)
    with eval_mode(model):
        with torch.no_grad():
            pred = predictions(model(x))
        tgt = (
            pred
            if target is None
            else torch.as_tensor(target).long().expand(x.shape[0])
        )
        inputs = x.clone().requires_grad_(True)
        if method == "saliency":
            attr = Saliency(decision).attribute(inputs, target=tgt, abs=False)
        elif method == "integrated_gradients":
            attr = IntegratedGradients(decision).attribute(
                inputs, baselines=baseline_for(x, baseline), target=tgt, n_steps=n_steps
            )
        else:
            attr = NoiseTunnel(Saliency(decision)).attribute(
                inputs,
                nt_type="smoothgrad",
                nt_samples=n_samples,
                stdevs=noise,
                target=tgt,
                abs=False,
            )
    return attr.detach()
