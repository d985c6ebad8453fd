"""The drawing kit of the dashboard's SVG charts: a frame, axes, text, markers.

Sizes are in drawing units about as wide as the column a chart is shown in
at 1280 × 720 (`WIDTH`, `NARROW`), so text at `SIZE` (titles `TITLE_SIZE`)
is at least 14 px on a projector. Colours match `dashboard.views`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from dashboard.views import NEUTRAL, UNCONSTRAINED

WIDTH = 560  # drawing units across a full-width chart (a column of 540 px)
NARROW = 280  # across a chart in half the result column (270 px)
SIZE = 15  # every label, in drawing units: ≥ 14 px at 1280 × 720
TITLE_SIZE = 17
LINE = 22  # between the baselines of two lines of labels
TEXT = "#31333F"  # Streamlit's text colour
GRID = "#e6e6e6"
FONT = 'font-family="sans-serif"'


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 × 10^k apart) covering [lo, hi].

    Args:
        lo: the low end.
        hi: the high end.
        n: about how many intervals.

    Returns:
        The ticks, low to high.

    >>> nice_ticks(0, 1)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    """
    span = max(hi - lo, 1e-9)
    raw = span / n
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [round(k * step, 10) for k in range(first, math.floor(hi / step + 1e-9) + 1)]


@dataclass
class Frame:
    """A plot area: data ranges mapped onto SVG pixels (y grows downwards)."""

    x0: float
    x1: float
    y0: float
    y1: float
    height: int
    width: int = WIDTH
    left: int = 56
    right: int = 12
    top: int = 34
    bottom: int = 48

    def x(self, v: float) -> float:
        span = self.width - self.left - self.right
        return self.left + (v - self.x0) / (self.x1 - self.x0) * span

    def y(self, v: float) -> float:
        span = self.height - self.top - self.bottom
        return self.top + (self.y1 - v) / (self.y1 - self.y0) * span

    @property
    def floor(self) -> float:
        return self.height - self.bottom

    @property
    def end(self) -> float:
        """The right edge of the plot area."""
        return self.width - self.right


def text(
    x: float, y: float, s: str, size: int = SIZE, anchor: str = "middle", **kw
) -> str:
    """A `<text>` element at (x, y) in the charts' colour, its text escaped.

    Args:
        x: where the anchor sits, in drawing units.
        y: the baseline.
        s: the text.
        size: the font size.
        anchor: "start", "middle" or "end".
        **kw: more attributes (underscores become hyphens: font_weight).

    Returns:
        The SVG element.
    """
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="{TEXT}"{_attributes(kw)}>{escape(s)}</text>'
    )


def line(x1: float, y1: float, x2: float, y2: float, color: str, width=1, **kw) -> str:
    """A `<line>` element from (x1, y1) to (x2, y2), in drawing units, of
    `color` and `width`; `kw` as in `text` (stroke_dasharray: a dashed line).
    Returns the SVG element."""
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
        f'stroke="{color}" stroke-width="{width}"{_attributes(kw)}/>'
    )


def _attributes(kw: dict) -> str:
    """More SVG attributes from keywords: font_weight="bold" → font-weight."""
    return "".join(f' {k.replace("_", "-")}="{v}"' for k, v in kw.items())


def svg(title: str, f: Frame, body: list[str]) -> str:
    """A whole chart: its title (also for screen readers) above the body.

    Args:
        title: the chart's title.
        f: its frame (the drawing's width and height).
        body: the SVG elements drawn.

    Returns:
        The `<svg>` element, as wide as its column.
    """
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {f.width} {f.height}" '
        'width="100%" role="img" '
        f'aria-label="{escape(title)}" {FONT}>'
        f"<title>{escape(title)}</title>"
        + text(4, 20, title, size=TITLE_SIZE, anchor="start", font_weight="bold")
        + "".join(body)
        + "</svg>"
    )


def x_axis(f: Frame, title: str) -> list[str]:
    """The x axis: a line, ticks with their values, and its title under them.

    Args:
        f: the frame.
        title: the axis title.

    Returns:
        The SVG elements.
    """
    out = [line(f.left, f.floor, f.end, f.floor, TEXT)]
    for t in nice_ticks(f.x0, f.x1, 4):
        out.append(line(f.x(t), f.floor, f.x(t), f.floor + 4, TEXT))
        out.append(text(f.x(t), f.floor + 19, f"{t:g}"))
    out.append(text((f.left + f.end) / 2, f.floor + 19 + LINE, title))
    return out


def y_grid(f: Frame, title: str | None = None, grid: bool = True) -> list[str]:
    """The y ticks and their values, with grid lines across the plot (or, where
    labels sit inside the plot, only short ticks that cross none).

    Args:
        f: the frame.
        title: the axis title (written sideways), or None.
        grid: grid lines (True) or short ticks (False).

    Returns:
        The SVG elements.
    """
    out = [] if grid else [line(f.left, f.top, f.left, f.floor, TEXT)]
    for t in nice_ticks(f.y0, f.y1, 4):
        y = f.y(t)
        out.append(
            line(f.left, y, f.end, y, GRID)
            if grid
            else line(f.left - 4, y, f.left, y, TEXT)
        )
        out.append(text(f.left - 6, y + 5, f"{t:g}", anchor="end"))
    if title:
        mid = (f.top + f.floor) / 2
        out.append(text(14, mid, title, transform=f"rotate(-90 14 {mid:.1f})"))
    return out


def legend(f: Frame, items: Sequence[tuple[str, str, str]], y: float) -> list[str]:
    """Entries (label, colour, "box" | "line" | "dash") right-aligned at height y.

    Args:
        f: the frame.
        items: the entries, left to right.
        y: the baseline.

    Returns:
        The SVG elements.
    """
    out, x = [], f.width - 4
    for label, color, kind in reversed(items):
        x -= text_width(label, SIZE) + 30
        if kind == "box":
            out.append(
                f'<rect x="{x:.1f}" y="{y - 11:.1f}" width="12" height="12" '
                f'fill="{color}"/>'
            )
        else:
            dash = {"stroke_dasharray": "5 3"} if kind == "dash" else {}
            out.append(line(x, y - 5, x + 16, y - 5, color, 2, **dash))
        out.append(text(x + 20, y, label, anchor="start"))
    return out


CHAR_WIDTH = 0.6  # a sans-serif character's width, in font sizes (an upper estimate)


def text_width(s: str, size: float) -> float:
    """About how wide `s` is drawn at `size` (slightly more, to be safe).

    Args:
        s: the text.
        size: the font size.

    Returns:
        The width in drawing units.
    """
    return CHAR_WIDTH * size * len(s)


def fit(name: str, room: float) -> str:
    """A label that fits `room` drawing units at SIZE: shortened with "…" if need be.

    Args:
        name: the label.
        room: the width it may take.

    Returns:
        The label, or its start and "…".
    """
    if text_width(name, SIZE) <= room:
        return name
    keep = max(1, int(room / (CHAR_WIDTH * SIZE)) - 1)
    return name[:keep] + "…"


def cross(x: float, y: float, tip: str, s: float = 6) -> str:
    """An ×, the change's marker, with its value on hover.

    Args:
        x: the centre.
        y: the centre.
        tip: the hover text.
        s: half the size.

    Returns:
        The SVG group.
    """
    return (
        f'<g stroke="{UNCONSTRAINED}" stroke-width="3"><title>{escape(tip)}</title>'
        + line(x - s, y - s, x + s, y + s, UNCONSTRAINED, 3)
        + line(x - s, y + s, x + s, y - s, UNCONSTRAINED, 3)
        + "</g>"
    )


def diamond(x: float, y: float, tip: str, s: float = 7) -> str:
    """A diamond, the smallest flip's marker, with its value on hover.

    Takes the arguments of `cross`; returns an SVG polygon.
    """
    return (
        f'<polygon points="{x:.1f},{y - s:.1f} {x + s:.1f},{y:.1f} {x:.1f},'
        f'{y + s:.1f} {x - s:.1f},{y:.1f}" fill="{NEUTRAL}">'
        f"<title>{escape(tip)}</title></polygon>"
    )
