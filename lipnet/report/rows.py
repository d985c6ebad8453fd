"""The report's rows: certified against empirical robustness, image by image.

For each test image: its label, prediction, certified radius, the smallest
perturbation the attacks find (transport + FMN), and whether PGD breaks it
at each ε of a grid. Work runs in batches (`iter_report`) so a caller can
show progress, stop, and keep partial results; `summarize` turns rows into
the curves. With `keep_counterfactuals`, `iter_report` keeps each row's
smallest flip found.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..attacks import counterfactual
from ..attacks.common import predictions
from ..certify import NoCertificateError, certified_radius

REPORT_EPS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
PGD_STEPS = 20


@dataclass
class Row:
    """One test image's result."""

    index: int
    label: int
    prediction: int
    correct: bool
    radius: float | None
    found_l2: float
    ratio: float | None
    pgd_broken: dict[str, bool]
    counterfactual: Tensor | None = field(default=None, repr=False, compare=False)
    """With `keep_counterfactuals`: the smallest flip found (transport or FMN),
    the input itself for a misclassified image (found_l2 = 0), None when no
    flip was found. Not a CSV column."""


def iter_report(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps_grid: Sequence[float] = REPORT_EPS,
    batch_size: int = 50,
    fmn_steps: int = 100,
    keep_counterfactuals: bool = False,
) -> Iterator[list[Row]]:
    """Yield the rows of each batch of (x, y) as soon as it is done.

    The model should be in eval mode (a loaded model is); it is not switched.
    With `keep_counterfactuals`, each row also holds its counterfactual (on
    the CPU): ‖counterfactual − x‖₂ is its found_l2.

    Args:
        model: the classifier (eval mode).
        x: test inputs, batch first.
        y: their labels.
        eps_grid: the L2 radii PGD attacks at.
        batch_size: images per yielded batch.
        fmn_steps: FMN's steps for the smallest flip found.
        keep_counterfactuals: keep each row's counterfactual.

    Yields:
        The rows of each batch, their `index` counting from the first image.
    """
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        with torch.no_grad():
            pred = predictions(model(xb))
        try:
            radius: Tensor | None = certified_radius(model, xb, yb)
        except NoCertificateError:
            radius = None
        found = torch.full((len(xb),), float("inf"))
        best = xb.detach().cpu().clone() if keep_counterfactuals else None
        for method, params in (("transport", {}), ("fmn", {"steps": fmn_steps})):
            r = counterfactual(model, xb, method, keep_trajectory=False, **params)
            l2 = torch.where(r.success, r.l2, torch.inf).cpu()
            if best is not None:
                better = l2 < found
                best[better] = r.x_adv.detach().cpu()[better]
            found = torch.minimum(found, l2)
        # Every ε in one PGD call (the batch repeated, one radius per copy):
        # a small batch's cost is mostly a fixed cost per gradient pass.
        radii = torch.tensor([float(e) for e in eps_grid]).repeat_interleave(len(xb))
        r = counterfactual(
            model,
            xb.repeat(len(eps_grid), *[1] * (xb.dim() - 1)),
            "pgd",
            eps=radii.to(xb),
            steps=PGD_STEPS,
            keep_trajectory=False,
        )
        success = r.success.cpu().view(len(eps_grid), len(xb))
        broken = {f"{eps:g}": success[k] for k, eps in enumerate(eps_grid)}
        rows = []
        for i in range(len(xb)):
            correct = bool(pred[i] == yb[i])
            rad = None if radius is None else float(radius[i])
            dist = float(found[i]) if correct else 0.0
            rows.append(
                Row(
                    index=start + i,
                    label=int(yb[i]),
                    prediction=int(pred[i]),
                    correct=correct,
                    radius=rad,
                    found_l2=dist,
                    ratio=dist / rad if rad and correct and rad > 0 else None,
                    pgd_broken={
                        k: bool(v[i]) or not correct for k, v in broken.items()
                    },
                    counterfactual=_kept(best, xb, i, correct, dist),
                )
            )
        yield rows


def _kept(
    best: Tensor | None, xb: Tensor, i: int, correct: bool, dist: float
) -> Tensor | None:
    """Row i's counterfactual: the flip found, x itself when misclassified."""
    if best is None:
        return None
    if not correct:
        return xb[i].detach().cpu().clone()
    return best[i].clone() if math.isfinite(dist) else None


def summarize(
    rows: Sequence[Row], eps_grid: Sequence[float] = REPORT_EPS
) -> dict[str, Any]:
    """Curves and distributions from the rows computed so far.

    Args:
        rows: the rows done so far.
        eps_grid: the ε of the accuracy curve (each in the rows' `pgd_broken`).

    Returns:
        {"n"} for no rows; else n, certified, clean_accuracy, the curve (one
        point per ε: empirical and, with a certificate, certified accuracy) and
        the radii, ratios and found distances of the correct rows.
    """
    n = len(rows)
    if n == 0:
        return {"n": 0}
    certified = rows[0].radius is not None
    clean = sum(r.correct for r in rows) / n
    curve = []
    for eps in eps_grid:
        key = f"{eps:g}"
        point = {
            "eps": eps,
            "empirical": sum(r.correct and not r.pgd_broken[key] for r in rows) / n,
        }
        if certified:
            point["certified"] = sum(r.correct and r.radius > eps for r in rows) / n
        curve.append(point)
    return {
        "n": n,
        "certified": certified,
        "clean_accuracy": clean,
        "curve": curve,
        "radii": [r.radius for r in rows if r.correct and r.radius is not None],
        "ratios": [r.ratio for r in rows if r.ratio is not None],
        "found": [r.found_l2 for r in rows if r.correct],
    }


def least_robust(rows: Sequence[Row], k: int = 8) -> list[Row]:
    """The k correctly classified rows with the smallest radius (or found distance).

    Args:
        rows: the rows done so far.
        k: how many.

    Returns:
        Up to k rows, the least robust first.
    """
    correct = [r for r in rows if r.correct]
    return sorted(
        correct, key=lambda r: r.radius if r.radius is not None else r.found_l2
    )[:k]
