"""Plotly figure builders: results in, figures out, no maths beyond display.

One place decides the look: the colours, the fixed diverging scale of the
difference maps (the same for every model, so a noisy perturbation and a
counterfactual can be compared at a glance) and the figure sizes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image

CERTIFIED = "#1b9e77"
UNCONSTRAINED = "#d95f02"
NEUTRAL = "#7570b3"
DIFF_SCALE = 0.5  # difference maps span [-0.5, 0.5] for every model
DIFF_COLORS = "RdBu_r"
HEIGHT = 300
VIEW_SIZE = 280  # pixels across an image view
FONT_SIZE = 14  # every label readable on a projector at 1280 × 720


def _layout(fig: go.Figure, title: str, height: int = HEIGHT) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.02, "font": {"size": 17}},
        font={"size": FONT_SIZE},
        height=height,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


def _hw(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] → (H, W) or (H, W, 3) numpy for display."""
    a = x.detach().cpu().clamp(0, 1).numpy()
    return a[0] if a.shape[0] == 1 else np.transpose(a, (1, 2, 0))


def image_figure(x: torch.Tensor, title: str) -> go.Figure:
    """An input image with its pixel values on hover."""
    a = _hw(x)
    if a.ndim == 2:
        fig = go.Figure(
            go.Heatmap(
                z=a,
                colorscale="gray",
                zmin=0,
                zmax=1,
                showscale=False,
                hovertemplate="row %{y}, col %{x}<br>value %{z:.3f}<extra></extra>",
            )
        )
        fig.update_yaxes(autorange="reversed")
    else:
        fig = go.Figure(
            go.Image(
                z=(a * 255).astype(np.uint8),
                hovertemplate="row %{y}, col %{x}<br>RGB %{z}<extra></extra>",
            )
        )
    fig.update_xaxes(visible=False, scaleanchor="y")
    fig.update_yaxes(visible=False)
    return _layout(fig, title)


def signed_map_figure(values: torch.Tensor, title: str) -> go.Figure:
    """A difference map, summed over channels, with each value on hover: the
    interactive twin of `signed_map_png`, on the same fixed diverging scale."""
    a = values.detach().cpu().sum(dim=0).numpy()
    fig = go.Figure(
        go.Heatmap(
            z=a,
            colorscale=DIFF_COLORS,
            zmid=0,
            zmin=-DIFF_SCALE,
            zmax=DIFF_SCALE,
            colorbar={"thickness": 10, "len": 0.8},
            hovertemplate="row %{y}, col %{x}<br>%{z:+.3f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", visible=False)
    fig.update_xaxes(visible=False, scaleanchor="y")
    return _layout(fig, title)


def png_bytes(x: torch.Tensor) -> bytes:
    """One image tensor (C, H, W) as PNG bytes, at its own size."""
    return _to_png(Image.fromarray(_uint8(_hw(x))))


def image_png(x: torch.Tensor, size: int = VIEW_SIZE) -> bytes:
    """An input image as a PNG `size` pixels wide, pixels kept sharp.

    The explorer shows its images as PNGs rather than plotly heatmaps: a
    browser draws an <img> for almost nothing, which matters when ten people
    use one server (see bench/bench_load.py)."""
    return _to_png(_enlarged(_uint8(_hw(x)), size))


def signed_map_png(
    values: torch.Tensor, scale: float | None = DIFF_SCALE, size: int = VIEW_SIZE
) -> bytes:
    """A signed map (difference, attribution) as a PNG: white at 0, full colour
    at ±scale, or at ± its largest magnitude when scale is None."""
    return _to_png(_enlarged(_uint8(_signed_rgb(values, scale)), size))


def views_png(
    original: torch.Tensor, counterfactual: torch.Tensor, scale: int = 8
) -> bytes:
    """The three views side by side (original | counterfactual | difference) as PNG."""
    tiles = []
    diff = _signed_rgb(counterfactual - original)
    for a in (_hw(original), _hw(counterfactual), diff):
        a = np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a
        tiles.append(_uint8(a))
    gap = np.full((tiles[0].shape[0], 2, 3), 255, dtype=np.uint8)
    strip = np.concatenate([tiles[0], gap, tiles[1], gap, tiles[2]], axis=1)
    return _to_png(_enlarged(strip, strip.shape[1] * scale))


def _signed_rgb(values: torch.Tensor, scale: float | None = DIFF_SCALE) -> np.ndarray:
    """(C, H, W) signed values, summed over channels → (H, W, 3) RGB in [0, 1]:
    white at 0, full colour at ±scale (± the largest magnitude if None)."""
    import matplotlib

    a = values.detach().cpu().sum(dim=0).numpy()
    limit = scale if scale is not None else float(np.abs(a).max() or 1.0)
    cmap = matplotlib.colormaps[DIFF_COLORS]
    return cmap(np.clip(a / (2 * limit) + 0.5, 0, 1))[..., :3]


def _uint8(a: np.ndarray) -> np.ndarray:
    return (np.clip(a, 0, 1) * 255).round().astype(np.uint8)


def _enlarged(a: np.ndarray, width: int) -> Image.Image:
    """Nearest-neighbour upscaling by a whole factor: every pixel a sharp square."""
    img = Image.fromarray(a)
    factor = max(1, width // img.width)
    return img.resize((img.width * factor, img.height * factor), Image.NEAREST)


def _to_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # fast; these images are small
    return buf.getvalue()


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
    curves of earlier versions of the model (dashed) when the card has them."""
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
