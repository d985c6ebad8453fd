"""The dashboard's drawings: sharp PNGs, one fixed diverging scale, light plots."""

from __future__ import annotations

import io

import numpy as np
import plotly.tools
import pytest
import torch
from PIL import Image

from dashboard import views


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


@pytest.mark.parametrize(
    "spec",
    [
        lambda: views.scores_figure(
            torch.randn(10), torch.randn(10), list("0123456789")
        ),
        lambda: views.scores_figure(torch.randn(1), torch.randn(1), ["a", "b"]),
        lambda: views.certificate_figure(1.2, 1.5),
        lambda: views.certificate_figure(None, 0.3),
        lambda: views.path_figure(
            {
                "distance": torch.linspace(0, 2, 5),
                "margin": torch.linspace(1.4, -0.1, 5),
                "cone": torch.linspace(1.4, -1.4, 5),
                "cone_slope": torch.tensor(2**0.5),
            },
            "this model",
        ),
    ],
)
def test_plot_specifications_are_valid_plotly(spec):
    figure = plotly.tools.return_figure_from_figure_or_data(spec(), True)
    assert figure["data"] and figure["layout"]["title"]["text"]
