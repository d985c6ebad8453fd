"""What every attack returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..layers import HEAD_FACTORS
from .common import margin


@dataclass
class AttackResult:
    """The outcome of one counterfactual / adversarial attack on a batch.

    `x_adv` is the best perturbed input found for each sample (the smallest
    successful one for minimal-norm methods); `success` says whether its
    decision differs from the original one (or equals the target). The
    trajectory holds the iterates (T, N, C, H, W) and their outputs (T, N, K)
    when it was kept; `certified_radius` is None for a model without
    certificate.
    """

    method: str
    params: dict[str, Any]
    x: Tensor
    x_adv: Tensor
    success: Tensor
    labels: Tensor
    target: Tensor | None
    outputs_before: Tensor
    outputs_after: Tensor
    certified_radius: Tensor | None
    n_gradients: int
    time_s: float
    trajectory_x: Tensor | None = None
    trajectory_outputs: Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def delta(self) -> Tensor:
        """The perturbation x_adv − x."""
        return self.x_adv - self.x

    @property
    def l2(self) -> Tensor:
        """L2 norm of each sample's perturbation."""
        return self.delta.flatten(1).norm(dim=1)

    @property
    def linf(self) -> Tensor:
        """L∞ norm of each sample's perturbation."""
        return self.delta.flatten(1).abs().amax(dim=1)

    @property
    def ratio_to_radius(self) -> Tensor | None:
        """L2 distance needed over the certified radius (≥ 1 when sound)."""
        if self.certified_radius is None:
            return None
        return self.l2 / self.certified_radius.clamp_min(1e-12)

    def path(self, sample: int = 0) -> dict[str, Tensor] | None:
        """Along the trajectory of one sample: the distance from x, the decision
        margin, and the certified cone m(x) − c·L·d below which no margin can
        fall (c = 1 binary, √2 or 2 multiclass). None without a trajectory."""
        if self.trajectory_x is None or self.trajectory_outputs is None:
            return None
        xs = self.trajectory_x[:, sample]
        outs = self.trajectory_outputs[:, sample]
        labels = self.labels[sample : sample + 1].cpu().expand(len(outs))
        target = None if self.target is None else self.target[sample : sample + 1].cpu()
        if target is not None:
            target = target.expand(len(outs))
        m = margin(outs, labels, target)
        d = (xs - self.x[sample].cpu()).flatten(1).norm(dim=1)
        out: dict[str, Tensor] = {"distance": d, "margin": m}
        lipschitz, head = self.extra.get("lipschitz"), self.extra.get("head")
        if lipschitz is not None and head in HEAD_FACTORS:
            slope = HEAD_FACTORS[head] * lipschitz
            out["cone_slope"] = torch.tensor(slope)
            out["cone"] = m[0] - slope * d
        return out
