"""Follow-the-face: the change of a moved input against the moved change."""

from __future__ import annotations

import pytest
import torch

import lipnet
from lipnet.attacks.equivariance import follow_the_face, move


def test_move_shifts_with_repeated_edges_and_mirrors():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    shifted = move(x, "shift:1")
    assert torch.equal(shifted[0, 0, 1:, 1:], x[0, 0, :3, :3])
    assert torch.equal(shifted[0, 0, 0, 1:], x[0, 0, 0, :3])  # top row repeated
    assert torch.equal(move(x, "flip"), x.flip(-1))
    for bad in ("shift:0", "shift:x", "rotate:3"):
        with pytest.raises(ValueError, match="unknown transform"):
            move(x, bad)


def test_a_mirror_symmetric_linear_model_follows_the_mirror_exactly():
    torch.manual_seed(0)
    w = torch.randn(1, 1, 6, 6)
    w = (w + w.flip(-1)) / 2  # f(flip x) = f(x): the change must mirror too
    model = lipnet.LipSequential(
        lipnet.Flatten(), lipnet.FrobeniusLinear(36, 1), input_shape=(1, 6, 6)
    ).eval()
    with torch.no_grad():
        model[1].parametrizations.weight.original.copy_(w.view(1, 36))
        model[1].bias.fill_(-0.1)
    x = torch.rand(8, 1, 6, 6) * 0.2 + 0.4
    out = follow_the_face(model, x, transforms=("flip", "shift:1"))
    assert torch.allclose(out["flip"], torch.ones(8), atol=1e-5)
    assert out["flipped:flip"].all()
    # A shift moves the change off the weights' pattern: it follows only partly.
    assert (out["shift:1"] < 0.999).all()
