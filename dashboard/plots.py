"""The dashboard's plotly plots: the playground's decision map and its |f|
against the distance, and a model card's certified accuracy curve."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch

from dashboard.palette import CERTIFIED, DIFF_COLORS, FONT_SIZE, UNCONSTRAINED
from dashboard.palette import layout as _layout


def decision_map_figure(
    axis: np.ndarray,
    values: np.ndarray,
    x: torch.Tensor,
    y: torch.Tensor,
    point: tuple[float, float],
    radius: float | None,
    title: str,
) -> go.Figure:
    """Level sets of f, the boundary, the data and one point's certified disc.

    Every trace is named (the names show on hover) and the legend is hidden:
    the title and the colour bar say what is what. The disc is drawn last, on
    top of everything, around a small hollow marker, so even a small disc
    stays visible.

    Args:
        axis: the grid's coordinates (both axes).
        values: f on the grid.
        x: the training points (N, 2).
        y: their 0/1 labels.
        point: the chosen point.
        radius: its certified radius, or None (no disc).
        title: the figure's title.

    Returns:
        The figure, square.
    """
    limit = float(np.abs(values).max()) or 1.0
    fig = go.Figure(
        go.Contour(
            x=axis,
            y=axis,
            z=values,
            name="f (level sets)",
            colorscale=DIFF_COLORS,
            zmid=0,
            zmin=-limit,
            zmax=limit,
            contours={"coloring": "heatmap", "showlines": True},
            line={"width": 0.5},
            colorbar={"thickness": 10, "title": "f"},
            ncontours=24,
            hovertemplate="x %{x:.2f}, y %{y:.2f}<br>f %{z:.3f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Contour(
            x=axis,
            y=axis,
            z=values,
            name="decision boundary (f = 0)",
            contours={"start": 0, "end": 0, "coloring": "none"},
            line={"width": 3, "color": "black"},
            showscale=False,
            hoverinfo="skip",
        )
    )
    pts = x.numpy()
    fig.add_trace(
        go.Scatter(
            x=pts[:, 0],
            y=pts[:, 1],
            name="training points",
            mode="markers",
            marker={
                "size": 4,
                "color": np.where(y.numpy() == 1, "#222222", "#ffffff"),
                "line": {"width": 0.5, "color": "#555555"},
            },
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[point[0]],
            y=[point[1]],
            name="your point",
            mode="markers",
            marker={
                "size": 7,
                "color": UNCONSTRAINED,
                "symbol": "circle-open",
                "line": {"width": 2, "color": UNCONSTRAINED},
            },
            hovertemplate="your point (%{x:.2f}, %{y:.2f})<extra></extra>",
        )
    )
    if radius is not None:
        t = np.linspace(0, 2 * np.pi, 73)
        fig.add_trace(
            go.Scatter(
                x=point[0] + radius * np.cos(t),
                y=point[1] + radius * np.sin(t),
                name="certified disc",
                mode="lines",
                fill="toself",
                fillcolor="rgba(27, 158, 119, 0.35)",  # CERTIFIED, see-through
                line={"color": CERTIFIED, "width": 2.5},
                hovertemplate=f"certified disc: radius {radius:.3f}<extra></extra>",
            )
        )
    fig.update_layout(showlegend=False)
    # Square and exactly the data's square: the plot shrinks, not the range grows.
    fig.update_xaxes(range=[axis[0], axis[-1]], scaleanchor="y", constrain="domain")
    fig.update_yaxes(range=[axis[0], axis[-1]], constrain="domain")
    return _layout(fig, title, height=420)


def distance_figure(pairs: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> go.Figure:
    """|f(x)| against the distance to the boundary, one panel per network.

    The dashed y = x line is where |f| is exactly the distance, i.e. where
    the certificate |f| / L is exact; a 1-Lipschitz network stays below it.
    The first panel (hKR) is linear; the others have logarithmic axes of
    their own: an unconstrained network's |f| can be a hundred times the
    distance, which on a linear axis flattens the y = x line to zero.

    Args:
        pairs: (network name, distances, |f|) per network, hKR first.

    Returns:
        The figure, one panel per network.
    """
    from plotly.subplots import make_subplots

    titles = [
        f"{name}: |f| ≤ distance (1-Lipschitz)"
        if i == 0
        else f"{name}: no bound (log scales)"
        for i, (name, _, _) in enumerate(pairs)
    ]
    fig = make_subplots(
        rows=1, cols=max(len(pairs), 1), subplot_titles=titles, horizontal_spacing=0.1
    )
    colors = (CERTIFIED, UNCONSTRAINED)
    for col, ((name, dist, f), color) in enumerate(
        zip(pairs, colors, strict=False), start=1
    ):
        log = col > 1
        shown = np.isfinite(dist) & ((dist > 0) & (f > 0) if log else True)
        dist, f = dist[shown], f[shown]
        top = float(np.max(dist)) if dist.size else 1.0
        low = float(np.min(dist)) if log and dist.size else 0.0
        fig.add_trace(
            go.Scatter(
                x=dist,
                y=f,
                mode="markers",
                name=name,
                marker={"size": 5, "color": color, "opacity": 0.7},
                hovertemplate=f"{name}<br>distance %{{x:.3f}}<br>|f| %{{y:.3f}}"
                "<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=[low, top],
                y=[low, top],
                mode="lines",
                name="|f| = distance (exact certificate)",
                legendgroup="exact",
                showlegend=col == 1,
                line={"color": "black", "dash": "dash"},
                hoverinfo="skip",
            ),
            row=1,
            col=col,
        )
        axis = {"type": "log"} if log else {}
        fig.update_xaxes(
            title="distance to the decision boundary", row=1, col=col, **axis
        )
        fig.update_yaxes(title=f"|f(x)|, {name}", row=1, col=col, **axis)
    fig.update_annotations(font_size=FONT_SIZE)
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0})
    fig = _layout(fig, "Is |f| a distance?", height=460)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 70, "b": 10})
    return fig


def certified_curve_figure(
    certified: dict[str, float],
    kind: str,
    previous: Sequence[Mapping[str, Any]] = (),
) -> go.Figure:
    """Certified accuracy against ε from a model card's metrics, with the
    curves of earlier versions of the model (dashed) when the card has them.

    Args:
        certified: ε (as text) → certified accuracy.
        kind: "accuracy" or "balanced accuracy".
        previous: earlier versions ({"label", "certified_accuracy"}).

    Returns:
        The figure.
    """
    fig = go.Figure()
    for entry in previous:
        curve = entry["certified_accuracy"]
        fig.add_trace(
            go.Scatter(
                x=[float(k) for k in curve],
                y=list(curve.values()),
                mode="lines+markers",
                line={"color": "#999999", "dash": "dash"},
                name=str(entry["label"]),
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[float(k) for k in certified],
            y=list(certified.values()),
            mode="lines+markers",
            line={"color": CERTIFIED},
            name="this model" if previous else "certified",
        )
    )
    fig.update_xaxes(title="ε (L2)")
    fig.update_yaxes(title=f"certified {kind}", range=[0, 1.02])
    return _layout(fig, f"Certified {kind} vs ε", height=320)
