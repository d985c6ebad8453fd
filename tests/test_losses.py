"""Losses on fixed numbers: hand computations and deel-torchlip equivalents."""

from __future__ import annotations

import pytest
import torch
from deel import torchlip

import lipnet

F = torch.tensor([2.0, -1.0, 0.5, -3.0])
Y01 = torch.tensor([1, 0, 0, 1])


def test_hinge_by_hand():
    # y in {-1, 1}: [1, -1, -1, 1]; y·f = [2, 1, -0.5, -3]; relu(1.5 - y·f)
    expected = torch.tensor([0.0, 0.5, 2.0, 4.5])
    loss = lipnet.HingeLoss(1.5, reduction="none")(F, Y01)
    assert torch.allclose(loss, expected)
    assert torch.isclose(lipnet.HingeLoss(1.5)(F, 2 * Y01 - 1), expected.mean())


def test_kr_by_hand():
    # E[f | y=1] - E[f | y=0] = (2 - 3)/2 - (-1 + 0.5)/2 = -0.5 + 0.25
    assert torch.isclose(lipnet.KRLoss()(F, Y01), torch.tensor(-0.25))
    assert torch.isclose(lipnet.KRLoss()(F, 2 * Y01 - 1), torch.tensor(-0.25))


def test_hkr_by_hand():
    alpha, m = 0.9, 1.5
    expected = alpha * 7.0 / 4 - (1 - alpha) * (-0.25)
    assert torch.isclose(lipnet.HKRLoss(alpha, m)(F, Y01), torch.tensor(expected))
    assert torch.isclose(lipnet.HKRLoss(1.0, m)(F, Y01), torch.tensor(7.0 / 4))
    assert torch.isclose(lipnet.HKRLoss(0.0, m)(F, Y01), torch.tensor(0.25))


def test_multiclass_by_hand():
    out = torch.tensor([[2.0, -1.0, 0.0], [0.5, 0.5, -2.0]])
    labels = torch.tensor([0, 2])
    # sample 0 (class 0): relu(1-2)*2=0, relu(1-1)=0, relu(1-0)=1 -> 1/3
    # sample 1 (class 2): others relu(1+0.5)=1.5 twice, true relu(1+2)*2=6 -> 9/3
    hinge = lipnet.MulticlassHingeLoss(1.0, reduction="none")(out, labels)
    assert torch.allclose(hinge, torch.tensor([1 / 3, 9 / 3]))
    one_hot = torch.nn.functional.one_hot(labels, 3)
    assert torch.allclose(lipnet.MulticlassHingeLoss(1.0, "none")(out, one_hot), hinge)
    # KR per class c: E[f_c | y=c] - E[f_c | y!=c]; class 1 has no positive,
    # so only its negative mean counts.
    kr = lipnet.HKRMulticlassLoss(0.0)(out, labels)
    c0 = 2.0 - 0.5
    c1 = -(-1.0 + 0.5) / 2
    c2 = -2.0 - 0.0
    assert torch.isclose(kr, torch.tensor(-(c0 + c1 + c2) / 3))


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.9, 0.995, 1.0])
def test_binary_losses_match_deel_torchlip(alpha):
    torch.manual_seed(0)
    f = torch.randn(64, 1) * 3
    y = (torch.rand(64, 1) > 0.3).float()
    for labels in (y, 2 * y - 1):
        ours = lipnet.HKRLoss(alpha, min_margin=1.5)(f, labels)
        theirs = torchlip.HKRLoss(alpha, min_margin=3.0)(f, labels)
        assert torch.isclose(ours, theirs, atol=1e-6)
    assert torch.isclose(lipnet.KRLoss()(f, y), torchlip.KRLoss()(f, y), atol=1e-6)
    assert torch.isclose(
        lipnet.HingeLoss(1.5)(f, y), torchlip.HingeMarginLoss(3.0)(f, y), atol=1e-6
    )


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.99, 1.0])
def test_multiclass_losses_match_deel_torchlip(alpha):
    torch.manual_seed(1)
    out = torch.randn(128, 10) * 2
    labels = torch.randint(0, 10, (128,))
    one_hot = torch.nn.functional.one_hot(labels, 10).float()
    ours = lipnet.HKRMulticlassLoss(alpha, min_margin=0.5)(out, labels)
    theirs = torchlip.HKRMulticlassLoss(alpha, min_margin=1.0)(out, one_hot)
    assert torch.isclose(ours, theirs, atol=1e-5)
    assert torch.isclose(
        lipnet.MulticlassHingeLoss(0.5)(out, labels),
        torchlip.HingeMulticlassLoss(1.0)(out, one_hot),
        atol=1e-5,
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        lipnet.HKRLoss(1.5)
    with pytest.raises(ValueError, match="labels"):
        lipnet.HKRLoss(0.5)(torch.zeros(4), torch.zeros(3))
    with pytest.raises(ValueError, match="reduction"):
        lipnet.HingeLoss(1.0, reduction="max")(F, Y01)


def test_top2_margin_hkr_by_hand():
    out = torch.tensor([[2.0, -1.0, 0.0], [0.5, 0.5, -2.0]])
    labels = torch.tensor([0, 2])
    # margins f_y - max_other: 2 - 0 = 2 ; -2 - 0.5 = -2.5 ; hinge m=1: 0, 3.5
    hinge = lipnet.HKRMarginLoss(1.0, min_margin=1.0, reduction="none")(out, labels)
    assert torch.allclose(hinge, torch.tensor([0.0, 3.5]))
    kr = lipnet.HKRMulticlassLoss(0.0)(
        out, labels
    )  # -KR, shared with the one-vs-all loss
    both = lipnet.HKRMarginLoss(0.5, min_margin=1.0)(out, labels)
    assert torch.isclose(both, 0.5 * 1.75 + 0.5 * kr)
