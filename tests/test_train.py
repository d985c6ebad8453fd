"""Training: a short run learns, is deterministic and writes a complete model folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lipnet
from lipnet.certify import certified_radius
from lipnet.metrics import SUBSET, as_loaded
from lipnet.models import build_model
from lipnet.train import fit, load_task, train

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "name": "tiny",
    "task": "mnist08",
    "seed": 3,
    "val_fraction": 0.2,
    "arch": {"kind": "dense", "widths": [32, 16], "activation": "groupsort2"},
    "loss": {"kind": "hkr", "alpha": 0.99, "min_margin": 1.0},
    "optimizer": {"lr": 0.003, "batch_size": 128, "epochs": 3},
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    model, card = train(
        TINY, out, progress=False, command="python -m lipnet train tiny"
    )
    return model, card, out


def test_short_training_learns_and_writes_a_complete_folder(tiny_run):
    _, card, out = tiny_run
    history = card["training"]["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    # every epoch logs validation certified accuracy at 1.0 and at 1.58, nested
    for line in history:
        assert 0 <= line["val_certified_1.58"] <= line["val_certified_1.0"] <= 1
    test = card["metrics"]["test"]
    assert test["n"] == 1954 and test["clean_accuracy"] > 0.9
    assert set(test["certified_accuracy"]) == {"0.25", "0.5", "1", "1.58", "2", "3"}
    for name in ("spec.json", "weights.safetensors", "CARD.md"):
        assert (out / name).is_file()
    loaded = lipnet.load(out)
    spec = loaded.spec
    assert spec["card"]["training"]["config"]["seed"] == 3
    assert spec["card"]["data"]["license"] == "CC BY-SA 3.0"
    assert "torch.randperm(seed=3)" in spec["card"]["data"]["split"]
    assert spec["card"]["lipschitz"]["sound"] is True
    assert spec["card"]["lipschitz"]["upper_bound"] <= 1 + 1e-3
    assert 0 < spec["card"]["lipschitz"]["lower_bound"] <= 1 + 1e-3
    median = spec["card"]["lipschitz"]["median_gradient_norm"]
    assert 0 < median <= spec["card"]["lipschitz"]["lower_bound"] + 1e-6
    assert spec["card"]["attacks"]["median_ratio_rd"] >= 1 - 1e-4
    assert spec["card"]["training"]["train_time_s"] > 0
    assert spec["card"]["reproduce"] == "python -m lipnet train tiny"
    card_md = (out / "CARD.md").read_text()
    assert "Reproduce" in card_md and "certified" in card_md


def test_training_is_deterministic_for_a_seed():
    data = load_task(TINY)
    config = {**TINY, "optimizer": {**TINY["optimizer"], "epochs": 1}}
    states = []
    for _ in range(2):
        torch.manual_seed(TINY["seed"])
        model = build_model(TINY["arch"], data.input_shape, data.classes)
        fit(model, data, config, progress=False)
        states.append(model.state_dict())
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


def test_a_resumed_run_ends_like_an_uninterrupted_one(tmp_path, monkeypatch):
    """Stop after epoch 1 (a checkpoint), resume: the weights equal a straight run."""
    import lipnet.train as T

    cfg = {**TINY, "optimizer": {**TINY["optimizer"], "epochs": 2}}
    data = load_task(cfg)
    torch.manual_seed(0)
    straight = build_model(cfg["arch"], data.input_shape, data.classes)
    fit(straight, data, cfg, progress=False)

    ckpt = tmp_path / "run.ckpt"
    real_save = T._save_checkpoint

    def save_then_stop(path, state):
        real_save(path, state)
        raise KeyboardInterrupt  # the machine stops right after epoch 1

    monkeypatch.setattr(T, "_save_checkpoint", save_then_stop)
    torch.manual_seed(0)
    stopped = build_model(cfg["arch"], data.input_shape, data.classes)
    with pytest.raises(KeyboardInterrupt):
        fit(stopped, data, cfg, progress=False, checkpoint=ckpt)
    monkeypatch.setattr(T, "_save_checkpoint", real_save)
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 1 and state["train_time_s"] > 0

    fresh = build_model(cfg["arch"], data.input_shape, data.classes)  # new process
    history = fit(fresh, data, cfg, progress=False, checkpoint=ckpt, resume=True)
    assert [h["epoch"] for h in history] == [1, 2]
    for a, b in zip(
        straight.state_dict().values(), fresh.state_dict().values(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6)


def test_validation_split_is_deterministic_and_disjoint():
    a, b = load_task(TINY), load_task(TINY)
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.y_train, b.y_train)
    assert len(a.y_train) + len(a.y_val) == 1945
    other = load_task({**TINY, "seed": 4})
    assert not torch.equal(a.x_val, other.x_val)


def test_the_attack_section_is_measured_in_float64(tmp_path, monkeypatch):
    """`train` hands `attack_report` the float64 model `lipnet.load` gives, not
    the float32 one it trained (whose radii lose a box-wide rounding bound)."""
    import lipnet.train as training

    seen = []

    def spy(model, x, y):
        seen.append((next(model.parameters()).dtype, x.dtype))
        return {"n": 0}

    monkeypatch.setattr(training, "attack_report", spy)
    one_epoch = {**TINY, "optimizer": {**TINY["optimizer"], "epochs": 1}}
    model, card = train(one_epoch, tmp_path / "model", progress=False)
    assert seen == [(torch.float64, torch.float32)]
    assert next(model.parameters()).dtype == torch.float32
    assert card["attacks"] == {"n": 0}


def test_eval_reproduces_the_card(tiny_run):
    _, _, out = tiny_run
    from lipnet.evaluate import compare_to_card, recompute_metrics

    metrics = recompute_metrics(out, n=500)
    assert compare_to_card(out, metrics, tolerance=1e-4) == []


def test_cli_train_and_eval(tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(
        json.dumps({**TINY, "optimizer": {**TINY["optimizer"], "epochs": 1}})
    )
    out = tmp_path / "model"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "lipnet",
            "train",
            str(config),
            "--out",
            str(out),
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["test"]["n"] == 1954
    ev = subprocess.run(
        [sys.executable, "-m", "lipnet", "eval", str(out), "--n", "500"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ev.returncode == 0, ev.stderr
    assert "clean_accuracy" in ev.stdout


def test_bad_configs():
    with pytest.raises(ValueError, match="unknown task"):
        load_task({"task": "cifar"})
    data = load_task(TINY)
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model({"kind": "transformer"}, data.input_shape, data.classes)
    with pytest.raises(ValueError, match="unknown activation"):
        build_model(
            {"kind": "dense", "widths": [4], "activation": "gelu"},
            (1, 28, 28),
            ["a", "b"],
        )


def test_the_card_measures_the_model_as_it_will_be_loaded(tiny_run):
    """Attacks, certified accuracy and rounding are measured on the float64 copy
    `lipnet.load` gives (a float32 radius loses a box-wide rounding bound)."""
    model, card, out = tiny_run
    assert next(model.parameters()).dtype == torch.float32
    loaded_like = as_loaded(model)
    assert loaded_like is not model
    assert next(loaded_like.parameters()).dtype == torch.float64
    assert next(model.parameters()).dtype == torch.float32  # untouched
    assert as_loaded(loaded_like) is loaded_like
    x = torch.rand(5, *model.input_shape)
    loaded = lipnet.load(out)
    with torch.no_grad():
        assert torch.equal(loaded_like(x.double()), loaded(x.double()))
    # Every test input of the attack sample with a positive radius as loaded is
    # counted (in float32 the rounding bound would zero some radii and drop them).
    data = load_task(TINY)
    n_attack = TINY.get("attack_n", SUBSET)
    x_attack, y_attack = data.x_test[:n_attack], data.y_test[:n_attack]
    as_loaded_radii = certified_radius(loaded, x_attack.double(), y_attack)
    assert card["attacks"]["n"] == int((as_loaded_radii > 1e-6).sum())
    assert card["attacks"]["n"] >= 0.9 * n_attack
