"""Notebook views: the dashboard's pictures as matplotlib figures, no Streamlit.

The numbers are the dashboard's: a difference map is the change summed over
channels on **one fixed diverging scale** (±0.5 for every model, white at 0,
``RdBu_r``), so a noisy perturbation and a counterfactual compare at a
glance; the certificate is a safe zone of radius r beside the distance the
attack needed; the path plots the decision margin against the distance from
the input under the Lipschitz cone m(x) − c·L·d that no path can cross
(`AttackResult.path`); the certified-accuracy curve is accuracy against ε.
Colours: certified green, the attack orange, the original purple.

Each function returns a `matplotlib.figure.Figure` built without pyplot (no
global state; Jupyter and Colab show a returned figure)::

    r = counterfactual(model, x, "transport", overshoot=1.0)
    viz.overview(r, model.classes)
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .attacks.result import AttackResult
from .units import eps_255

CERTIFIED = "#1b9e77"
ATTACK = "#d95f02"
NEUTRAL = "#7570b3"
DIFF_SCALE = 0.5
"""Difference maps span [−0.5, 0.5] for every model (as in the dashboard)."""
DIFF_COLORS = "RdBu_r"


class NotebookFigure(Figure):
    """A matplotlib Figure that Jupyter and Colab show as a PNG when returned.

    Built without pyplot, so nothing registers it for the inline backend;
    `_repr_png_` is what IPython asks of any object it displays.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()


def _figure(width: float, height: float) -> NotebookFigure:
    return NotebookFigure(figsize=(width, height), layout="constrained")


def _hw(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] → (H, W) or (H, W, 3) for imshow."""
    a = x.detach().cpu().float().clamp(0, 1).numpy()
    return a[0] if a.shape[0] == 1 else np.transpose(a, (1, 2, 0))


def _decision(outputs: torch.Tensor) -> int:
    """The class index one sample's scores decide (binary: f > 0 is class 1)."""
    out = outputs.detach().reshape(-1)
    return int(out[0] > 0) if out.numel() == 1 else int(out.argmax())


def _name(classes: Sequence[str] | None, k: int) -> str:
    return str(classes[k]) if classes is not None and k < len(classes) else str(k)


def _check_sample(result: AttackResult, sample: int) -> None:
    if not isinstance(result, AttackResult):
        raise TypeError(f"expected an AttackResult, got {type(result).__name__}")
    if not 0 <= sample < len(result.x):
        raise IndexError(f"sample {sample} is not in a batch of {len(result.x)}")


def draw_views(
    axes: Sequence[Axes],
    original: torch.Tensor,
    changed: torch.Tensor,
    titles: Sequence[str] = ("original", "counterfactual", "difference"),
    scale: float = DIFF_SCALE,
) -> Any:
    """Draw original | changed | difference on three axes; return the map's image.

    Args:
        axes: three matplotlib axes.
        original: one image (C, H, W) in [0, 1].
        changed: the changed image, same shape.
        titles: the three titles.
        scale: the difference's colour limit (±scale), fixed by default.

    Returns:
        The difference's AxesImage (for a colorbar).
    """
    gray = {"cmap": "gray", "vmin": 0, "vmax": 1, "interpolation": "nearest"}
    axes[0].imshow(_hw(original), **gray)
    axes[1].imshow(_hw(changed), **gray)
    diff = (changed - original).detach().cpu().float().sum(dim=0).numpy()
    image = axes[2].imshow(
        diff, cmap=DIFF_COLORS, vmin=-scale, vmax=scale, interpolation="nearest"
    )
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    return image


def _view_titles(result: AttackResult, sample: int, classes: Sequence[str] | None):
    before = _name(classes, _decision(result.outputs_before[sample]))
    after = _name(classes, _decision(result.outputs_after[sample]))
    d = float(result.l2[sample])
    verdict = "flipped" if bool(result.success[sample]) else "no flip"
    return (
        f"original: {before}",
        f"{result.method}: {after} ({verdict})",
        f"difference, ‖δ‖₂ = {d:.3f}",
    )


def views(
    result: AttackResult,
    sample: int = 0,
    classes: Sequence[str] | None = None,
    scale: float = DIFF_SCALE,
) -> Figure:
    """Original / counterfactual / difference of one sample, on the fixed scale.

    Args:
        result: what `lipnet.attacks.counterfactual` returned.
        sample: which image of the batch.
        classes: class names for the titles (e.g. `model.classes`).
        scale: the difference's colour limit (±0.5 for every model).

    Returns:
        A figure with three images and the difference's colour bar.
    """
    _check_sample(result, sample)
    fig = _figure(9, 3.3)
    axes = fig.subplots(1, 3)
    titles = _view_titles(result, sample, classes)
    image = draw_views(axes, result.x[sample], result.x_adv[sample], titles, scale)
    fig.colorbar(image, ax=axes[2], shrink=0.8)
    return fig


def draw_certificate(
    ax: Axes, radius: float | None, distance: float, flipped: bool = True
) -> None:
    """The certified radius as a safe zone and the attack's distance as a cross.

    Args:
        ax: the axes to draw on.
        radius: the certified L2 radius, or None for a model without one.
        distance: the L2 size of the change the attack found.
        flipped: whether the change flipped the decision.
    """
    top = max(distance, radius or 0.0) * 1.25 + 1e-6
    if radius is not None:
        ax.axvspan(0, radius, color=CERTIFIED, alpha=0.35, lw=0)
        ax.axvline(radius, color=CERTIFIED, lw=3)
        label = f"certified: r = {radius:.3f} ({eps_255(radius):.3g}/255)"
        ax.text(radius / 2, 0.72, label, ha="center")
    what = "attack needed {:.3f} to flip" if flipped else "spent {:.3f}, no flip"
    ax.plot([distance], [0.3], "x", color=ATTACK, ms=12, mew=3)
    side = "right" if distance > 0.6 * top else "center"
    ax.text(distance, 0.12, what.format(distance), ha=side, color=ATTACK)
    ax.set_xlim(0, top)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_xlabel("L2 distance from the input")
    title = "Certified margin vs the attack"
    if radius:
        title += f"  (found / certified = {distance / radius:.2f})"
    ax.set_title(title, fontsize=10)


def certificate(result: AttackResult, sample: int = 0) -> Figure:
    """The certificate beside the distance the attack found, for one sample.

    Args:
        result: an attack result (its `certified_radius` is None for a model
            without certificate: only the distance is drawn).
        sample: which image of the batch.

    Returns:
        A one-panel figure.
    """
    _check_sample(result, sample)
    fig = _figure(7, 2.2)
    radius = result.certified_radius
    draw_certificate(
        fig.subplots(),
        None if radius is None else float(radius[sample]),
        float(result.l2[sample]),
        bool(result.success[sample]),
    )
    return fig


def draw_path(ax: Axes, path: Mapping[str, torch.Tensor], label: str) -> None:
    """Decision margin against distance, under the Lipschitz cone when known.

    Args:
        ax: the axes to draw on.
        path: `AttackResult.path(sample)`: "distance", "margin", and for a
            certified model "cone_slope" (c·L).
        label: the attack's name, for the legend.
    """
    d, m = path["distance"].double().numpy(), path["margin"].double().numpy()
    ax.axhline(0, color="black", lw=1)
    ax.text(0, 0, " decision boundary", va="top", fontsize=8)
    ax.plot(d, m, "o-", color=ATTACK, lw=2, ms=4, label=f"{label} margin")
    if "cone_slope" in path:
        slope = float(path["cone_slope"])
        end = max(float(d.max()), 1e-6) * 1.1
        ax.plot(
            [0, end],
            [m[0], m[0] - slope * end],
            "--",
            color=CERTIFIED,
            lw=2,
            label=f"Lipschitz cone (slope {slope:.3f})",
        )
    ax.set_xlabel("L2 distance from the input")
    ax.set_ylabel("decision margin")
    ax.set_title("The path: margin vs distance", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")


def path(result: AttackResult, sample: int = 0) -> Figure:
    """The attack's path for one sample, with the cone its margin cannot cross.

    Args:
        result: an attack result with its trajectory kept (the default for up
            to 16 images; `keep_trajectory=True` otherwise).
        sample: which image of the batch.

    Returns:
        A one-panel figure.

    Raises:
        ValueError: the result kept no trajectory.
    """
    _check_sample(result, sample)
    data = result.path(sample)
    if data is None:
        raise ValueError("this result kept no trajectory: keep_trajectory=True")
    fig = _figure(6, 3.6)
    draw_path(fig.subplots(), data, result.method)
    return fig


def overview(
    result: AttackResult, classes: Sequence[str] | None = None, sample: int = 0
) -> Figure:
    """What the explorer shows for one sample: the views, the certificate, the path.

    Args:
        result: what `lipnet.attacks.counterfactual` returned.
        classes: class names (e.g. `model.classes`).
        sample: which image of the batch.

    Returns:
        One figure: three views on top, certificate and path below.
    """
    _check_sample(result, sample)
    fig = _figure(10, 6.6)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.1, 1])
    axes = top.subplots(1, 3)
    titles = _view_titles(result, sample, classes)
    image = draw_views(axes, result.x[sample], result.x_adv[sample], titles)
    top.colorbar(image, ax=axes[2], shrink=0.8)
    left, right = bottom.subplots(1, 2, width_ratios=[1, 1.1])
    radius = result.certified_radius
    draw_certificate(
        left,
        None if radius is None else float(radius[sample]),
        float(result.l2[sample]),
        bool(result.success[sample]),
    )
    data = result.path(sample)
    if data is None:
        right.set_axis_off()
        right.text(0.5, 0.5, "no trajectory kept", ha="center")
    else:
        draw_path(right, data, result.method)
    return fig


Curve = Mapping[Any, float]


def _points(curve: Curve) -> tuple[list[float], list[float]]:
    pairs = sorted((float(k), float(v)) for k, v in curve.items())
    return [p[0] for p in pairs], [p[1] for p in pairs]


def certified_curve(
    curves: Curve | Mapping[str, Curve],
    empirical: Curve | Mapping[str, Curve] | None = None,
    kind: str = "accuracy",
) -> Figure:
    """Certified accuracy against ε, with the empirical accuracy dashed beside it.

    Args:
        curves: {ε: accuracy} (as `lipnet.certified_accuracy` returns or a
            model card stores, ε as text or number), or {label: such a
            curve} for several models.
        empirical: the accuracy under attack at the same ε (the report's PGD
            column), one curve or one per label, drawn dashed; a label with
            no certified curve (an unconstrained model) gets its dashed one.
        kind: "accuracy" or "balanced accuracy", for the axis.

    Returns:
        A one-panel figure, ε on the x axis with its 8-bit equivalent.
    """
    single = bool(curves) and all(isinstance(v, int | float) for v in curves.values())
    named = {"certified": curves} if single else dict(curves)
    attacked: dict[str, Curve] = {}
    if empirical is not None:
        one = all(isinstance(v, int | float) for v in empirical.values())
        attacked = {"certified": empirical} if one else dict(empirical)
    fig = _figure(6, 3.6)
    ax = fig.subplots()
    colors = [CERTIFIED, ATTACK, NEUTRAL, "#e7298a", "#66a61e"]
    for i, (label, curve) in enumerate(named.items()):
        color = colors[i % len(colors)]
        name = label if single else f"{label}, certified"
        ax.plot(*_points(curve), "o-", color=color, label=name)
        if label in attacked:
            pgd = "under PGD" if single else f"{label}, under PGD"
            ax.plot(*_points(attacked[label]), "s--", color=color, label=pgd)
    for i, (label, curve) in enumerate(attacked.items()):
        if label not in named:  # a model without a certificate: its PGD curve only
            color = colors[(len(named) + i) % len(colors)]
            name = f"{label}, under PGD (no certificate)"
            ax.plot(*_points(curve), "s--", color=color, label=name)
    ax.set_xlabel("ε (L2, pixels in [0, 1])")
    ax.set_ylabel(kind)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    top = ax.secondary_xaxis("top", functions=(lambda e: e * 255, lambda v: v / 255))
    top.set_xlabel("ε × 255 (8-bit units)")
    fig.suptitle(f"Certified {kind} vs ε", fontsize=10)
    return fig
