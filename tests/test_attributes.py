"""One face model for many attributes: identity split, loader, loss, views, training."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lipnet
from lipnet import ood
from lipnet.__main__ import main as lipnet_main
from lipnet.attribute_words import attribute_rows, direction_label
from lipnet.attributes import (
    attribute,
    attribute_names,
    attribute_radii,
    calibrate_attributes,
)
from lipnet.data.celeba import SQUASHED_FOLDER
from lipnet.data.celeba_identity import (
    identity_example_attributes,
    identity_examples,
    identity_split,
    load_celeba_faces,
)
from lipnet.losses import HKRLoss, HKRMultiLabelLoss
from lipnet.precision import to_float64
from lipnet.train_attributes import build, fit, load_faces, loss_function, train

ATTRS = ["Mustache", "Eyeglasses", "Smiling"]


def test_the_identity_split_keeps_every_person_in_one_split():
    ids = [f"{i:06d}.jpg" for i in range(300)]
    identity = {name: i // 7 for i, name in enumerate(ids)}  # 43 people
    parts = identity_split(ids, identity, seed=3)
    people = [{identity[i] for i in v} for v in parts.values()]
    assert not (people[0] & people[1] or people[0] & people[2] or people[1] & people[2])
    assert sorted(i for v in parts.values() for i in v) == ids
    assert 200 <= len(parts["train"]) <= 217 and len(parts["test"]) > 30
    assert parts == identity_split(list(reversed(ids)), identity, seed=3)
    with pytest.raises(ValueError, match="no identity"):
        identity_split([*ids, "999999.jpg"], identity)


def _celeba(root: Path) -> None:
    """Four folders of synthetic faces, an attribute file and an identity file."""
    header = " ".join([*ATTRS, *(f"A{i}" for i in range(37))])
    rows, identities = [], []
    folders = (
        ("img_celeba_128", range(0, 12), (32, 32)),
        ("img_align_celeba_89", range(12, 24), (89, 109)),
        ("img_align_celeba", range(24, 36), (178, 218)),
        (SQUASHED_FOLDER, range(36, 48), (64, 64)),
    )
    for folder, ids, size in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in ids:
            im = Image.new("RGB", size, (0, 0, 0))
            if folder == SQUASHED_FOLDER:  # the training frame: rows 20..198 of 218
                im.paste((200, 200, 200), (0, 6, 64, 58))
            else:
                side = min(size)
                left, top = (size[0] - side) // 2, (size[1] - side) // 2
                im.paste((200, 200, 200), (left, top, left + side, top + side))
            im.save(root / folder / f"{i:06d}.jpg", quality=95)
    for i in range(48):
        values = ["1" if (i + k) % 3 == 0 else "-1" for k in range(3)]
        rows.append(f"{i:06d}.jpg " + " ".join(values + ["-1"] * 37))
        identities.append(f"{i:06d}.jpg {i // 2}")
    (root / "list_attr_celeba.txt").write_text(f"48\n{header}\n" + "\n".join(rows))
    (root / "identity_CelebA.txt").write_text("\n".join(identities) + "\n")


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data") / "celeba"
    _celeba(root)
    return root


def test_the_loader_reads_four_folders_by_identity_with_several_labels(
    celeba_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("LIPNET_CACHE", str(tmp_path / "cache"))
    out = load_celeba_faces(
        celeba_root, ATTRS, image_size=8, fractions=(0.5, 0.25, 0.25)
    )
    ids = sorted(i for part in out.values() for i in part["ids"])
    assert ids == [f"{i:06d}.jpg" for i in range(48)]
    labels = torch.cat([p["labels"] for p in out.values()])
    assert labels.shape == (48, 3) and labels.dtype == torch.int64
    images = torch.cat([p["images"] for p in out.values()])
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 8, 8)
    # Every face, the squashed ones too, is the bright training frame.
    assert int(images.min()) > 150
    for part in out.values():
        people = {int(i[:6]) // 2 for i in part["ids"]}
        assert all(f"{2 * p:06d}.jpg" in part["ids"] for p in people)


def test_the_multilabel_loss_is_binary_hkr_per_attribute_balanced():
    torch.manual_seed(0)
    f = torch.randn(64, 3, requires_grad=True)
    y = (torch.rand(64, 3) < torch.tensor([0.05, 0.5, 0.3])).long()
    y[0] = 1
    loss = HKRMultiLabelLoss(0.9, 1.0)(f, y)
    # KR part per column equals the binary KR; the hinge is class-balanced.
    kr_only = HKRMultiLabelLoss(0.0, 1.0)(f, y)
    binary = torch.stack([HKRLoss(0.0, 1.0)(f[:, a], y[:, a]) for a in range(3)])
    assert torch.isclose(kr_only, binary.mean(), atol=1e-6)
    (g,) = torch.autograd.grad(loss, f)
    # Positives are pushed up, negatives down, in every column.
    assert (g[y > 0] <= 0).all() and (g[y == 0] >= 0).all()
    with pytest.raises(ValueError, match="same shape"):
        HKRMultiLabelLoss(0.9)(f, y[:, 0])


def _config(**overrides) -> dict:
    config = {
        "name": "tiny-attrs",
        "attributes": ATTRS,
        "image_size": 8,
        "seed": 0,
        "arch": {"kind": "gnp", "channels": [12], "widths": [16]},
        "loss": {"alpha": 0.9, "min_margin": 0.5},
        "optimizer": {"lr": 0.01, "batch_size": 16, "epochs": 2},
        "augment": {"shift": 1, "flip": True, "scale": 0.05, "rotate": 5},
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def tiny() -> lipnet.LipSequential:
    torch.manual_seed(0)
    return build(_config(), 8).eval()


def test_an_attribute_is_a_binary_model_every_function_takes(tiny, tmp_path):
    model = to_float64(copy.deepcopy(tiny))
    x = torch.rand(8, 3, 8, 8)
    view = attribute(model, "Eyeglasses")
    assert view.head == "binary" and view.classes == ["no eyeglasses", "eyeglasses"]
    with torch.no_grad():
        assert torch.allclose(view(x)[:, 0], model(x)[:, 1], atol=1e-6)
    radius = lipnet.certified_radius(view, x)
    _, radii = attribute_radii(model, x)
    assert torch.allclose(radii[:, 1], radius.double(), rtol=1e-6, atol=1e-9)
    # Sound: a step of 0.999 r along the gradient never flips it.
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(view(xg).sum(), xg)
    sign = torch.sign(view(x)[:, 0].detach()).view(-1, 1, 1, 1)
    unit = g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    moved = x - sign * 0.999 * radius.view(-1, 1, 1, 1) * unit
    assert (torch.sign(view(moved)[:, 0]) == sign.view(-1)).all()
    result = lipnet.attacks.counterfactual(view, x.clamp(0, 1), "transport")
    assert result.success.any()
    with pytest.raises(ValueError, match="unknown attribute"):
        attribute(model, "Bald")
    with pytest.raises(lipnet.NoCertificateError, match="per attribute"):
        lipnet.certified_radius(model, x)


def test_a_multilabel_model_saves_loads_and_keeps_its_attributes(tiny, tmp_path):
    lipnet.save(tiny, tmp_path / "m", card={"license": "test"}, name="attrs")
    spec = json.loads((tmp_path / "m" / "spec.json").read_text())
    assert spec["task"] == "multilabel" and spec["head"] == "disjoint"
    loaded = lipnet.load(tmp_path / "m")
    assert attribute_names(loaded) == ATTRS and loaded.lipschitz_check["sound"]
    x = torch.rand(4, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(loaded(x), tiny(x), atol=1e-5)
    view = attribute(loaded, "Smiling")
    assert view.spec["task"] == "binary" and view.spec["attribute"] == "Smiling"


def test_training_writes_a_log_per_epoch_and_resumes(
    celeba_root, monkeypatch, tmp_path
):
    monkeypatch.setenv("LIPNET_CACHE", str(tmp_path / "cache"))
    config = _config(image_folders=["img_celeba_128", "img_align_celeba_89"])
    data_root = celeba_root.parent
    out = tmp_path / "run" / "tiny"
    model = train(config, out, data_root)
    lines = [
        json.loads(s)
        for s in out.with_name("tiny.log.jsonl").read_text().split("\n")
        if s
    ]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert set(lines[0]["balanced_accuracy"]) == set(ATTRS)
    loaded = lipnet.load(out)
    card = loaded.spec["card"]
    assert "NON-COMMERCIAL" in card["license"] and "identity" in card["data"]["split"]
    assert set(card["attribute_metrics"]) == {"val", "test"}
    # Stopped after epoch 2 of 4 and resumed: the same as one run of four.
    longer = _config(**{**config, "optimizer": {**config["optimizer"], "epochs": 4}})
    faces = load_faces(longer, data_root)
    ckpt, log = tmp_path / "half.ckpt", tmp_path / "log.jsonl"
    fit(longer, faces, ckpt, log, stop_after=2)
    resumed = fit(longer, faces, ckpt, log, resume=True)
    straight = fit(longer, faces, tmp_path / "fresh.ckpt", tmp_path / "fresh.jsonl")
    x = torch.rand(4, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(resumed(x), straight(x), atol=1e-5)
    assert [json.loads(s)["epoch"] for s in log.read_text().split("\n") if s] == [
        1,
        2,
        3,
        4,
    ]
    assert np.isfinite(list(lines[-1]["certified_0.5"].values())).all()
    assert model is not None


def test_an_unconstrained_twin_trains_with_balanced_cross_entropy(
    celeba_root, monkeypatch, tmp_path
):
    monkeypatch.setenv("LIPNET_CACHE", str(tmp_path / "cache"))
    config = _config(
        arch={"kind": "plain-conv", "channels": [8], "widths": [16]},
        loss={"kind": "bce-multilabel"},
        optimizer={"lr": 0.01, "batch_size": 16, "epochs": 1},
    )
    labels = torch.tensor([[1, 0, 1], [0, 0, 1], [0, 1, 1], [0, 0, 0]])
    loss = loss_function(config, labels)
    f = torch.zeros(4, 3, requires_grad=True)
    (g,) = torch.autograd.grad(loss(f, labels), f)
    # A positive weighs negatives/positives: 3 for the first column, 1/3 the last.
    assert torch.isclose(g[0, 0] / g[1, 0], torch.tensor(-3.0))
    assert torch.isclose(g[0, 2] / g[3, 2], torch.tensor(-1 / 3))
    with pytest.raises(ValueError, match="unknown loss"):
        loss_function(_config(loss={"kind": "mse"}), labels)
    twin = train(config, tmp_path / "twin", celeba_root.parent)
    assert twin.head == "none" and twin.task == "multilabel"
    line = json.loads((tmp_path / "twin.log.jsonl").read_text().split("\n")[0])
    assert set(line) == {"epoch", "loss", "train_time_s", "balanced_accuracy"}
    loaded = lipnet.load(tmp_path / "twin")
    view = attribute(loaded, "Smiling")
    assert view.head == "none" and view.spec["attribute"] == "Smiling"
    x = torch.rand(4, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(view(x)[:, 0], loaded(x)[:, 2], atol=1e-6)
    with pytest.raises(lipnet.NoCertificateError):
        lipnet.certified_radius(view, x)


def test_the_gallery_of_one_attribute_alternates_faces_of_the_test_people(
    celeba_root, monkeypatch, tmp_path
):
    monkeypatch.setenv("LIPNET_CACHE", str(tmp_path / "cache"))
    x, y, names = identity_examples(celeba_root, ATTRS, "Eyeglasses", 8, n=6)
    assert x.shape == (len(names), 3, 8, 8) and float(x.min()) >= 0
    assert y.tolist() == [1, 0] * (len(names) // 2) and len(names) >= 2
    # Only faces of the test split's people, the same people as the loader's.
    faces = load_celeba_faces(celeba_root, ATTRS, image_size=8)
    assert set(names) <= set(faces["test"]["ids"])
    rows, attrs, matrix = identity_example_attributes(
        celeba_root, ATTRS, "Eyeglasses", n=6
    )
    assert rows == names and matrix.shape == (len(names), 40)
    assert ((matrix[:, attrs.index("Eyeglasses")] == 1) == y.bool().numpy()).all()
    with pytest.raises(ValueError, match="unknown attribute"):
        identity_examples(celeba_root, ATTRS, "Bald", 8)


def test_the_card_has_a_table_per_attribute(tiny, tmp_path):
    test = {
        "balanced_accuracy": dict.fromkeys(ATTRS, 0.8),
        "certified_0.5": dict.fromkeys(ATTRS, 0.6),
        "certified_1": dict.fromkeys(ATTRS, 0.4),
    }
    card = {
        "license": "test",
        "attribute_metrics": {"val": test, "test": test},
        "attribute_quality": {"Mustache": {"tightness": 1.05, "validity": 0.7}},
    }
    lipnet.save(tiny, tmp_path / "m", card=card, name="attrs")
    text = (tmp_path / "m" / "CARD.md").read_text()
    assert "| moustache | 0.8 | 0.6 | 0.4 | 1.05 | 0.7 |" in text
    assert "| eyeglasses | 0.8 | 0.6 | 0.4 | — | — |" in text
    twin = {"balanced_accuracy": dict.fromkeys(ATTRS, 0.9)}
    rows = attribute_rows({"attribute_metrics": {"test": twin}})
    assert rows[2] == {
        "attribute": "smiling",
        "balanced accuracy": 0.9,
        "certified at 0.5": None,
        "certified at 1.0": None,
        "tightness": None,
        "counterfactual validity": None,
    }
    assert attribute_rows({"metrics": {}}) == []
    assert direction_label("Mustache", True) == "add a moustache"
    assert direction_label("Young", False) == "away from young"


def test_each_attribute_gets_its_own_out_of_distribution_hint(
    tiny, celeba_root, monkeypatch, tmp_path
):
    monkeypatch.setenv("LIPNET_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "m"
    card = {"license": "test", "training": {"config": _config()}}
    lipnet.save(tiny, folder, card=card, name="attrs")
    args = ["ood", str(folder), "--data", str(celeba_root.parent), "--n-train", "30"]
    assert lipnet_main(args) == 0
    loaded = lipnet.load(folder)
    per_attribute = loaded.spec["card"][ood.PER_ATTRIBUTE]
    assert list(per_attribute) == ATTRS
    assert "Out-of-distribution hint, per attribute" in (folder / "CARD.md").read_text()
    # Each attribute's binary model carries its own calibration, with the
    # attribute's two classes, and `lipnet.ood.check` works on it unchanged.
    faces = load_faces(_config(), celeba_root.parent)["test"]["images"]
    x = torch.cat([faces.float().div(255), torch.full((1, 3, 8, 8), 0.5)])
    for name in ATTRS:
        view = attribute(loaded, name)
        assert view.spec["card"]["ood"] == per_attribute[name]
        result = ood.check(view, x)
        assert result is not None and result.score.shape == (len(x),)
        # A flat grey square is no face (the synthetic faces are all alike, so
        # they sit at the threshold: only the square must be far above it).
        assert bool(result.unusual[-1])
        assert float(result.score[-1]) > 2 * float(result.score[:-1].max())
    assert ood.check(loaded, x) is None  # the whole model has no single hint
    # A view's spec is its own: changing it leaves the model's calibrations be.
    before = copy.deepcopy(per_attribute)
    view = attribute(loaded, "Mustache")
    view.spec["card"]["ood"]["threshold"] = -5.0
    assert loaded.spec["card"][ood.PER_ATTRIBUTE] == before
    assert attribute(loaded, "Mustache").spec["card"]["ood"]["threshold"] != -5.0
    # A malformed per-attribute entry (an untrusted card) gives no hint, no crash.
    for bad in ("oops", {"Mustache": "oops"}, {"Mustache": {"threshold": -1}}):
        spec = copy.deepcopy(loaded.spec)
        spec["card"][ood.PER_ATTRIBUTE] = bad
        loaded.spec = spec
        assert ood.check(attribute(loaded, "Mustache"), x) is None
    with pytest.raises(ValueError, match="labels of shape"):
        calibrate_attributes(tiny, x, torch.zeros(len(x), 2), x)


def test_an_attribute_calibration_that_fails_writes_nothing(
    tiny, celeba_root, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("LIPNET_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "m"
    card = {"license": "test", "training": {"config": _config()}}
    lipnet.save(tiny, folder, card=card, name="attrs")
    before = (folder / "spec.json").read_bytes()
    monkeypatch.setattr(
        lipnet.attributes, "calibration_problem", lambda entry, model: "broken"
    )
    args = ["ood", str(folder), "--data", str(celeba_root.parent), "--n-train", "30"]
    assert lipnet_main(args) == 1
    assert "Mustache: broken" in capsys.readouterr().err
    assert (folder / "spec.json").read_bytes() == before
