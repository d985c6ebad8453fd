"""2D playground maths: datasets, live training, |f| against the distance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lipnet import toy


@pytest.mark.parametrize("name", toy.DATASETS)
def test_datasets(name):
    x, y = toy.make_dataset(name, 500, seed=1)
    assert x.shape == (500, 2) and set(y.unique().tolist()) == {0, 1}
    assert x.abs().max() <= 1.8
    again, _ = toy.make_dataset(name, 500, seed=1)
    assert torch.equal(x, again)


def test_snowflake_ring_labels():
    """Class 0 (−1) inside the ring, class 1 (+1) in the centre and outside."""
    x, y = toy.make_dataset("snowflake ring", 4000)
    r = x.norm(dim=1)
    assert (y[r < 0.4] == 1).all()
    assert (y[r > 1.45] == 1).all()
    assert (y[(r > 0.7) & (r < 0.8)] == 0).all()
    with pytest.raises(ValueError, match="unknown dataset"):
        toy.make_dataset("spirals")


def test_hkr_toy_network_is_a_distance_function():
    x, y = toy.make_dataset("circles", 600)
    hkr = toy.train_toy(x, y, steps=200)
    plain = toy.train_toy(x, y, lipschitz=False, steps=200)
    assert hkr.accuracy > 0.95 and plain.accuracy > 0.95
    assert hkr.losses[-1] < hkr.losses[0]
    axis, values = toy.decision_map(hkr.model, 300)
    spacing = float(axis[1] - axis[0])
    dist = toy.boundary_distance(x[:200], axis, values)
    with torch.no_grad():
        f = hkr.model(x[:200])[:, 0].abs().numpy()
    # 1-Lipschitz: |f| never exceeds the distance (up to the grid's resolution) ...
    assert (f <= dist + spacing).all()
    # ... and hKR makes it close to the distance itself.
    far = dist > 0.1
    assert np.median(f[far] / dist[far]) > 0.8
    value, radius = toy.certified_disc(hkr.model, (0.0, 0.0))
    assert radius == pytest.approx(abs(value))
