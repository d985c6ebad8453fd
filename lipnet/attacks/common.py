"""Shared machinery of the attacks: input checks, decision margins, a counting
model wrapper that records the trajectory, and the pixel box."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn


class AttackError(ValueError):
    """Bad input to an attack: the message says what and why."""


def check_inputs(model: nn.Module, x: Tensor) -> Tensor:
    """A finite float (N, …) batch in [0, 1] matching the model's input shape."""
    if not torch.is_tensor(x):
        raise AttackError(f"x must be a tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise AttackError(f"x must be a float tensor, got {x.dtype}")
    shape = getattr(model, "input_shape", None)
    if shape is not None and tuple(x.shape) == tuple(shape):
        x = x.unsqueeze(0)
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        expected = ", ".join(map(str, shape))
        raise AttackError(
            f"x has shape {tuple(x.shape)}; the model expects (N, {expected})"
        )
    if x.shape[0] == 0:
        raise AttackError("x is an empty batch")
    if not torch.isfinite(x).all():
        raise AttackError("x contains NaN or infinite values")
    if x.min() < 0 or x.max() > 1:
        raise AttackError("pixel values must lie in [0, 1]")
    p = next(model.parameters(), None)
    return x.detach().to(p.device if p is not None else x.device)


def check_positive(name: str, value: float) -> float:
    """A finite, strictly positive number, or an AttackError."""
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise AttackError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def predictions(outputs: Tensor) -> Tensor:
    """Predicted class: one logit (positive = class 1) or argmax of scores."""
    if outputs.shape[-1] == 1:
        return (outputs[:, 0] > 0).long()
    return outputs.argmax(dim=1)


def flipped(outputs: Tensor, labels: Tensor, target: Tensor | None) -> Tensor:
    """Whether each decision has changed (untargeted) or reached `target`.

    Read from `predictions`, so a tie (a binary score of exactly 0, two equal
    top scores) counts as the class the model actually predicts.
    """
    predicted = predictions(outputs)
    return predicted != labels if target is None else predicted == target


def margin(outputs: Tensor, labels: Tensor, target: Tensor | None) -> Tensor:
    """Decision margin: positive while the attack has not succeeded.

    Binary: the logit signed towards the original class. Multiclass,
    untargeted: f_label − max_{j≠label} f_j; targeted: max_{j≠t} f_j − f_t.
    """
    if outputs.shape[-1] == 1:
        sign = torch.where(labels > 0, 1.0, -1.0).to(outputs)
        return outputs[:, 0] * sign
    if target is None:
        true = outputs.gather(1, labels[:, None])[:, 0]
        other = outputs.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
        return true - other
    tgt = outputs.gather(1, target[:, None])[:, 0]
    other = outputs.scatter(1, target[:, None], float("-inf")).amax(dim=1)
    return other - tgt


def check_target(outputs: Tensor, labels: Tensor, target: Any) -> Tensor | None:
    """Target classes as a (N,) tensor, validated against the model's classes."""
    if target is None:
        return None
    n, k = outputs.shape
    if k == 1:
        raise AttackError("a binary model has one other class: use target=None")
    t = torch.as_tensor(target, device=outputs.device).long().reshape(-1)
    if t.numel() == 1:
        t = t.expand(n).clone()
    if t.numel() != n:
        raise AttackError(f"target must be one class or {n} classes, got {t.numel()}")
    if (t < 0).any() or (t >= k).any():
        raise AttackError(f"target classes must lie in [0, {k - 1}]")
    return t


class Tracker:
    """Calls the model, counts gradient evaluations and keeps the trajectory."""

    def __init__(
        self,
        model: nn.Module,
        labels: Tensor,
        target: Tensor | None,
        keep: bool,
    ) -> None:
        self.model, self.labels, self.target = model, labels, target
        self.keep = keep
        self.n_gradients = 0
        self.xs: list[Tensor] = []
        self.outs: list[Tensor] = []

    def record(self, x: Tensor, outputs: Tensor) -> None:
        if self.keep:
            self.xs.append(x.detach().cpu())
            self.outs.append(outputs.detach().cpu())

    def margin_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(outputs, margin, ∂margin/∂x) at x, one forward and backward pass."""
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = self.model(x)
            m = margin(out, self.labels, self.target)
            (g,) = torch.autograd.grad(m.sum(), x)
        self.n_gradients += 1
        self.record(x, out)
        return out.detach(), m.detach(), g

    def outputs(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.model(x)

    def trajectory(self) -> tuple[Tensor | None, Tensor | None]:
        if not self.xs:
            return None, None
        return torch.stack(self.xs), torch.stack(self.outs)


def flat_norm(t: Tensor) -> Tensor:
    """Per-sample L2 norm, shaped to broadcast against t."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def project_box(x: Tensor, box: bool) -> Tensor:
    """Clamp to the pixel range [0, 1] when the box applies."""
    return x.clamp(0.0, 1.0) if box else x


def box_free(direction: Tensor, x: Tensor, box: bool) -> Tensor:
    """Zero the components of a step direction that would leave the pixel box.

    A pixel already at 0 cannot go lower, one at 1 cannot go higher; without
    this, a normalized step spends most of its length on clipped pixels.
    """
    if not box:
        return direction
    blocked = ((x <= 0) & (direction < 0)) | ((x >= 1) & (direction > 0))
    return direction.masked_fill(blocked, 0.0)
