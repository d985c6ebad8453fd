"""The dashboard's drawings: sharp PNGs, one fixed diverging scale, SVG charts."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from PIL import Image

from dashboard import svg_charts, views

SVG = "{http://www.w3.org/2000/svg}"


def decode(png: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG"
    return np.asarray(img)


def test_image_png_enlarges_pixels_into_sharp_squares():
    x = torch.rand(1, 28, 28)
    a = decode(views.image_png(x, size=280))
    assert a.shape == (280, 280)
    blocks = a.reshape(28, 10, 28, 10)
    assert (blocks == blocks[:, :1, :, :1]).all(), "nearest neighbour, no blur"
    expected = (x[0].numpy() * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(blocks[:, 0, :, 0], expected)


def test_colour_images_keep_their_size_when_they_do_not_fit_twice():
    x = torch.rand(3, 64, 64)
    a = decode(views.image_png(x, size=90))
    assert a.shape == (64, 64, 3)


def test_signed_map_is_white_at_zero_and_saturates_at_the_fixed_scale():
    values = torch.zeros(1, 3, 3)
    values[0, 0, 0], values[0, 2, 2] = views.DIFF_SCALE * 4, -views.DIFF_SCALE * 4
    a = decode(views.signed_map_png(values, size=3)).astype(int)
    assert a.shape == (3, 3, 3)
    assert (a[1, 1] > 240).all(), "zero is white"
    red, blue = a[0, 0], a[2, 2]
    assert red[0] > 2 * red[2] and blue[2] > 2 * blue[0], (red, blue)
    # Beyond the scale the colour does not change: it is clipped.
    values[0, 0, 0] = views.DIFF_SCALE
    np.testing.assert_array_equal(
        decode(views.signed_map_png(values, size=3))[0, 0], red
    )


def test_views_png_puts_three_views_side_by_side():
    x = torch.rand(1, 28, 28)
    a = decode(views.views_png(x, (x + 0.1).clamp(0, 1), scale=2))
    assert a.shape == (56, 2 * (3 * 28 + 4), 3)


def svg(text: str) -> ET.Element:
    """Parse a chart: it must be well-formed SVG."""
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    return root


def test_nice_ticks_are_round_and_cover_the_range():
    assert svg_charts.nice_ticks(0, 4.5) == [0, 1, 2, 3, 4]
    assert svg_charts.nice_ticks(-3.2, 0.1, 4) == [-3, -2, -1, 0]
    assert svg_charts.nice_ticks(0, 0.45) == [0, 0.1, 0.2, 0.3, 0.4]


def test_scores_chart_draws_two_bars_per_class_with_values_on_hover():
    before, after = torch.tensor([1.5, -2.0, 0.5]), torch.tensor([-1.0, 0.25, 3.0])
    root = svg(svg_charts.scores_chart(before, after, ["a", "b", "c"]))
    bars = root.findall(f"{SVG}rect[{SVG}title]")
    tips = [b.find(f"{SVG}title").text for b in bars]
    assert tips == [
        "a, original: +1.5000",
        "a, counterfactual: -1.0000",
        "b, original: -2.0000",
        "b, counterfactual: +0.2500",
        "c, original: +0.5000",
        "c, counterfactual: +3.0000",
    ]
    heights = [float(b.get("height")) for b in bars]
    # Bar heights are proportional to |score|.
    scores = [1.5, -1, -2, 0.25, 0.5, 3]
    ratios = [h / abs(v) for h, v in zip(heights, scores, strict=True)]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-2)


def test_certificate_chart_puts_the_radius_and_the_attack_on_one_scale():
    root = svg(svg_charts.certificate_chart(2.0, 3.0))
    zone = root.find(f"{SVG}rect")
    x0, width = float(zone.get("x")), float(zone.get("width"))
    cross = root.find(f"{SVG}g")
    stroke = cross.find(f"{SVG}line")
    x_attack = (float(stroke.get("x1")) + float(stroke.get("x2"))) / 2  # its centre
    assert (x_attack - x0) / width == pytest.approx(3.0 / 2.0, rel=1e-2)
    assert "certified: r = 2.000" in ET.tostring(root, encoding="unicode")
    # Without a certificate there is no safe zone, only the attack.
    bare = svg(svg_charts.certificate_chart(None, 0.3))
    assert bare.find(f"{SVG}rect") is None and bare.find(f"{SVG}g") is not None


def test_path_chart_has_every_point_and_the_cone_from_the_first_margin():
    path = {
        "distance": torch.linspace(0, 2, 5),
        "margin": torch.linspace(1.4, -0.1, 5),
        "cone": torch.linspace(1.4, -1.4, 5),
        "cone_slope": torch.tensor(2**0.5),
    }
    root = svg(svg_charts.path_chart(path, "this model"))
    points = root.findall(f"{SVG}circle")
    assert points[0].find(f"{SVG}title").text == "distance 0.000, margin 1.400"
    assert len(points) == 5
    lines = root.findall(f"{SVG}line")
    cone = next(ln for ln in lines if ln.find(f"{SVG}title") is not None)
    # The cone starts where the path starts.
    assert float(cone.get("x1")) == pytest.approx(float(points[0].get("cx")))
    assert float(cone.get("y1")) == pytest.approx(float(points[0].get("cy")))
    assert "Lipschitz cone" in ET.tostring(root, encoding="unicode")
