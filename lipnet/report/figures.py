"""The report's figures: plotly for the dashboard and the HTML files, one PNG.

Each takes the plain numbers of `summarize` or `slice_table`, so the CLI and
the dashboard draw the same figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def slice_figure(table: Sequence[Mapping[str, Any]], eps: float) -> Any:
    """Grouped bars per slice at one ε: certified (if any) and empirical (PGD)
    accuracy, the clean accuracy as a marker; empty slices are left out.

    Args:
        table: a slice table (`slice_table`).
        eps: the ε shown (one of the table's grid).

    Returns:
        A plotly figure.
    """
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


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    """Plotly figures of a summary: the accuracy curves, the radius histogram
    and the distribution of found distance / certified radius.

    Args:
        summary: a non-empty `summarize` result.

    Returns:
        Name → plotly figure: accuracy_curve, radius_histogram and, with a
        certificate, ratio_histogram.
    """
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


def summary_png(summary: dict[str, Any], path: Path) -> None:
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
