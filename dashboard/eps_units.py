"""ε and radii as papers write them: pixel-unit L2 beside k/255 and the per-pixel RMS.

Formatting only, for the pages' tiles, captions and tables; the units
themselves are `lipnet.units`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lipnet.units import dimension, eps_255, eps_label, eps_rms_255, parse_eps

EPS_RANGE = (0.001, 50.0)
"""The ε a page or a link accepts, in [0, 1] pixel units (L2)."""


def in_255(eps: float) -> str:
    """ε in 8-bit units: "36/255"."""
    return f"{eps_255(eps):.3g}/255"


def rms_255(eps: float, input_shape: Sequence[int]) -> str:
    """The per-pixel RMS of ε in 0–255 levels: "1.29/255 RMS per pixel"."""
    return f"{eps_rms_255(eps, dimension(input_shape)):.3g}/255 RMS per pixel"


def tile_help(eps: float, input_shape: Sequence[int]) -> str:
    """A tile's tooltip: ε in all three units, "36/255 · 1.29/255 RMS …"."""
    return f"{eps:.3g} = {in_255(eps)} in 8-bit units = {rms_255(eps, input_shape)}"


def label(eps: float, input_shape: Sequence[int]) -> str:
    """ε in all three units: "0.5 (127.5/255; 4.55/255 RMS per pixel)"."""
    return eps_label(eps, input_shape)


def read(text: str) -> float:
    """ε from "0.5" or "36/255", in the accepted range; ValueError says why not."""
    eps = parse_eps(text)
    lo, hi = EPS_RANGE
    if not lo <= eps <= hi:
        raise ValueError(
            f"ε must be between {lo:g} and {hi:g} (L2, pixels in [0, 1]), got {text!r}"
        )
    return eps


def columns(eps_grid: Sequence[float], input_shape: Sequence[int]) -> dict[str, list]:
    """Each ε of a grid in the three units, as table columns."""
    d = dimension(input_shape)
    return {
        "ε (L2)": [float(e) for e in eps_grid],
        "ε × 255": [round(eps_255(e), 2) for e in eps_grid],
        "RMS per pixel (/255)": [round(eps_rms_255(e, d), 3) for e in eps_grid],
    }


def nearest(eps: float, grid: Sequence[float]) -> float:
    """The ε of `grid` closest to `eps` (what a report measured)."""
    return min(grid, key=lambda e: abs(e - eps))


def on_axis(fig: Any, input_shape: Sequence[int]) -> Any:
    """A plotly curve against ε: each tick also in k/255, each point's hover in
    all three units (ε, k/255, per-pixel RMS); returns the same figure."""
    xs = sorted({float(e) for trace in fig.data for e in (trace.x or ())})
    fig.update_xaxes(
        tickmode="array",
        tickvals=xs,
        ticktext=[f"{e:g}<br>{in_255(e)}" for e in xs],
        title="ε (L2, pixels in [0, 1]; below it × 255)",
    )
    for trace in fig.data:
        trace.customdata = [label(float(e), input_shape) for e in trace.x or ()]
        trace.hovertemplate = (
            "ε = %{customdata}<br>%{y:.1%}<extra>%{fullData.name}</extra>"
        )
    return fig
