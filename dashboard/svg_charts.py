"""The explorer's three plots as inline SVG: scores, certificate bar, path.

These plots are redrawn at every new result. As plotly figures they cost a
browser about 0.22 s of CPU per rerun, almost half of its work; as SVG (shown
with `st.html`) they cost next to nothing, which is what lets ten people
share a 2-core demo machine (bench/bench_load.py). Values show on hover
through SVG <title> elements. Colours and titles match `views`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import torch

from dashboard.views import CERTIFIED, NEUTRAL, UNCONSTRAINED

WIDTH = 560  # drawing units across; a chart scales to its column
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
    left: int = 48
    right: int = 12
    top: int = 34
    bottom: int = 44

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
    x: float, y: float, s: str, size: int = 11, anchor: str = "middle", **kw
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
        + _text(4, 18, title, size=15, anchor="start", font_weight="bold")
        + "".join(body)
        + "</svg>"
    )


def _x_axis(f: Frame, title: str) -> list[str]:
    out = [_line(f.left, f.floor, f.end, f.floor, TEXT)]
    for t in nice_ticks(f.x0, f.x1):
        out.append(_line(f.x(t), f.floor, f.x(t), f.floor + 4, TEXT))
        out.append(_text(f.x(t), f.floor + 16, f"{t:g}", size=10))
    out.append(_text((f.left + f.end) / 2, f.height - 6, title))
    return out


def _y_grid(f: Frame, title: str | None = None) -> list[str]:
    out = []
    for t in nice_ticks(f.y0, f.y1, 4):
        out.append(_line(f.left, f.y(t), f.end, f.y(t), GRID))
        out.append(_text(f.left - 5, f.y(t) + 3, f"{t:g}", size=10, anchor="end"))
    if title:
        mid = (f.top + f.floor) / 2
        out.append(_text(12, mid, title, transform=f"rotate(-90 12 {mid:.1f})"))
    return out


def _legend(f: Frame, items: Sequence[tuple[str, str, str]], y: float) -> list[str]:
    """Entries (label, colour, "box" | "line" | "dash") right-aligned at height y."""
    out, x = [], f.width - 12
    for label, color, kind in reversed(items):
        x -= 7 * len(label) + 26
        if kind == "box":
            out.append(
                f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" '
                f'fill="{color}"/>'
            )
        else:
            dash = {"stroke_dasharray": "5 3"} if kind == "dash" else {}
            out.append(_line(x, y - 4, x + 14, y - 4, color, 2, **dash))
        out.append(_text(x + 18, y, label, size=11, anchor="start"))
    return out


CHAR_WIDTH = 0.6  # a sans-serif character's width, in font sizes (an upper estimate)


def text_width(s: str, size: float) -> float:
    """About how wide `s` is drawn at `size` (slightly more, to be safe)."""
    return CHAR_WIDTH * size * len(s)


def _fit(name: str, room: float, size: int = 11) -> tuple[str, int]:
    """A label and a font size that fit `room` pixels: smaller, then shortened."""
    for s in (size, size - 2):
        if text_width(name, s) <= room:
            return name, s
    s = size - 2
    keep = max(1, int(room / (CHAR_WIDTH * s)) - 1)
    return name[:keep] + "…", s


def scores_chart(
    before: torch.Tensor, after: torch.Tensor, classes: Sequence[str]
) -> str:
    """Class scores before and after the attack (a binary logit is shown as is).

    The value over each bar is written across when it fits the bar and along
    it (rotated) when it does not, as with ten classes; the frame keeps room
    for it above the highest bar and below the lowest. Class names shrink,
    then shorten, to fit their group (the full name is in the bars' tooltips).
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
    # Narrower than the others (it sits in a column two fifths wide), with the
    # legend under the title.
    height, width, top, bottom, left, right = 310, 360, 48, 44, 48, 12
    group = (width - left - right) / len(names)
    bar = min(group * 0.38, 60)
    size = 9
    values = [f"{v:+.2f}" for v in (*b, *a)]
    longest = max(text_width(t, size) for t in values)
    rotate = longest > bar - 1
    room = (longest if rotate else size) + 4  # pixels a value label needs
    lo, hi = min(0.0, *b, *a), max(0.0, *b, *a)
    span = max(hi - lo, 1e-6)
    plot = height - top - bottom
    above, below = room / plot, (room / plot if lo < 0 else 0.0)
    total = span / (1 - above - below)
    pad_top = max(0.18 * span, above * total)
    pad_bottom = max(0.18 * span, below * total) if lo < 0 else 0.0
    f = Frame(
        0,
        len(names),
        lo - pad_bottom,
        hi + pad_top,
        height,
        width=width,
        top=top,
        bottom=bottom,
        left=left,
        right=right,
    )
    body = _y_grid(f)
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
            mid, label = x + (bar - 1) / 2, f"{v:+.2f}"
            if rotate:  # along the bar, reading upwards, glyphs centred on it
                tx = mid + size * 0.35
                ty, anchor = (y_top - 3, "start") if v >= 0 else (y_bottom + 3, "end")
                body.append(
                    _text(
                        tx,
                        ty,
                        label,
                        size=size,
                        anchor=anchor,
                        transform=f"rotate(-90 {tx:.1f} {ty:.1f})",
                    )
                )
            else:
                ty = y_top - 3 if v >= 0 else y_bottom + size + 2
                body.append(_text(mid, ty, label, size=size))
        shown, name_size = _fit(name, group - 4)
        body.append(_text(centre, f.floor + 16, shown, size=name_size))
    body.append(_line(f.left, f.y(0), f.end, f.y(0), "black"))
    body += _legend(
        f, [("original", NEUTRAL, "box"), ("counterfactual", UNCONSTRAINED, "box")], 38
    )
    return _svg("Scores before and after", f, body)


def certificate_chart(
    radius: float | None, distance: float, flipped: bool = True
) -> str:
    """The certified radius as a safe zone, and where the attack had to go.

    Two lanes keep the labels apart: the certified radius is named in the
    upper half of the zone, the attack's cross and its label sit in the lower
    half. An attack that did not flip the decision is labelled as such: its
    distance is the budget it spent, not a distance that flips the class.
    """
    top = max(distance, radius or 0.0) * 1.25 + 1e-6
    f = Frame(0, top, 0, 1, height=150, width=460, top=28)
    body = []
    upper = f.top + 22  # baseline of the certified label
    if radius is not None:
        r = f.x(radius)
        body.append(
            f'<rect x="{f.left}" y="{f.top}" width="{r - f.left:.1f}" '
            f'height="{f.floor - f.top}" fill="{CERTIFIED}" fill-opacity="0.35">'
            f"<title>certified radius {radius:.4f}</title></rect>"
        )
        body.append(_line(r, f.top, r, f.floor, CERTIFIED, 3))
        label = f"certified: r = {radius:.3f}"
        half = text_width(label, 13) / 2
        cx = min(max((f.left + r) / 2, f.left + 4 + half), f.end - half)
        body.append(_text(cx, upper, label, size=13))
    if flipped:
        label = f"attack needed {distance:.3f} to flip"
        tip = f"L2 distance the attack needed to flip the decision: {distance:.4f}"
    else:
        label = f"attack budget spent, no flip: {distance:.3f}"
        tip = f"L2 distance the attack spent, no flip: {distance:.4f}"
    cx, cy, s = f.x(distance), f.floor - 24, 7
    body.append(
        f'<g stroke="{UNCONSTRAINED}" stroke-width="3">'
        f"<title>{escape(tip)}</title>"
        + _line(cx - s, cy - s, cx + s, cy + s, UNCONSTRAINED, 3)
        + _line(cx - s, cy + s, cx + s, cy - s, UNCONSTRAINED, 3)
        + "</g>"
    )
    if cx + s + 4 + text_width(label, 11) <= f.width - 2:
        body.append(_text(cx + s + 4, cy + 4, label, anchor="start"))
    else:  # no room on the right: to the left of the cross
        body.append(_text(cx - s - 4, cy + 4, label, anchor="end"))
    body += _x_axis(f, "L2 distance from the input")
    return _svg("Certified margin vs the attack", f, body)


def path_chart(path: dict[str, torch.Tensor], label: str) -> str:
    """Decision margin against the distance from the input, with the certified
    cone m(x) − c·L·d that no path can go below."""
    d, m = path["distance"].tolist(), path["margin"].tolist()
    x1 = max(max(d), 1e-6) * 1.1
    cone = None
    if "cone" in path:
        slope = float(path["cone_slope"])
        cone = [(0.0, m[0]), (x1, m[0] - slope * x1)]
    ys = m + ([cone[1][1]] if cone else []) + [0.0]
    lo, hi = min(ys), max(ys)
    pad = 0.08 * max(hi - lo, 1e-6)
    f = Frame(0, x1, lo - pad, hi + pad, height=320)
    body = _y_grid(f, "decision margin")
    body.append(_line(f.left, f.y(0), f.end, f.y(0), "black"))
    body.append(
        _text(f.left + 4, f.y(0) + 13, "decision boundary", size=10, anchor="start")
    )
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
    body += _legend(f, legend, 18)
    return _svg("The path: margin vs distance", f, body)
