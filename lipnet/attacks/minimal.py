"""Minimal-L2 attacks: the smallest perturbation that flips the decision.

`fmn` is Fast Minimum-Norm (Pintor et al., NeurIPS 2021, arXiv 2102.12827)
in L2; `pgd_search` is a binary search over ε with PGD at each ε.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .common import Tracker, box_free, flat_norm, flipped, project_box
from .gradient import pgd


def fmn(
    tracker: Tracker,
    x: Tensor,
    steps: int = 100,
    alpha_init: float = 1.0,
    alpha_final: float | None = None,
    gamma_init: float = 0.05,
    gamma_final: float = 0.001,
    box: bool = True,
) -> Tensor:
    """Fast Minimum-Norm attack, L2.

    Alternates a normalized gradient step on the margin with a projection
    on an L2 ball of radius ε that adapts: it shrinks by γ while the
    iterate is adversarial and grows (first to the linearized boundary
    distance m/‖∇m‖) while it is not. γ and the step α are cosine-annealed.
    Returns the smallest adversarial iterate per sample (or the last one).
    """
    shape = (-1, *[1] * (x.dim() - 1))
    n = x.shape[0]
    alpha_final = alpha_init / 100 if alpha_final is None else alpha_final
    delta = torch.zeros_like(x)
    eps = torch.full((n,), math.inf, device=x.device)
    best = x.clone()
    best_norm = torch.full((n,), math.inf, device=x.device)
    seen_adv = torch.zeros(n, dtype=torch.bool, device=x.device)
    for k in range(steps):
        cos = 0.5 * (1 + math.cos(math.pi * k / steps))
        gamma = gamma_final + (gamma_init - gamma_final) * cos
        alpha = alpha_final + (alpha_init - alpha_final) * cos
        point = x + delta
        out, m, g = tracker.margin_and_grad(point)
        g = -box_free(-g, point, box)
        norm = flat_norm(delta).view(-1)
        adv = flipped(out, tracker.labels, tracker.target)
        improved = adv & (norm < best_norm)
        best = torch.where(improved.view(shape), point, best)
        best_norm = torch.where(improved, norm, best_norm)
        seen_adv |= adv
        g_norm = flat_norm(g).view(-1).clamp_min(1e-12)
        grow = torch.where(seen_adv, eps * (1 + gamma), norm + m / g_norm)
        eps = torch.where(adv, torch.minimum(eps, norm) * (1 - gamma), grow)
        delta = delta - (alpha / g_norm).view(shape) * g
        delta = delta * (eps / flat_norm(delta).view(-1).clamp_min(1e-12)).clamp(
            max=1.0
        ).view(shape)
        delta = project_box(x + delta, box) - x
    last = flipped(tracker.outputs(x + delta), tracker.labels, tracker.target)
    final_better = last & (flat_norm(delta).view(-1) < best_norm)
    best = torch.where(final_better.view(shape), x + delta, best)
    never = torch.isinf(best_norm) & ~final_better
    return torch.where(never.view(shape), x + delta, best)


def pgd_search(
    tracker: Tracker,
    x: Tensor,
    eps_max: float = 10.0,
    search_steps: int = 10,
    pgd_steps: int = 50,
    restarts: int = 1,
    box: bool = True,
) -> Tensor:
    """Binary search over ε of L2 PGD: per sample, the smallest ε that flips.

    Starts from ε_max (doubling it up to three times if some samples resist),
    then halves the bracket `search_steps` times; returns the adversarial
    example found at the smallest successful ε (x itself where none is).
    """
    shape = (-1, *[1] * (x.dim() - 1))
    n = x.shape[0]
    hi = torch.full((n,), float(eps_max), device=x.device)
    lo = torch.zeros(n, device=x.device)
    best = x.clone()
    found = torch.zeros(n, dtype=torch.bool, device=x.device)
    for _ in range(4):
        adv = pgd(tracker, x, hi, "l2", pgd_steps, None, restarts, True, box)
        ok = flipped(tracker.outputs(adv), tracker.labels, tracker.target)
        best = torch.where((ok & ~found).view(shape), adv, best)
        found |= ok
        if found.all():
            break
        hi = torch.where(found, hi, hi * 2)
    for _ in range(search_steps):
        mid = (lo + hi) / 2
        adv = pgd(tracker, x, mid, "l2", pgd_steps, None, restarts, True, box)
        ok = flipped(tracker.outputs(adv), tracker.labels, tracker.target)
        best = torch.where(ok.view(shape), adv, best)
        hi = torch.where(ok, mid, hi)
        lo = torch.where(ok, lo, mid)
    return best
