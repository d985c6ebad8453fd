"""Dataset-level robustness report: certified vs empirical robustness.

For each test image: its label, prediction, certified radius, the smallest
perturbation the attacks find (transport + FMN), and whether PGD breaks it
at each ε of a grid. Work runs in batches (`iter_report`) so a caller can
show progress, stop, and keep partial results; `summarize` turns rows into
the curves, and `figures` into plotly figures shared by the CLI and the
dashboard.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .attacks import counterfactual
from .attacks.common import predictions
from .certify import NoCertificateError, certified_radius

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


def iter_report(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps_grid: Sequence[float] = REPORT_EPS,
    batch_size: int = 50,
    fmn_steps: int = 100,
) -> Iterator[list[Row]]:
    """Yield the rows of each batch of (x, y) as soon as it is done.

    The model should be in eval mode (a loaded model is); it is not switched.
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
        for method, params in (("transport", {}), ("fmn", {"steps": fmn_steps})):
            r = counterfactual(model, xb, method, keep_trajectory=False, **params)
            found = torch.minimum(found, torch.where(r.success, r.l2, torch.inf).cpu())
        broken = {}
        for eps in eps_grid:
            r = counterfactual(
                model, xb, "pgd", eps=eps, steps=PGD_STEPS, keep_trajectory=False
            )
            broken[f"{eps:g}"] = r.success.cpu()
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
                )
            )
        yield rows


def summarize(
    rows: Sequence[Row], eps_grid: Sequence[float] = REPORT_EPS
) -> dict[str, Any]:
    """Curves and distributions from the rows computed so far."""
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
    """The k correctly classified rows with the smallest radius (or found distance)."""
    correct = [r for r in rows if r.correct]
    return sorted(
        correct, key=lambda r: r.radius if r.radius is not None else r.found_l2
    )[:k]


def to_csv(rows: Sequence[Row]) -> str:
    """Per-image results as CSV text (one PGD column per ε)."""
    buf = io.StringIO()
    if not rows:
        return ""
    eps_keys = list(rows[0].pgd_broken)
    fields = [f for f in asdict(rows[0]) if f != "pgd_broken"]
    writer = csv.writer(buf)
    writer.writerow(fields + [f"pgd_broken_at_{k}" for k in eps_keys])
    for r in rows:
        d = asdict(r)
        writer.writerow(
            [d[f] for f in fields] + [int(r.pgd_broken[k]) for k in eps_keys]
        )
    return buf.getvalue()


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    """Plotly figures of a summary: the accuracy curves, the radius histogram
    and the distribution of found distance / certified radius."""
    import plotly.graph_objects as go

    figs = {}
    curve = summary["curve"]
    eps = [p["eps"] for p in curve]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=eps,
            y=[p["empirical"] for p in curve],
            name="empirical (PGD)",
            mode="lines+markers",
            line={"color": "#d95f02"},
        )
    )
    if summary["certified"]:
        fig.add_trace(
            go.Scatter(
                x=eps,
                y=[p["certified"] for p in curve],
                name="certified",
                mode="lines+markers",
                line={"color": "#1b9e77"},
            )
        )
    fig.update_layout(
        title="Accuracy under L2 perturbations of size ε",
        xaxis_title="ε (L2)",
        yaxis_title="accuracy",
        yaxis_range=[0, 1.02],
    )
    figs["accuracy_curve"] = fig
    values = summary["radii"] if summary["certified"] else summary["found"]
    title = (
        "Certified radius"
        if summary["certified"]
        else "Smallest flip found (no certificate)"
    )
    hist = go.Figure(go.Histogram(x=values, nbinsx=30, marker_color="#7570b3"))
    hist.update_layout(title=title, xaxis_title="L2 distance", yaxis_title="images")
    figs["radius_histogram"] = hist
    if summary["certified"]:
        ratio = go.Figure(
            go.Histogram(x=summary["ratios"], nbinsx=30, marker_color="#1b9e77")
        )
        ratio.add_vline(x=1.0, line_color="black", annotation_text="radius")
        ratio.update_layout(
            title="Found distance (pixels in [0, 1]) / certified radius",
            xaxis_title="ratio",
            yaxis_title="images",
        )
        figs["ratio_histogram"] = ratio
    return figs


def write_report(
    rows: Sequence[Row], out: str | Path, eps_grid: Sequence[float] = REPORT_EPS
) -> dict[str, Any]:
    """Write results.csv, summary.json, one HTML per figure and summary.png."""
    import json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.csv").write_text(to_csv(rows))
    summary = summarize(rows, eps_grid)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    for name, fig in figures(summary).items():
        fig.write_html(out / f"{name}.html", include_plotlyjs=True, full_html=True)
    _summary_png(summary, out / "summary.png")
    return summary


def _summary_png(summary: dict[str, Any], path: Path) -> None:
    """The same curves and histograms as one static PNG (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if summary["certified"] else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4))
    curve = summary["curve"]
    eps = [p["eps"] for p in curve]
    axes[0].plot(
        eps, [p["empirical"] for p in curve], "o-", color="#d95f02", label="PGD"
    )
    if summary["certified"]:
        axes[0].plot(
            eps,
            [p["certified"] for p in curve],
            "o-",
            color="#1b9e77",
            label="certified",
        )
    axes[0].set(
        xlabel="ε (L2)", ylabel="accuracy", ylim=(0, 1.02), title="Accuracy vs ε"
    )
    axes[0].legend()
    values = summary["radii"] if summary["certified"] else summary["found"]
    axes[1].hist(values, bins=30, color="#7570b3")
    axes[1].set(
        xlabel="L2 distance",
        ylabel="images",
        title="Certified radius" if summary["certified"] else "Smallest flip found",
    )
    if summary["certified"]:
        axes[2].hist(summary["ratios"], bins=30, color="#1b9e77")
        axes[2].axvline(1.0, color="black")
        axes[2].set(xlabel="found / radius", ylabel="images", title="Tightness")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
