"""Certificates that hold for the arithmetic the machine does.

Every model of the float-hostile corpus (`tests/float_fuzz.py`) is either
refused with its reason or loaded with a certificate that neither PGD nor a
line search along the gradient can beat on 40 test inputs, outside the
pixel box too; the rounding bound is checked against what float32 really
does; the worst accepted specs load within 1 GB and 10 CPU seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from float_fuzz import MODELS, corpus

import lipnet
from lipnet import zoo
from lipnet.attacks import counterfactual
from lipnet.attacks.common import flipped, margin, predictions
from lipnet.certify import certificate_context, outputs_and_radius, rounding_error
from lipnet.io import ModelFileError, load_upload
from lipnet.precision import to_float64

ROOT = Path(__file__).resolve().parents[1]
CASES = corpus()
INSIDE = 0.999
"""Attacks search within this fraction of each certified radius."""


def _inputs(model: lipnet.LipSequential, name: str) -> torch.Tensor:
    """40 test images of the task the case was made from (random for AOL toys)."""
    if name.startswith("aol"):
        gen = torch.Generator().manual_seed(0)
        return torch.rand((40, *model.input_shape), generator=gen)
    base = "mnist10-hkr" if "multiclass" in name else "mnist08-hkr"
    spec = json.loads((MODELS / base / "spec.json").read_text())
    return zoo.test_images(spec, 40)[0]


def _flips_inside(model: torch.nn.Module, x: torch.Tensor, radius: torch.Tensor) -> int:
    """Inputs that PGD (no pixel box) or a gradient line search flip within
    INSIDE × their certified radius."""
    keep = radius > 0
    x, radius = x[keep], radius[keep]
    if len(x) == 0:
        return 0
    eps = radius * INSIDE
    attack = counterfactual(model, x, "pgd", eps=eps, steps=25, box=False)
    found = attack.success & (attack.l2 <= eps * (1 + 1e-6))
    with torch.no_grad():
        labels = predictions(model(x))
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(margin(model(xg), labels, None).sum(), xg)
    unit = -g / g.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, 1, 1, 1)
    with torch.no_grad():
        for t in torch.linspace(0, 1, 41)[1:]:
            step = x + (t * eps).view(-1, 1, 1, 1) * unit
            found |= flipped(model(step), labels, None)
    return int(found.sum())


@pytest.mark.parametrize("name", list(CASES))
def test_a_float_hostile_model_is_refused_or_sound(name):
    case = CASES[name]
    if case.refusal is not None:
        with pytest.raises(ModelFileError, match=case.refusal):
            load_upload(case.spec, case.weights)
        return
    model = load_upload(case.spec, case.weights)
    x = _inputs(model, name)
    radius = lipnet.certified_radius(model, x)
    assert torch.isfinite(radius).all() and (radius >= 0).all()
    assert (radius > 0).sum() >= 10, "the sound models still certify most inputs"
    assert _flips_inside(model, x, radius) == 0


def test_a_declared_constant_below_the_measured_is_not_used():
    """Declared 1/1.000998 and measured 1: the radius divides by the measured."""
    case = CASES["declared-below-1.000998"]
    model = load_upload(case.spec, case.weights)
    context = certificate_context(model)
    assert context.declared < 1 <= context.lipschitz
    assert context.lipschitz == max(context.declared, context.upper) or (
        context.lipschitz > context.upper
    )


def test_cancelling_biases_round_the_scores_of_float32():
    """The 2^25 case in float32 has scores on a grid of 4 (the reported attack);
    loaded, it computes in float64 and its bound takes ~1e-6 off each radius."""
    case = CASES["cancel-binary-2^25"]
    model = load_upload(case.spec, case.weights)
    x = _inputs(model, "cancel-binary")
    as32 = load_upload(case.spec, case.weights).float()
    with torch.no_grad():
        coarse = as32(x)
    assert torch.all(torch.remainder(coarse, 2.0) == 0)  # a grid of 2 or 4
    errors = rounding_error(model, x)
    assert (errors < 1e-5).all() and (errors > 0).all()


def test_the_rounding_bound_covers_float32_on_real_models():
    """The same bound with float32's unit roundoff covers what float32 does."""
    for name in ("mnist08-hkr", "mnist10-hkr", "moustache-hkr"):
        folder = MODELS / name
        model = lipnet.load(folder)
        x = torch.rand(
            (16, *model.input_shape), generator=torch.Generator().manual_seed(1)
        )
        as32 = lipnet.load(folder).float()
        bound = rounding_error(as32, x)
        with torch.no_grad():
            exact = model(x.double())
            err = (as32(x).double() - exact).flatten(1).norm(dim=1)
        assert (err <= bound).all(), (name, err.max(), bound.min())


def test_shipped_certificates_carry_their_rounding_bound():
    for folder in sorted(MODELS.iterdir()):
        model = lipnet.load(folder)
        if model.head == "none":
            continue
        card = model.spec["card"]["lipschitz"]
        assert model.lipschitz_check["rounding_bound"] <= card["rounding_bound"] < 1e-8
        assert card["rounding_bound_float32"] > 1e3 * card["rounding_bound"]


def test_a_radius_is_never_rounded_up_into_float32():
    model = lipnet.load(MODELS / "mnist08-hkr")
    x = _inputs(model, "cancel-binary")
    out32, r32 = outputs_and_radius(model, x)
    _, r64 = outputs_and_radius(model, x.double())
    assert out32.dtype == r32.dtype == torch.float32 and r64.dtype == torch.float64
    assert (r32.double() <= r64).all()
    assert torch.allclose(r32.double(), r64, rtol=1e-6)


def test_non_finite_outputs_give_no_radius():
    model = to_float64(
        lipnet.LipSequential(lipnet.Flatten(), lipnet.FrobeniusLinear(4, 1))
    )
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [float("inf"), 0, 0, 0]]).view(2, 1, 2, 2)
    radius = lipnet.certified_radius(model, x)
    assert radius[0] > 0 and radius[1] == 0


def test_a_score_of_exactly_zero_counts_as_class_zero():
    """predictions() says class 0 at f = 0, so an attack landing there flipped."""
    outputs = torch.tensor([[0.0], [0.0], [1.0]])
    labels = torch.tensor([1, 0, 1])
    assert flipped(outputs, labels, None).tolist() == [True, False, False]
    tie = torch.tensor([[2.0, 2.0, 0.0]])
    assert flipped(tie, torch.tensor([1]), None).tolist() == [True]


def test_the_lower_bound_of_an_affine_model():
    model = lipnet.LipSequential(torch.nn.Flatten(), torch.nn.Linear(4, 1))
    x = torch.rand(3, 1, 2, 2)
    found = lipnet.lipschitz_lower_bound(model, x)
    assert found == pytest.approx(float(model[1].weight.detach().norm()), rel=1e-6)


HEAVY = ["aol-linear-4096", "aol-conv-9", "gain-chain-overflow"]
MEMORY_LIMIT = 6 * 2**30
"""Address-space cap of the loading process (torch alone maps ~1–2 GB)."""


def test_the_heaviest_accepted_specs_load_within_1_gb_and_10_cpu_seconds():
    script = str(ROOT / "tests" / "float_fuzz.py")
    code = (
        "import resource, runpy, sys;"
        f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}));"
        f"sys.argv = ['float_fuzz.py', *{HEAVY!r}];"
        f"runpy.run_path({script!r}, run_name='__main__')"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=True,
    )
    results = json.loads(done.stdout)
    for name in HEAVY:
        got = results[name]
        assert (got["error"] is None) == (CASES[name].refusal is None), got
        assert got["cpu_seconds"] < 10, (name, got)
        assert got["rss_growth_mb"] < 1024, (name, got)
