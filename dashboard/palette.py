"""The dashboard's look in one place: colours, the difference maps' fixed
diverging scale (the same for every model, so a noisy perturbation and a
counterfactual can be compared at a glance), sizes, and a plotly figure's
layout."""

from __future__ import annotations

import plotly.graph_objects as go

CERTIFIED = "#1b9e77"
UNCONSTRAINED = "#d95f02"
NEUTRAL = "#7570b3"
DIFF_SCALE = 0.5  # difference maps span [-0.5, 0.5] for every model
DIFF_COLORS = "RdBu_r"
HEIGHT = 300
VIEW_SIZE = 280  # pixels across an image view
FONT_SIZE = 14  # every label readable on a projector at 1280 × 720


def layout(fig: go.Figure, title: str, height: int = HEIGHT) -> go.Figure:
    """Give a figure the dashboard's title, font size, height and margins.

    Args:
        fig: a plotly figure (changed in place).
        title: its title.
        height: its height in pixels.

    Returns:
        The same figure.
    """
    fig.update_layout(
        title={"text": title, "x": 0.02, "font": {"size": 17}},
        font={"size": FONT_SIZE},
        height=height,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig
