"""FGSM and PGD in L2 and L∞, with random start and restarts.

L∞ uses captum.robust's FGSM and PGD as they are (a sign step, a clip to
the ε-box and the pixel bounds). L2 is lipnet's own: captum's PGD takes the
same sign step and only then projects on the L2 ball, which is a much weaker
L2 attack, and it has no per-step record for the trajectory.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator

import torch
from captum.robust import FGSM, PGD
from torch import Tensor

from .common import Tracker, box_free, flat_norm, margin, project_box


def _captum_forward(tracker: Tracker):
    """A forward function for captum that records and counts each call."""

    def forward(inputs: Tensor) -> Tensor:
        out = tracker.model(inputs)
        if torch.is_grad_enabled() and inputs.requires_grad:
            tracker.n_gradients += 1
            tracker.record(inputs, out)
        return out

    return forward


def _captum_loss(tracker: Tracker):
    """captum maximizes this loss: minus the decision margin."""

    def loss(outputs: Tensor, _target: Tensor) -> Tensor:
        return -margin(outputs, tracker.labels, tracker.target)

    return loss


@contextlib.contextmanager
def _quiet_captum() -> Iterator[None]:
    """captum warns at every step that PGD's detached iterates need gradients
    (it then enables them itself): expected here, so not shown to users."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input Tensor .* did not already")
        yield


def _bounds(box: bool) -> tuple[float, float]:
    return (0.0, 1.0) if box else (-math.inf, math.inf)


def fgsm(
    tracker: Tracker, x: Tensor, eps: float, norm: str, box: bool = True
) -> Tensor:
    """One gradient step of size ε that lowers the margin (sign step for L∞)."""
    if norm == "linf":
        lo, hi = _bounds(box)
        attack = FGSM(_captum_forward(tracker), _captum_loss(tracker), lo, hi)
        with _quiet_captum():
            return attack.perturb(x, eps, tracker.labels).detach()
    _, _, g = tracker.margin_and_grad(x)
    return project_box(x - eps * g / flat_norm(g).clamp_min(1e-12), box)


def pgd(
    tracker: Tracker,
    x: Tensor,
    eps: float | Tensor,
    norm: str = "l2",
    steps: int = 100,
    step_size: float | None = None,
    restarts: int = 1,
    random_start: bool = True,
    box: bool = True,
) -> Tensor:
    """Projected gradient descent on the decision margin within the ε-ball.

    Each restart after the first starts at a random point of the ball; a
    sample keeps the first successful restart's result, else the one with
    the lowest margin. `eps` may be one number or one radius per sample (L2).
    """
    best = x.clone()
    best_margin = torch.full((x.shape[0],), math.inf, device=x.device)
    for r in range(restarts):
        start = random_start or r > 0
        if norm == "linf":
            adv = _pgd_linf(tracker, x, float(eps), steps, step_size, start, box)
        else:
            adv = _pgd_l2(tracker, x, eps, steps, step_size, start, box)
        m = margin(tracker.outputs(adv), tracker.labels, tracker.target)
        better = (m < best_margin) & (best_margin >= 0)
        best = torch.where(better.view(-1, *[1] * (x.dim() - 1)), adv, best)
        best_margin = torch.where(better, m, best_margin)
        if (best_margin < 0).all():
            break
    return best


def _pgd_linf(
    tracker: Tracker,
    x: Tensor,
    eps: float,
    steps: int,
    step_size: float | None,
    random_start: bool,
    box: bool,
) -> Tensor:
    lo, hi = _bounds(box)
    attack = PGD(_captum_forward(tracker), _captum_loss(tracker), lo, hi)
    with _quiet_captum():
        adv = attack.perturb(
            x,
            radius=eps,
            step_size=step_size or 2.5 * eps / steps,
            step_num=steps,
            target=tracker.labels,
            random_start=random_start,
            norm="Linf",
        ).detach()
    return adv


def _pgd_l2(
    tracker: Tracker,
    x: Tensor,
    eps: float | Tensor,
    steps: int,
    step_size: float | Tensor | None,
    random_start: bool,
    box: bool,
) -> Tensor:
    shape = (-1, *[1] * (x.dim() - 1))
    radius = torch.as_tensor(eps, dtype=x.dtype, device=x.device).reshape(-1)
    radius = radius.expand(x.shape[0]).reshape(shape)
    alpha = 2.5 * radius / steps if step_size is None else step_size
    delta = torch.zeros_like(x)
    if random_start:
        d = torch.randn_like(x)
        u = torch.rand(x.shape[0], device=x.device).view(shape)
        delta = d / flat_norm(d).clamp_min(1e-12) * radius * u.pow(1 / x[0].numel())
        delta = project_box(x + delta, box) - x
    for _ in range(steps):
        _, _, g = tracker.margin_and_grad(x + delta)
        g = -box_free(-g, x + delta, box)
        delta = delta - alpha * g / flat_norm(g).clamp_min(1e-12)
        delta = delta * torch.clamp(radius / flat_norm(delta).clamp_min(1e-12), max=1.0)
        delta = project_box(x + delta, box) - x
    return x + delta
