"""Crafted model folders: each refused with the library's own error and reason.

The corpus (`tests/model_fuzz.py`, built in memory, over a hundred cases) is
loaded in a subprocess, so that a case which allocates shows in that
process's peak memory; every case must fail with a ModelFileError whose
message names the reason, within a time and a memory limit.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from model_fuzz import corpus

import lipnet
from lipnet import zoo
from lipnet.io import ModelFileError, load_upload

ROOT = Path(__file__).resolve().parents[1]
SECONDS = 5.0
"""Time limit for refusing one crafted folder (the largest take ~0.5 s here)."""
RSS_MB = 200
"""Limit on the peak-memory growth while refusing one crafted folder."""
CASES = corpus()


@pytest.fixture(scope="module")
def outcomes() -> dict[str, dict]:
    """Every case loaded once in a fresh process: error, message, time, memory."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "model_fuzz.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout)


def test_the_corpus_is_large():
    assert len(CASES) >= 100


@pytest.mark.parametrize("name", list(CASES))
def test_a_crafted_folder_is_refused_with_its_reason(outcomes, name):
    got = outcomes[name]
    assert got["error"] == "ModelFileError", got
    assert re.search(CASES[name].reason, got["message"]), got["message"]
    assert got["seconds"] < SECONDS
    assert got["rss_growth_mb"] < RSS_MB


def test_the_base_of_the_corpus_loads():
    """Every case is one change away from a model that loads and is measured."""
    spec, weights = _base_bytes()
    model = load_upload(spec, weights)
    assert model.lipschitz_check["sound"]
    assert model.lipschitz_check["upper_bound"] <= 1 + 1e-5


def _base_bytes() -> tuple[bytes, bytes]:
    case = CASES["name-absolute-path"]
    spec = json.loads(case.spec)
    spec["name"] = "fuzz-base"
    return json.dumps(spec).encode(), case.weights


def test_an_uploaded_card_cannot_choose_the_data():
    """A card asking for 1,024-px CelebA: the upload's training config is dropped."""
    spec, weights = _base_bytes()
    data = json.loads(spec)
    config = {"task": "celeba", "image_size": 1024, "attribute": "Mustache"}
    data["card"]["training"] = {"config": config, "train_time_s": 1.0}
    model = load_upload(json.dumps(data).encode(), weights)
    assert model.spec["card"]["training"] == {"train_time_s": 1.0}
    with pytest.raises(ValueError, match="no training config"):
        zoo.test_images(model.spec)


def test_a_lying_layer_is_caught_by_the_measurement(monkeypatch):
    """If the derivation rules were ever wrong, the measured bound still refuses."""
    spec, weights = _base_bytes()
    data = json.loads(spec)
    data["lipschitz_constant"] = 0.5
    real = lipnet.layers.sequential.layer_constant

    def halved(m: torch.nn.Module, per_neuron: bool = False) -> float:
        first = isinstance(m, lipnet.SpectralConv2d) and m.in_channels == 1
        return real(m, per_neuron) * (0.5 if first else 1.0)

    monkeypatch.setattr(lipnet.layers.sequential, "layer_constant", halved)
    refusal = r"constant of 0.5, but its layers measure up to (1|0\.99)"
    with pytest.raises(ModelFileError, match=refusal):
        load_upload(json.dumps(data).encode(), weights)
