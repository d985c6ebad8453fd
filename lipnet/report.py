"""Dataset-level robustness report: certified vs empirical robustness.

For each test image: its label, prediction, certified radius, the smallest
perturbation the attacks find (transport + FMN), and whether PGD breaks it
at each ε of a grid. Work runs in batches (`iter_report`) so a caller can
show progress, stop, and keep partial results; `summarize` turns rows into
the curves, and `figures` into plotly figures shared by the CLI and the
dashboard.

Slices: `slice_table` gives the clean, certified and empirical (PGD)
accuracy of each slice of the test images, from the rows and a membership
dict (slice name → bool tensor over the images, see `slice_membership`):
per class for every task, and for CelebA faces per attribute, both the group
with the attribute (CelebA value 1) and its complement ("not Male"), so each
group has its reference next to it. Each slice's accuracy is over its own
images. With `keep_counterfactuals`, `iter_report` keeps each row's smallest
flip found, and `arrays_zip` / `write_row_arrays` save δ and the
counterfactual of each row as .npy files.
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .attacks import counterfactual
from .attacks.common import predictions
from .certify import NoCertificateError, certified_radius

REPORT_EPS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
PGD_STEPS = 20
SLICE_ATTRIBUTES = (
    "Male",
    "Young",
    "Eyeglasses",
    "Smiling",
    "Pale_Skin",
    "Mustache",
    "Wearing_Hat",
)
"""CelebA attributes a face report slices by (each: the group and its complement)."""
ALL_IMAGES = "all images"


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
    names = [f.name for f in fields(Row) if f.name not in _NOT_CSV]
    writer = csv.writer(buf)
    writer.writerow(names + [f"pgd_broken_at_{k}" for k in eps_keys])
    for r in rows:
        writer.writerow(
            [getattr(r, f) for f in names] + [int(r.pgd_broken[k]) for k in eps_keys]
        )
    return buf.getvalue()


_NOT_CSV = ("pgd_broken", "counterfactual")


# --------------------------------------------------------------------------
# Slices


def slice_membership(
    y: Tensor,
    classes: Sequence[str],
    attributes: Mapping[str, Tensor] | None = None,
    names: Sequence[str] = SLICE_ATTRIBUTES,
    skip: Sequence[str] = (),
) -> dict[str, Tensor]:
    """Which images belong to which slice: name → bool tensor over the images.

    One slice per class ("class 8", by true label), then for each attribute of
    `names` found in `attributes` (e.g. `zoo.test_attributes`) the group with
    it ("Male") and its complement ("not Male"). `skip` leaves attributes out
    (the one a face model is trained on: its classes already split by it).
    """
    out = {f"class {name}": y == k for k, name in enumerate(classes)}
    for name in names:
        if attributes and name in attributes and name not in skip:
            member = attributes[name].to(torch.bool)
            out[name] = member
            out[f"not {name}"] = ~member
    return out


def slice_table(
    rows: Sequence[Row],
    membership: Mapping[str, Tensor],
    eps_grid: Sequence[float] = REPORT_EPS,
) -> list[dict[str, Any]]:
    """Accuracy per slice of the rows done so far, "all images" first.

    Each entry: slice, n (rows in it), clean_accuracy, and for each ε of the
    grid certified_at_{ε} (correct with radius > ε; only for a certified
    model) and empirical_at_{ε} (correct and PGD found nothing). Accuracies
    are None for an empty slice. Membership is indexed by `Row.index`.
    """
    if not rows:
        return []
    last = max(r.index for r in rows)
    for name, member in membership.items():
        if member.ndim != 1 or len(member) <= last:
            raise ValueError(
                f"slice {name!r} covers {len(member)} images, the rows reach "
                f"image {last}"
            )
    certified = rows[0].radius is not None
    groups = {ALL_IMAGES: list(rows)}
    for name, member in membership.items():
        member = member.to(torch.bool).tolist()
        groups[name] = [r for r in rows if member[r.index]]
    table = []
    for name, group in groups.items():
        n = len(group)

        def share(ok, group=group, n=n):
            return sum(bool(ok(r)) for r in group) / n if n else None

        entry: dict[str, Any] = {
            "slice": name,
            "n": n,
            "clean_accuracy": share(lambda r: r.correct),
        }
        for eps in eps_grid:
            key = f"{eps:g}"
            if certified:
                entry[f"certified_at_{key}"] = share(
                    lambda r, eps=eps: r.correct and r.radius > eps
                )
            entry[f"empirical_at_{key}"] = share(
                lambda r, key=key: r.correct and not r.pgd_broken[key]
            )
        table.append(entry)
    return table


def slices_csv(table: Sequence[Mapping[str, Any]]) -> str:
    """A slice table as CSV text (empty cells for an empty slice)."""
    if not table:
        return ""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(list(table[0]))
    for entry in table:
        writer.writerow(["" if v is None else v for v in entry.values()])
    return buf.getvalue()


def telling_eps(
    table: Sequence[Mapping[str, Any]], eps_grid: Sequence[float] = REPORT_EPS
) -> float:
    """The ε of the grid that best separates the slices by default: where the
    accuracy of all images (certified if there is a certificate, else PGD) is
    closest to half the clean accuracy, so bars are neither all full nor all
    empty."""
    if not table or not table[0]["n"]:
        return eps_grid[len(eps_grid) // 2]
    whole = table[0]
    kind = "certified" if f"certified_at_{eps_grid[0]:g}" in whole else "empirical"
    half = whole["clean_accuracy"] / 2
    return min(eps_grid, key=lambda e: abs(whole[f"{kind}_at_{e:g}"] - half))


def slice_figure(table: Sequence[Mapping[str, Any]], eps: float) -> Any:
    """Grouped bars per slice at one ε: certified (if any) and empirical (PGD)
    accuracy, the clean accuracy as a marker; empty slices are left out."""
    import plotly.graph_objects as go

    key = f"{eps:g}"
    shown = [e for e in table if e["n"]]
    labels = [f"{e['slice']} (n={e['n']})" for e in shown]
    fig = go.Figure()
    bars = [("certified", "#1b9e77"), ("empirical", "#d95f02")]
    if not (shown and f"certified_at_{key}" in shown[0]):
        bars = bars[1:]  # an unconstrained model: no certified bars
    for kind, color in bars:
        fig.add_trace(
            go.Bar(
                x=labels,
                y=[e[f"{kind}_at_{key}"] for e in shown],
                name="empirical (PGD)" if kind == "empirical" else kind,
                marker_color=color,
                texttemplate="%{y:.0%}",
                textposition="outside",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=[e["clean_accuracy"] for e in shown],
            name="clean",
            mode="markers",
            marker={"color": "#333333", "symbol": "line-ew-open", "size": 18},
        )
    )
    fig.update_layout(
        title=f"Accuracy per slice at ε = {key} (L2)",
        barmode="group",
        yaxis_title="accuracy",
        yaxis_range=[0, 1.12],  # room for the labels above full bars
        yaxis_tickformat=".0%",
        xaxis_tickangle=-30 if len(shown) > 6 else 0,
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"},
    )
    return fig


# --------------------------------------------------------------------------
# Per-row arrays and the time left


def row_arrays(rows: Sequence[Row], x: Tensor) -> Iterator[tuple[str, np.ndarray]]:
    """(name, float32 array) of each row that kept a counterfactual:
    rows/NNNNNN_delta.npy (counterfactual − input) and
    rows/NNNNNN_counterfactual.npy, NNNNNN the image's index."""
    for r in rows:
        if r.counterfactual is None:
            continue
        cf = r.counterfactual.detach().cpu().to(torch.float32)
        delta = cf - x[r.index].detach().cpu().to(torch.float32)
        yield f"rows/{r.index:06d}_delta.npy", delta.numpy()
        yield f"rows/{r.index:06d}_counterfactual.npy", cf.numpy()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def arrays_zip(rows: Sequence[Row], x: Tensor) -> bytes:
    """A zip (in memory) of results.csv and each row's δ and counterfactual."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("results.csv", to_csv(rows))
        for name, array in row_arrays(rows, x):
            zf.writestr(name, _npy(array))
    return buf.getvalue()


def write_row_arrays(rows: Sequence[Row], x: Tensor, out: str | Path) -> int:
    """Write each row's δ and counterfactual under out/rows/; the files written."""
    written = 0
    for name, array in row_arrays(rows, x):
        path = Path(out) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, array, allow_pickle=False)
        written += 1
    return written


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
    rows: Sequence[Row],
    out: str | Path,
    eps_grid: Sequence[float] = REPORT_EPS,
    membership: Mapping[str, Tensor] | None = None,
) -> dict[str, Any]:
    """Write results.csv, summary.json, one HTML per figure and summary.png;
    with a slice membership also slices.csv (see `slice_table`)."""
    import json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.csv").write_text(to_csv(rows))
    if membership is not None:
        table = slice_table(rows, membership, eps_grid)
        (out / "slices.csv").write_text(slices_csv(table))
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
