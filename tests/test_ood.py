"""The out-of-distribution hint: calibration, strict reading of the card, the CLI."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil

import pytest
import torch

import lipnet
from lipnet import ood
from lipnet.__main__ import main
from lipnet.data import image_to_tensor, rendered_digit

SHAPE = (1, 4, 4)


def _clusters(n: int, seed: int, shift: float = 0.0) -> tuple[torch.Tensor, ...]:
    """Two clusters of 4×4 images: a dark and a bright checkerboard, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    board = (torch.arange(16).view(4, 4) + torch.arange(4).view(4, 1)) % 2
    centres = torch.stack([0.2 + 0.2 * board, 0.8 - 0.2 * board]).view(2, *SHAPE)
    y = torch.arange(n) % 2
    x = centres[y] + 0.05 * torch.randn(n, *SHAPE, generator=gen) + shift
    return x, y


@pytest.fixture(scope="module")
def toy():
    """A small random 1-Lipschitz network, calibrated on the two clusters (q=0.9)."""
    torch.manual_seed(0)
    model = lipnet.LipSequential(
        lipnet.Flatten(),
        lipnet.SpectralLinear(16, 8),
        lipnet.GroupSort2(),
        lipnet.FrobeniusLinear(8, 1),
        input_shape=SHAPE,
        classes=["dark", "bright"],
    ).eval()
    x_train, y_train = _clusters(600, seed=1)
    x_test, _ = _clusters(1000, seed=2)
    entry = ood.calibrate(model, x_train, y_train, x_test, quantile=0.9)
    model.spec = {"card": {"ood": entry}}
    return model, entry


def test_features_are_the_input_of_the_last_dense_layer(toy):
    model, _ = toy
    x, _ = _clusters(5, seed=3)
    assert ood.feature_layer(model) == 3
    expected = model[2](model[1](model[0](x)))
    assert torch.allclose(ood.features(model, x), expected.double(), atol=1e-6)
    assert ood.pixel_stats(x).shape == (5, len(ood.PIXEL_STATS))


def test_calibration_flags_about_one_minus_q_of_new_in_distribution_points(toy):
    model, entry = toy
    assert json.loads(json.dumps(entry)) == entry  # plain JSON
    assert entry["n_train"] == 600 and entry["n_test"] == 1000
    assert abs(entry["flagged_test_share"] - 0.1) < 0.01
    fresh, _ = _clusters(2000, seed=4)
    share = ood.is_unusual(model, fresh).double().mean().item()
    assert 0.05 < share < 0.16


def test_far_and_flat_inputs_are_flagged(toy):
    model, _ = toy
    far, _ = _clusters(50, seed=5, shift=3.0)
    flat = torch.full((3, *SHAPE), 0.5)
    result = ood.check(model, torch.cat([far, flat]))
    assert result.unusual.all()
    assert (result.score > 2 * result.threshold).all()
    assert result.score.shape == (53,) and result.message == ood.MESSAGE
    single = ood.ood_score(model, flat[0])  # one image without a batch dimension
    assert single.shape == (1,) and single.item() > result.threshold
    assert ood.is_unusual(model, torch.full((1, *SHAPE), float("nan"))).item()


def _with(entry: dict, path: tuple, value) -> dict:
    bad = copy.deepcopy(entry)
    target = bad
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return bad


MALFORMED = {
    "threshold as text": (("threshold",), "1.2"),
    "threshold NaN": (("threshold",), float("nan")),
    "threshold infinite": (("threshold",), float("inf")),
    "negative threshold": (("threshold",), -1.0),
    "quantile 1": (("quantile",), 1.0),
    "layer as bool": (("layer",), True),
    "wrong layer": (("layer",), 2),
    "wrong method": (("method",), "euclid"),
    "wrong version": (("version",), 2),
    "means as object": (("features", "class_means"), {"0": [0.0]}),
    "NaN mean": (("features", "class_means", 0, 0), float("nan")),
    "bool in means": (("pixels", "class_means", 1, 2), True),
    "text in means": (("features", "class_means", 1, 0), "0"),
    "short row": (("features", "class_means", 1), [0.0, 1.0]),
    "three classes": (("features", "class_means"), [[0.0] * 8] * 3),
    "one class": (("features", "class_means"), [[0.0] * 8]),
    "zero variance": (("features", "variance", 3), 0.0),
    "negative variance": (("pixels", "variance", 0), -1.0),
    "infinite variance": (("pixels", "variance", 0), float("inf")),
    "five pixel stats": (("pixels", "variance"), [1.0] * 5),
    "zero scale": (("pixels", "scale"), 0.0),
    "scale as list": (("features", "scale"), [1.0]),
    "view as list": (("features",), []),
    "extra view key": (("pixels", "extra"), 1),
    "unknown key": (("extra",), 1),
    "share above 1": (("flagged_test_share",), 2.0),
    "negative count": (("n_train",), -1),
    "huge variance list": (("features", "variance"), [1.0] * 1_000_000),
    "huge means": (("features", "class_means"), [[0.0] * 150_000] * 2),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_calibrations_give_none(toy, case):
    model, entry = toy
    path, value = MALFORMED[case]
    bad = _with(entry, path, value)
    x, _ = _clusters(4, seed=6)
    assert isinstance(ood.calibration_problem(bad, model), str)
    good_spec = model.spec
    model.spec = {"card": {"ood": bad}}
    try:
        assert ood.check(model, x) is None
        assert ood.ood_score(model, x) is None and ood.is_unusual(model, x) is None
    finally:
        model.spec = good_spec


def test_wrong_feature_size_missing_or_foreign_entries_give_none(toy):
    model, entry = toy
    x, _ = _clusters(4, seed=6)
    wide = copy.deepcopy(entry)  # a consistent entry for a wider feature map
    wide["features"]["class_means"] = [[0.0] * 9] * 2
    wide["features"]["variance"] = [1.0] * 9
    assert ood.parse_calibration(wide, layer=3, n_classes=2) is not None
    assert "dimensions" in ood.calibration_problem(wide, model)
    good_spec = model.spec
    try:
        for spec in (
            {"card": {"ood": wide}},
            {"card": {"ood": json.loads('{"threshold": NaN}')}},
            {"card": {"ood": None}},
            {"card": {"ood": [entry]}},
            {"card": {"ood": "ood"}},
            {"card": {}},
            {"card": []},
            {},
            None,
        ):
            model.spec = spec
            assert ood.check(model, x) is None, spec
    finally:
        model.spec = good_spec
    assert ood.calibration_problem(entry, model) is None
    assert isinstance(ood.check(model, x), ood.OODResult)


@pytest.fixture(scope="module")
def mnist08(load_model):
    return load_model("mnist08-hkr")


def test_shipped_mnist08_flags_grey_and_noise_not_a_drawn_zero(mnist08):
    assert ood.calibration_problem(mnist08.spec["card"]["ood"], mnist08) is None
    grey = torch.full((1, 1, 28, 28), 0.5)
    noise = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    zero = image_to_tensor(rendered_digit(0), mnist08.spec, invert=False)
    result = ood.check(mnist08, torch.cat([grey, noise, zero]))
    assert result.unusual.tolist() == [True, True, False]
    # measured: grey ≈ 17, noise ≈ 11 and the zero ≈ 0.7 times the threshold
    assert (result.score[:2] > 3 * result.threshold).all()
    assert result.score[2] < 0.9 * result.threshold


def test_shipped_mnist08_flags_few_real_test_images(mnist08, mnist08_test):
    x, _ = mnist08_test
    share = ood.is_unusual(mnist08, x[:500]).double().mean().item()
    assert share < 0.05


def test_cli_writes_a_calibration_that_loads(tmp_path, models_dir, capsys):
    folder = tmp_path / "mnist08-hkr"
    shutil.copytree(models_dir / "mnist08-hkr", folder)
    spec = json.loads((folder / "spec.json").read_text())
    spec["card"].pop("ood", None)
    (folder / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    weights = hashlib.sha256((folder / "weights.safetensors").read_bytes())

    assert main(["ood", str(folder), "--n-train", "200"]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((folder / "spec.json").read_text())
    entry = written["card"]["ood"]
    assert printed["threshold"] == entry["threshold"] > 0
    assert entry["n_train"] == 200 and entry["n_test"] == 1954
    assert abs(entry["flagged_test_share"] - 0.01) < 0.005
    assert written["weights"]["sha256"] == weights.hexdigest()
    assert {k: v for k, v in written["card"].items() if k != "ood"} == spec["card"]
    assert (folder / "CARD.md").read_text().startswith("# mnist08-hkr")
    model = lipnet.load(folder)
    assert ood.read_calibration(model) is not None
    assert ood.is_unusual(model, torch.full((1, 1, 28, 28), 0.5)).item()


def test_size_limit_holds_when_the_model_does_not_name_its_classes(toy):
    _, entry = toy
    big = copy.deepcopy(entry)
    big["features"]["class_means"] = [[0.0] * 16_384] * 20
    big["features"]["variance"] = [1.0] * 16_384
    assert "more than" in ood.parse_calibration(big)
