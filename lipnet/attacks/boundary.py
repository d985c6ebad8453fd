"""Attacks that walk to the decision boundary along the gradient: the
transport counterfactual (the hKR paper's view) and DeepFool."""

from __future__ import annotations

import torch
from torch import Tensor

from .common import Tracker, box_free, flipped, predictions, project_box


def transport(
    tracker: Tracker,
    x: Tensor,
    steps: int = 50,
    step_size: float = 1.0,
    overshoot: float = 0.02,
    box: bool = True,
) -> Tensor:
    """Follow x ← x − η·(m(x) + κ)·∇m/‖∇m‖² until the decision flips.

    m is the decision margin (binary: the signed logit; multiclass: the
    margin to the target or the nearest class). For a gradient-norm-
    preserving network trained with hKR, ‖∇m‖ ≈ 1 and one step of size 1
    lands on the boundary along the optimal transport plan: the result is a
    counterfactual, not noise. κ = overshoot·|m(x₀)| steps just past the
    boundary; a smaller `step_size` gives a smoother path (the gradient flow)
    at the cost of more steps. Returns x_adv.
    """
    current = x.clone()
    done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    m0 = None
    for _ in range(steps + 1):
        out, m, g = tracker.margin_and_grad(current)
        g = -box_free(-g, current, box)
        m0 = m.abs() if m0 is None else m0
        done |= flipped(out, tracker.labels, tracker.target)
        if done.all():
            break
        aim = (m + overshoot * m0) / g.flatten(1).pow(2).sum(1).clamp_min(1e-12)
        moved = project_box(
            current - step_size * aim.view(-1, *[1] * (x.dim() - 1)) * g, box
        )
        current = torch.where(done.view(-1, *[1] * (x.dim() - 1)), current, moved)
    return current


def deepfool(
    tracker: Tracker,
    x: Tensor,
    steps: int = 50,
    overshoot: float = 0.02,
    box: bool = True,
) -> Tensor:
    """DeepFool (Moosavi-Dezfooli et al., 2016), binary and multiclass.

    At each step every other class's boundary is linearized and the closest
    one is crossed: r = |f_k − f_y| / ‖∇(f_k − f_y)‖² · ∇(f_k − f_y); the total
    perturbation is scaled by (1 + overshoot). A binary model has one
    boundary (its margin), a targeted attack only the target's.
    """
    shape = (-1, *[1] * (x.dim() - 1))
    total = torch.zeros_like(x)
    current = x.clone()
    done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    labels, target = tracker.labels, tracker.target
    for _ in range(steps + 1):
        out, jac = _jacobian(tracker, current)
        idx = torch.arange(x.shape[0], device=x.device)
        if out.shape[-1] == 1:  # one boundary: the signed logit reaching 0
            sign = torch.where(labels > 0, 1.0, -1.0).to(out)
            diffs = (-out[:, 0] * sign)[:, None]
            grads = (-jac[:, 0] * sign.view(shape))[:, None]
        elif target is None:  # every other class's boundary with the label
            diffs = out - out.gather(1, labels[:, None])
            grads = jac - jac[idx, labels][:, None]
        else:  # the boundary between the target and its strongest rival
            rival = out.scatter(1, target[:, None], float("-inf")).argmax(dim=1)
            diffs = (out[idx, target] - out[idx, rival])[:, None]
            grads = (jac[idx, target] - jac[idx, rival])[:, None]
        pred = predictions(out)
        flipped = pred != labels if target is None else pred == target
        done |= flipped
        if done.all():
            break
        norms = grads.flatten(2).norm(dim=2).clamp_min(1e-12)
        dist = diffs.abs() / norms
        if out.shape[-1] > 1 and target is None:
            dist = dist.scatter(1, labels[:, None], float("inf"))
        k = dist.argmin(dim=1)
        w = box_free(grads[idx, k], current, box)
        r = ((diffs[idx, k].abs() + 1e-4) / norms[idx, k].pow(2)).view(shape) * w
        total = torch.where(done.view(shape), total, total + r)
        current = project_box(x + (1 + overshoot) * total, box)
    return current


def _jacobian(tracker: Tracker, x: Tensor) -> tuple[Tensor, Tensor]:
    """Outputs (N, K) and their input gradients (N, K, …), K backward passes."""
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = tracker.model(xg)
        grads = []
        for k in range(out.shape[1]):
            (g,) = torch.autograd.grad(
                out[:, k].sum(), xg, retain_graph=k < out.shape[1] - 1
            )
            grads.append(g)
    tracker.n_gradients += out.shape[1]
    tracker.record(x, out)
    return out.detach(), torch.stack(grads, dim=1)
