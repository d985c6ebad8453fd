"""A training config may name its MNIST folder: a plain name, never a path."""

from __future__ import annotations

import pytest

from lipnet.data import data_dir
from lipnet.tasks import load_task


def test_mnist_full_gives_the_canonical_60000_training_images():
    if not (data_dir() / "mnist-full").is_dir():
        pytest.fail("LIPNET_DATA has no mnist-full folder (see ../shared/data)")
    config = {"task": "mnist10", "seed": 0, "val_fraction": 5000 / 60000}
    full = load_task({**config, "mnist_folder": "mnist-full"})
    assert (len(full.y_train), len(full.y_val), len(full.y_test)) == (
        55000,
        5000,
        10000,
    )
    first = load_task(config)  # the default folder: the first 10,000
    assert len(first.y_train) + len(first.y_val) == 10000
    # The card says which: all 60,000, or the first 10,000.
    assert "Training: all 60,000 images" in full.provenance["source"]
    assert "Training: the first 10,000 images" in first.provenance["source"]


@pytest.mark.parametrize("name", ["../mnist", "/etc", "..", "", "a/b", 3])
def test_a_folder_that_is_a_path_is_refused(name):
    with pytest.raises(ValueError, match="plain folder name"):
        load_task({"task": "mnist10", "mnist_folder": name})
