"""The explorer's three plots as inline SVG: scores, certificate bar, path.

These plots are redrawn at every new result. As plotly figures they cost a
browser about 0.22 s of CPU per rerun, almost half of its work; as SVG (shown
with `st.html`) they cost next to nothing, which is what lets ten people
share a 2-core demo machine (bench/bench_load.py). Values show on hover
through SVG <title> elements. Colours and titles match `views`.

Each chart's drawing is about as wide as the column it is shown in at
1280 × 720 (`WIDTH`, `NARROW`), so its text (`SIZE`, titles `TITLE_SIZE`) is
at least 14 px on a projector, and labels sit in lanes and legends of their
own, so no line or bar crosses them. The frame, axes, text and markers they
are drawn with are `dashboard.svg_draw`.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import torch

from dashboard import svg_draw as draw
from dashboard.svg_draw import CHAR_WIDTH as CHAR_WIDTH
from dashboard.svg_draw import FONT as FONT
from dashboard.svg_draw import GRID as GRID
from dashboard.svg_draw import LINE, NARROW, SIZE, Frame, text_width
from dashboard.svg_draw import TEXT as TEXT
from dashboard.svg_draw import TITLE_SIZE as TITLE_SIZE
from dashboard.svg_draw import WIDTH as WIDTH
from dashboard.svg_draw import nice_ticks as nice_ticks
from dashboard.views import CERTIFIED, NEUTRAL, UNCONSTRAINED


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
    body = draw.y_grid(f, grid=False)  # value labels sit where grid lines would be
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
                body.append(draw.text(x + (bar - 1) / 2, ty, f"{v:+.2f}"))
        body.append(draw.text(centre, f.floor + 19, draw.fit(name, group - 2)))
    body.append(draw.line(f.left, f.y(0), f.end, f.y(0), "black"))
    body += draw.legend(
        f, [("original", NEUTRAL, "box"), ("counterfactual", UNCONSTRAINED, "box")], 44
    )
    return draw.svg("Scores before and after", f, body)


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
        body.append(draw.line(r, f.top, r, f.floor, CERTIFIED, 3))
    mid = f.top + plot / 2
    body.append(
        draw.cross(f.x(distance), mid, f"L2 size of the change: {distance:.4f}")
    )
    if flipped and overshoot > 0.05 and smallest is not None:
        body.append(
            draw.diamond(f.x(smallest), mid, f"smallest flip found: {smallest:.4f}")
        )
    body += draw.x_axis(f, "L2 distance from the input")
    y = f.floor + axis + LINE - 4
    for label, mark in lanes:
        x = 4
        if mark == "zone":
            body.append(
                f'<rect x="{x}" y="{y - 12}" width="14" height="14" '
                f'fill="{CERTIFIED}" fill-opacity="0.6"/>'
            )
        elif mark == "cross":
            body.append(draw.cross(x + 7, y - 5, label))
        else:
            body.append(draw.diamond(x + 7, y - 5, label))
        body.append(
            draw.text(x + 20, y, draw.fit(label, f.width - x - 22), anchor="start")
        )
        y += LINE
    return draw.svg("Certificate vs the change", f, body)


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
    body = draw.y_grid(f, "decision margin")
    body.append(draw.line(f.left, f.y(0), f.end, f.y(0), "black"))
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
    body += draw.x_axis(f, "L2 distance from the input")
    legend = [(f"{label} margin", UNCONSTRAINED, "line")]
    if cone:
        legend.append(("Lipschitz cone", CERTIFIED, "dash"))
    legend.append(("decision boundary", "black", "line"))
    body += draw.legend(f, legend, 46)
    return draw.svg("The path: margin vs distance", f, body)
