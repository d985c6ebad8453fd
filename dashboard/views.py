"""Image views: an input, a counterfactual, a difference map, as PNG or figure.

Results in, pictures out, no maths beyond display. The look (colours, the
fixed diverging scale of the difference maps, sizes) is `dashboard.palette`;
the plotly plots (the playground's decision map and distance plot, the
certified accuracy curve) are `dashboard.plots`. Their names are importable
from here too.
"""

from __future__ import annotations

import io

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image

from dashboard.palette import CERTIFIED as CERTIFIED
from dashboard.palette import DIFF_COLORS, DIFF_SCALE, VIEW_SIZE
from dashboard.palette import FONT_SIZE as FONT_SIZE
from dashboard.palette import HEIGHT as HEIGHT
from dashboard.palette import NEUTRAL as NEUTRAL
from dashboard.palette import UNCONSTRAINED as UNCONSTRAINED
from dashboard.palette import layout as _layout
from dashboard.plots import certified_curve_figure as certified_curve_figure
from dashboard.plots import decision_map_figure as decision_map_figure
from dashboard.plots import distance_figure as distance_figure


def _hw(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] → (H, W) or (H, W, 3) numpy for display."""
    a = x.detach().cpu().clamp(0, 1).numpy()
    return a[0] if a.shape[0] == 1 else np.transpose(a, (1, 2, 0))


def image_figure(x: torch.Tensor, title: str) -> go.Figure:
    """An input image with its pixel values on hover.

    Args:
        x: an image (C, H, W) in [0, 1].
        title: the figure's title.

    Returns:
        A heatmap (one channel) or an RGB image figure.
    """
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
    interactive twin of `signed_map_png`, on the same fixed diverging scale.

    Args:
        values: signed values (C, H, W).
        title: the figure's title.

    Returns:
        A heatmap on ±DIFF_SCALE.
    """
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
    """One image tensor (C, H, W) as PNG bytes, at its own size.

    Args:
        x: an image (C, H, W) in [0, 1].

    Returns:
        The PNG file's bytes.
    """
    return _to_png(Image.fromarray(_uint8(_hw(x))))


def image_png(x: torch.Tensor, size: int = VIEW_SIZE) -> bytes:
    """An input image as a PNG `size` pixels wide, pixels kept sharp.

    The explorer shows its images as PNGs rather than plotly heatmaps: a
    browser draws an <img> for almost nothing, which matters when ten people
    use one server (see bench/bench_load.py).

    Args:
        x: an image (C, H, W) in [0, 1].
        size: about how many pixels wide (a whole factor of the image's width).

    Returns:
        The PNG file's bytes.
    """
    return _to_png(_enlarged(_uint8(_hw(x)), size))


def signed_map_png(
    values: torch.Tensor, scale: float | None = DIFF_SCALE, size: int = VIEW_SIZE
) -> bytes:
    """A signed map (difference, attribution) as a PNG: white at 0, full colour
    at ±scale, or at ± its largest magnitude when scale is None.

    Args:
        values: signed values (C, H, W), summed over channels.
        scale: the value of full colour, or None for the largest magnitude.
        size: about how many pixels wide.

    Returns:
        The PNG file's bytes.
    """
    return _to_png(_enlarged(_uint8(_signed_rgb(values, scale)), size))


def views_png(
    original: torch.Tensor, counterfactual: torch.Tensor, scale: int = 8
) -> bytes:
    """The three views side by side (original | counterfactual | difference) as PNG.

    Args:
        original: the input (C, H, W).
        counterfactual: the counterfactual (C, H, W).
        scale: the enlargement factor.

    Returns:
        The PNG file's bytes.
    """
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
