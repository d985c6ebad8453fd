"""A deel-torchlip model trained here, converted, uploaded and certified in a real
browser: the researcher's path of issue 23, end to end."""

from __future__ import annotations

import pytest
import torch
from deel import torchlip as tl
from playwright.sync_api import expect
from test_browser_security import (  # the module's server and page fixtures, reused
    STEP_MS,
    idle,
    model_box,
    page,  # noqa: F401 (a fixture: pytest finds it here by name)
    server,  # noqa: F401
    upload,
)
from torch import nn

import lipnet

pytestmark = pytest.mark.browser


def _trained_deel_model() -> tl.Sequential:
    """A deel-torchlip 0-vs-8-shaped binary classifier after a few hKR steps."""
    torch.manual_seed(0)
    net = tl.Sequential(
        tl.SpectralConv2d(1, 4, 3, padding=1),
        tl.GroupSort2(),
        tl.ScaledL2NormPool2d(2),
        nn.Flatten(),
        tl.SpectralLinear(4 * 14 * 14, 16),
        tl.FullSort(),
        tl.FrobeniusLinear(16, 1),
    )
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 28, 28, generator=gen) * 0.6
    y = (torch.arange(64) % 2).float()
    x[y == 1, :, 8:20, 8:20] += 0.4  # class "8" is brighter in the middle
    loss = tl.HKRLoss(alpha=0.9, min_margin=0.5)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    net.train()
    for _ in range(10):
        opt.zero_grad()
        loss(net(x), (2 * y - 1).unsqueeze(1)).backward()
        opt.step()
    return net.eval()


def test_a_converted_deel_torchlip_model_is_certified_in_the_dashboard(page, tmp_path):  # noqa: F811
    model = lipnet.from_torch(_trained_deel_model(), (1, 28, 28), ["0", "8"])
    folder = lipnet.save(model, tmp_path / "deel-model", card={"license": "test"})
    measured = lipnet.load(folder).lipschitz_check["upper_bound"]

    upload(page, folder)
    expect(model_box(page)).to_have_value("uploaded: deel-model", timeout=STEP_MS)
    idle(page, "the explorer on the converted model")
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.locator('[data-testid="stAlertContentError"]')).to_have_count(0)
    # The explorer shows a certificate for it, on the shipped 0-vs-8 test images.
    radius = page.locator('[data-testid="stMetric"]').filter(
        has_text="Certified radius r"
    )
    expect(radius).to_have_count(1, timeout=STEP_MS)
    value = radius.locator('[data-testid="stMetricValue"]').inner_text()
    assert value != "none" and float(value) >= 0
    assert 0 < measured <= 1 + 1e-3
