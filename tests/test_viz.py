"""lipnet.viz: the dashboard's views as matplotlib figures, with their numbers."""

from __future__ import annotations

import matplotlib.colors
import numpy as np
import pytest
import torch

import lipnet
from lipnet import viz
from lipnet.attacks import counterfactual


@pytest.fixture(scope="module")
def result():
    torch.manual_seed(0)
    model = lipnet.LipSequential(
        lipnet.Flatten(),
        lipnet.SpectralLinear(16, 8),
        lipnet.FullSort(),
        lipnet.FrobeniusLinear(8, 1),
        input_shape=(1, 4, 4),
        classes=["dark", "bright"],
    ).eval()
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    return counterfactual(model, x, "transport", overshoot=1.0, box=False)


def _png(fig) -> bytes:
    png = fig._repr_png_()  # what Jupyter shows
    assert png.startswith(b"\x89PNG") and len(png) > 5_000
    return png


def test_views_use_the_fixed_diverging_scale(result):
    fig = viz.views(result, sample=1, classes=["dark", "bright"])
    axes = fig.axes[:3]
    diff = axes[2].images[0]
    assert diff.get_clim() == (-0.5, 0.5) and diff.get_cmap().name == "RdBu_r"
    want = (result.x_adv[1] - result.x[1]).sum(0).numpy()
    np.testing.assert_allclose(diff.get_array(), want, atol=1e-7)
    np.testing.assert_allclose(
        axes[1].images[0].get_array(), result.x_adv[1, 0].clamp(0, 1), atol=1e-7
    )
    before = "bright" if result.outputs_before[1, 0] > 0 else "dark"
    assert axes[0].get_title() == f"original: {before}"
    assert "(flipped)" in axes[1].get_title()
    assert f"{float(result.l2[1]):.3f}" in axes[2].get_title()
    _png(fig)


def test_certificate_and_path_numbers(result):
    r, d = float(result.certified_radius[0]), float(result.l2[0])
    assert d >= r  # the certificate holds
    fig = viz.certificate(result)
    ax = fig.axes[0]
    lines = [line.get_xdata() for line in ax.get_lines()]
    assert any(np.allclose(x, [r, r]) for x in lines)  # the radius
    assert any(np.allclose(x, [d]) for x in lines)  # the attack's cross
    assert f"{d / r:.2f}" in ax.get_title()
    _png(fig)
    path = result.path(0)
    fig = viz.path(result)
    cone = next(ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "--")
    (x0, x1), (y0, y1) = cone.get_xdata(), cone.get_ydata()
    slope = float(path["cone_slope"])
    assert x0 == 0 and y0 == pytest.approx(float(path["margin"][0]))
    assert y1 == pytest.approx(y0 - slope * x1)
    # Every point of the path stays on or above the cone.
    m, dist = path["margin"].double(), path["distance"].double()
    assert (m >= path["margin"][0] - slope * dist - 1e-6).all()
    _png(fig)
    assert len(viz.overview(result, ["dark", "bright"], 2).axes) >= 4


def test_certified_curve_and_bad_input(result):
    card = {"0.5": 0.9, "1": 0.7, "0.25": 0.95}
    fig = viz.certified_curve(card, empirical={"0.5": 0.8, "1": 0.5})
    solid, dashed = fig.axes[0].get_lines()[:2]
    assert list(solid.get_xdata()) == [0.25, 0.5, 1.0]
    assert list(solid.get_ydata()) == [0.95, 0.9, 0.7]
    assert dashed.get_linestyle() == "--"
    assert matplotlib.colors.to_hex(solid.get_color()) == viz.CERTIFIED
    two = viz.certified_curve({"a": card, "b": {"0.5": 0.5}})
    assert [ln.get_label() for ln in two.axes[0].get_lines()] == [
        "a, certified",
        "b, certified",
    ]
    _png(fig)
    with pytest.raises(IndexError, match="sample 3"):
        viz.views(result, sample=3)
    with pytest.raises(TypeError, match="AttackResult"):
        viz.path("not a result")
