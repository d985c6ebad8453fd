"""The explorer's three plots as inline SVG: scores, certificate bar, path.

These plots are redrawn at every new result. As plotly figures they cost a
browser about 0.22 s of CPU per rerun, almost half of its work; as SVG (shown
with `st.html`) they cost next to nothing, which is what lets ten people
share a 2-core demo machine (bench/bench_load.py). Values show on hover
through SVG <title> elements. Colours and titles match `views`.

Each chart's drawing is about as wide as the column it is shown in at
1280 × 720 (`WIDTH`, `NARROW`), so its text (`SIZE`, titles `TITLE_SIZE`) is
at least 14 px on a projector, and labels sit in lanes and legends of their
own, so no line or bar crosses them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import torch

from dashboard.views import CERTIFIED, NEUTRAL, UNCONSTRAINED

WIDTH = 560  # drawing units across a full-width chart (a column of 540 px)
NARROW = 280  # across a chart in half the result column (270 px)
SIZE = 15  # every label, in drawing units: ≥ 14 px at 1280 × 720
TITLE_SIZE = 17
LINE = 22  # between the baselines of two lines of labels
TEXT = "#31333F"  # Streamlit's text colour
GRID = "#e6e6e6"
FONT = 'font-family="sans-serif"'


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 × 10^k apart) covering [lo, hi]."""
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


def _text(
    x: float, y: float, s: str, size: int = SIZE, anchor: str = "middle", **kw
) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in kw.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="{TEXT}"{extra}>{escape(s)}</text>'
    )


def _line(x1: float, y1: float, x2: float, y2: float, color: str, width=1, **kw) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in kw.items())
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
        f'stroke="{color}" stroke-width="{width}"{extra}/>'
    )


def _svg(title: str, f: Frame, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {f.width} {f.height}" '
        'width="100%" role="img" '
        f'aria-label="{escape(title)}" {FONT}>'
        f"<title>{escape(title)}</title>"
        + _text(4, 20, title, size=TITLE_SIZE, anchor="start", font_weight="bold")
        + "".join(body)
        + "</svg>"
    )


def _x_axis(f: Frame, title: str) -> list[str]:
    out = [_line(f.left, f.floor, f.end, f.floor, TEXT)]
    for t in nice_ticks(f.x0, f.x1, 4):
        out.append(_line(f.x(t), f.floor, f.x(t), f.floor + 4, TEXT))
        out.append(_text(f.x(t), f.floor + 19, f"{t:g}"))
    out.append(_text((f.left + f.end) / 2, f.floor + 19 + LINE, title))
    return out


def _y_grid(f: Frame, title: str | None = None, grid: bool = True) -> list[str]:
    """The y ticks and their values, with grid lines across the plot (or, where
    labels sit inside the plot, only short ticks that cross none)."""
    out = [] if grid else [_line(f.left, f.top, f.left, f.floor, TEXT)]
    for t in nice_ticks(f.y0, f.y1, 4):
        y = f.y(t)
        out.append(
            _line(f.left, y, f.end, y, GRID)
            if grid
            else _line(f.left - 4, y, f.left, y, TEXT)
        )
        out.append(_text(f.left - 6, y + 5, f"{t:g}", anchor="end"))
    if title:
        mid = (f.top + f.floor) / 2
        out.append(_text(14, mid, title, transform=f"rotate(-90 14 {mid:.1f})"))
    return out


def _legend(f: Frame, items: Sequence[tuple[str, str, str]], y: float) -> list[str]:
    """Entries (label, colour, "box" | "line" | "dash") right-aligned at height y."""
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
            out.append(_line(x, y - 5, x + 16, y - 5, color, 2, **dash))
        out.append(_text(x + 20, y, label, anchor="start"))
    return out


CHAR_WIDTH = 0.6  # a sans-serif character's width, in font sizes (an upper estimate)


def text_width(s: str, size: float) -> float:
    """About how wide `s` is drawn at `size` (slightly more, to be safe)."""
    return CHAR_WIDTH * size * len(s)


def _fit(name: str, room: float) -> str:
    """A label that fits `room` drawing units at SIZE: shortened with "…" if need be."""
    if text_width(name, SIZE) <= room:
        return name
    keep = max(1, int(room / (CHAR_WIDTH * SIZE)) - 1)
    return name[:keep] + "…"


def scores_chart(
    before: torch.Tensor, after: torch.Tensor, classes: Sequence[str]
) -> str:
    """Class scores before and after the attack (a binary logit is shown as is).

    The value of each bar is written over it when it fits the bar's width at
    SIZE (one logit, a few classes); with ten classes it is on hover only,
    like every class's full name (a long one is shortened to its group).
    """
    b, a = (
        before.detach().cpu().reshape(-1).tolist(),
        after.detach().cpu().reshape(-1).tolist(),
    )
    names = (
        [f"f(x) (> 0 means {classes[1]})"]
        if len(b) == 1 and len(classes) == 2
        else list(classes)
    )
    # In half the result column, with the legend under the title.
    height, top, bottom, left, right = 300, 62, 36, 56, 8
    group = (NARROW - left - right) / len(names)
    bar = min(group * 0.4, 60)
    values = [f"{v:+.2f}" for v in (*b, *a)]
    labelled = max(text_width(t, SIZE) for t in values) <= bar + 4
    room = SIZE + 6 if labelled else 0  # drawing units a value label needs
    lo, hi = min(0.0, *b, *a), max(0.0, *b, *a)
    span = max(hi - lo, 1e-6)
    plot = height - top - bottom
    above, below = room / plot, (room / plot if lo < 0 else 0.0)
    total = span / (1 - above - below)
    pad_top = max(0.12 * span, above * total)
    pad_bottom = max(0.12 * span, below * total) if lo < 0 else 0.0
    f = Frame(
        0,
        len(names),
        lo - pad_bottom,
        hi + pad_top,
        height,
        width=NARROW,
        top=top,
        bottom=bottom,
        left=left,
        right=right,
    )
    body = _y_grid(f, grid=False)  # value labels sit where grid lines would be
    for i, name in enumerate(names):
        centre = f.x(i + 0.5)
        for j, (series, v, color) in enumerate(
            (("original", b[i], NEUTRAL), ("counterfactual", a[i], UNCONSTRAINED))
        ):
            x = centre - bar + j * bar
            y_top, y_bottom = sorted((f.y(v), f.y(0)))
            body.append(
                f'<rect x="{x:.1f}" y="{y_top:.1f}" width="{bar - 1:.1f}" '
                f'height="{max(y_bottom - y_top, 0.5):.1f}" fill="{color}">'
                f"<title>{escape(name)}, {series}: {v:+.4f}</title></rect>"
            )
            if labelled:
                ty = y_top - 4 if v >= 0 else y_bottom + SIZE + 2
                body.append(_text(x + (bar - 1) / 2, ty, f"{v:+.2f}"))
        body.append(_text(centre, f.floor + 19, _fit(name, group - 2)))
    body.append(_line(f.left, f.y(0), f.end, f.y(0), "black"))
    body += _legend(
        f, [("original", NEUTRAL, "box"), ("counterfactual", UNCONSTRAINED, "box")], 44
    )
    return _svg("Scores before and after", f, body)


def certificate_chart(
    radius: float | None,
    distance: float,
    flipped: bool = True,
    overshoot: float = 0.0,
    smallest: float | None = None,
) -> str:
    """The certified radius as a safe zone, and where the change went.

    The zone, the change (a cross) and the smallest flip found (a diamond,
    when the change overshoots on purpose) share one distance axis; their
    labels are a legend under the axis, so the zone's edge never crosses
    one. A change that did not flip the decision says so: its size is the
    budget spent, not a distance that flips the class.
    """
    lanes = [(f"certified: r = {radius:.3f}", "zone")] if radius is not None else []
    if not flipped:
        lanes.append((f"no flip within {distance:.3f}", "cross"))
    elif overshoot > 0.05:
        lanes.append((f"moved {distance:.3f} (overshoot {overshoot:g})", "cross"))
    else:
        lanes.append((f"flipped at {distance:.3f}", "cross"))
    if flipped and overshoot > 0.05 and smallest is not None:
        lanes.append((f"smallest flip found: {smallest:.3f}", "diamond"))
    plot, top = 56, 34
    axis = 19 + LINE + 8  # tick labels, the axis title, a gap
    height = top + plot + axis + LINE * len(lanes) + 8
    end = max(distance, radius or 0.0, smallest or 0.0) * 1.15 + 1e-6
    f = Frame(0, end, 0, 1, height, NARROW, top=top, bottom=height - top - plot)
    body = []
    if radius is not None:
        r = f.x(radius)
        body.append(
            f'<rect x="{f.left}" y="{f.top}" width="{r - f.left:.1f}" '
            f'height="{plot}" fill="{CERTIFIED}" fill-opacity="0.35">'
            f"<title>certified radius {radius:.4f}</title></rect>"
        )
        body.append(_line(r, f.top, r, f.floor, CERTIFIED, 3))
    mid = f.top + plot / 2
    body.append(_cross(f.x(distance), mid, f"L2 size of the change: {distance:.4f}"))
    if flipped and overshoot > 0.05 and smallest is not None:
        body.append(
            _diamond(f.x(smallest), mid, f"smallest flip found: {smallest:.4f}")
        )
    body += _x_axis(f, "L2 distance from the input")
    y = f.floor + axis + LINE - 4
    for label, mark in lanes:
        x = 4
        if mark == "zone":
            body.append(
                f'<rect x="{x}" y="{y - 12}" width="14" height="14" '
                f'fill="{CERTIFIED}" fill-opacity="0.6"/>'
            )
        elif mark == "cross":
            body.append(_cross(x + 7, y - 5, label))
        else:
            body.append(_diamond(x + 7, y - 5, label))
        body.append(_text(x + 20, y, _fit(label, f.width - x - 22), anchor="start"))
        y += LINE
    return _svg("Certificate vs the change", f, body)


def _cross(x: float, y: float, tip: str, s: float = 6) -> str:
    """An ×, the change's marker, with its value on hover."""
    return (
        f'<g stroke="{UNCONSTRAINED}" stroke-width="3"><title>{escape(tip)}</title>'
        + _line(x - s, y - s, x + s, y + s, UNCONSTRAINED, 3)
        + _line(x - s, y + s, x + s, y - s, UNCONSTRAINED, 3)
        + "</g>"
    )


def _diamond(x: float, y: float, tip: str, s: float = 7) -> str:
    """A diamond, the smallest flip's marker, with its value on hover."""
    return (
        f'<polygon points="{x:.1f},{y - s:.1f} {x + s:.1f},{y:.1f} {x:.1f},'
        f'{y + s:.1f} {x - s:.1f},{y:.1f}" fill="{NEUTRAL}">'
        f"<title>{escape(tip)}</title></polygon>"
    )


def path_chart(path: dict[str, torch.Tensor], label: str) -> str:
    """Decision margin against the distance from the input, with the certified
    cone m(x) − c·L·d that no path can go below; the legend, under the title,
    names the margin, the cone and the decision boundary (the black line)."""
    d, m = path["distance"].tolist(), path["margin"].tolist()
    x1 = max(max(d), 1e-6) * 1.1
    cone = None
    if "cone" in path:
        slope = float(path["cone_slope"])
        cone = [(0.0, m[0]), (x1, m[0] - slope * x1)]
    ys = m + ([cone[1][1]] if cone else []) + [0.0]
    lo, hi = min(ys), max(ys)
    pad = 0.08 * max(hi - lo, 1e-6)
    f = Frame(0, x1, lo - pad, hi + pad, height=340, top=56, bottom=60, left=64)
    body = _y_grid(f, "decision margin")
    body.append(_line(f.left, f.y(0), f.end, f.y(0), "black"))
    if cone:
        (a, ma), (b, mb) = cone
        body.append(
            f'<line x1="{f.x(a):.1f}" y1="{f.y(ma):.1f}" x2="{f.x(b):.1f}" '
            f'y2="{f.y(mb):.1f}" stroke="{CERTIFIED}" stroke-width="2" '
            f'stroke-dasharray="6 4"><title>the Lipschitz cone: the margin cannot '
            f"fall faster than {slope:.3f} per unit of distance</title></line>"
        )
    points = " ".join(f"{f.x(x):.1f},{f.y(y):.1f}" for x, y in zip(d, m, strict=True))
    body.append(
        f'<polyline points="{points}" fill="none" stroke="{UNCONSTRAINED}" '
        'stroke-width="2"/>'
    )
    for x, y in zip(d, m, strict=True):
        body.append(
            f'<circle cx="{f.x(x):.1f}" cy="{f.y(y):.1f}" r="4" fill="{UNCONSTRAINED}">'
            f"<title>distance {x:.3f}, margin {y:.3f}</title></circle>"
        )
    body += _x_axis(f, "L2 distance from the input")
    legend = [(f"{label} margin", UNCONSTRAINED, "line")]
    if cone:
        legend.append(("Lipschitz cone", CERTIFIED, "dash"))
    legend.append(("decision boundary", "black", "line"))
    body += _legend(f, legend, 46)
    return _svg("The path: margin vs distance", f, body)
