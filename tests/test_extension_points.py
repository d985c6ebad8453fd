"""A new layer and a new attack are each added in one place, and seen everywhere.

The toy layer is one class plus its registry entry: the budget, the plain
export, the rigorous bound, the rounding model, saving and loading all ask
the layer itself (`lipnet.layers.protocol`), and it passes the checks every
registered layer passes (`tests/test_layer_protocol.py`). The toy attack is
one function plus its record in `lipnet.attacks.ATTACKS`: `counterfactual`
runs it, the explorer offers it with its parameter's widget, a shared link
carries that parameter, and it passes the checks every attack passes
(`tests/test_attacks.py`). Each is registered with `monkeypatch`, so both
are gone after their test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
import torch
from test_attacks import check_no_attack_beats_the_certificate, check_record
from test_dashboard import check, texts
from test_explorer_demo import fresh
from test_layer_protocol import check_layer_kind
from torch import Tensor, nn

import lipnet
from lipnet import certify, registry
from lipnet.attacks import ATTACKS, METHOD_LABELS, Attack, Param, counterfactual
from lipnet.attacks.common import Tracker, flat_norm, margin, project_box
from lipnet.budget import check_budget
from lipnet.export import vanilla_export
from lipnet.io import model_spec
from lipnet.layers import LipschitzLayer
from lipnet.layers.base import LayerRounding
from lipnet.layers.cost import Budget


class ToyDiagonal(nn.Module, LipschitzLayer):
    """y = x·s with s = k·tanh(raw): one learned scale per feature, |s| < k."""

    def __init__(self, features: int, k: float = 1.0) -> None:
        super().__init__()
        self.features, self.k = int(features), float(k)
        self.lipschitz = self.k
        self.raw = nn.Parameter(torch.randn(self.features))

    def scales(self) -> Tensor:
        return torch.tanh(self.raw) * self.k

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scales()

    def config(self) -> dict[str, Any]:
        return {"features": self.features, "k": self.k}

    def operator_norm(self, input_size: tuple[int, ...], per_neuron: bool) -> float:
        return float(self.scales().detach().double().abs().max())

    def rounding(self, x: Tensor, lipschitz: float) -> LayerRounding:
        # One product per output: at most u·|s|·|x| each.
        return LayerRounding(lipschitz, gain=lipschitz, terms=1)

    def vanilla_export(self) -> nn.Module:
        out = nn.Linear(self.features, self.features, bias=False)
        with torch.no_grad():
            out.weight.copy_(torch.diag(self.scales()))
        return out

    @classmethod
    def build_cost(cls, args: Mapping[str, Any], x: Tensor, budget: Budget) -> Tensor:
        if x.dim() != 2 or x.shape[1] != args["features"]:
            raise ValueError(f"features is {args['features']}, got {list(x.shape)}")
        budget.parameters += args["features"]
        budget.forward_macs += args["features"]
        return x


def toy_line_search(
    tracker: Tracker, x: Tensor, largest: float = 4.0, box: bool = True
) -> Tensor:
    """Against the margin's gradient: the shortest of 12 steps up to `largest`
    that flips the decision (else the longest)."""
    _, _, g = tracker.margin_and_grad(x)
    direction = g / flat_norm(g).clamp_min(1e-12)
    best = project_box(x - largest * direction, box)
    found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for t in torch.linspace(largest / 12, largest, 12).tolist():
        adv = project_box(x - t * direction, box)
        take = (
            margin(tracker.outputs(adv), tracker.labels, tracker.target) < 0
        ) & ~found
        best[take] = adv[take]
        found |= take
    return best


TOY_ATTACK = Attack(
    "toy",
    toy_line_search,
    "Toy line search",
    params=(
        Param(
            "largest",
            key="toy_largest",
            url="toy_largest",
            label="Largest step",
            low=0.5,
            high=8.0,
            default=4.0,
            short="largest step",
        ),
    ),
    positive=("largest",),
    quick=True,
    test_params={"largest": 6.0},
)


@pytest.fixture
def toy_layer(monkeypatch) -> type[ToyDiagonal]:
    """ToyDiagonal in the registry for one test: its one line of registration."""
    spec = (ToyDiagonal, {"features": int, "k": float})
    monkeypatch.setitem(registry.REGISTRY, "ToyDiagonal", spec)
    return ToyDiagonal


@pytest.fixture
def toy_attack(monkeypatch) -> Attack:
    """The toy attack's record in ATTACKS for one test."""
    monkeypatch.setitem(ATTACKS, TOY_ATTACK.name, TOY_ATTACK)
    return TOY_ATTACK


def _toy_model() -> lipnet.LipSequential:
    torch.manual_seed(0)
    return lipnet.LipSequential(
        lipnet.Flatten(),
        lipnet.SpectralLinear(16, 8),
        ToyDiagonal(8),
        lipnet.GroupSort2(),
        lipnet.FrobeniusLinear(8, 1),
        input_shape=(1, 4, 4),
        classes=["a", "b"],
    ).eval()


def test_a_toy_layer_is_exported_bounded_and_budgeted(toy_layer, tmp_path):
    model = _toy_model()
    toy = model[2]
    x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(1))

    # Exported: a plain nn.Linear in its place, the same function.
    plain = vanilla_export(model)
    assert type(plain[2]) is nn.Linear
    with torch.no_grad():
        assert torch.allclose(plain(x), model(x), atol=1e-6)

    # Bounded: its own norm is in the product, and certificates work.
    norms = dict(certify.layer_norms(model, (1, 4, 4)))
    assert norms["2:ToyDiagonal"] == pytest.approx(
        float(toy.scales().detach().abs().max()), rel=1e-8
    )
    upper = certify.lipschitz_upper_bound(model, (1, 4, 4))
    assert upper == pytest.approx(math.prod(norms.values()))
    assert certify.check_lipschitz(model, (1, 4, 4))["sound"]
    radius = certify.certified_radius(model, x)
    assert (radius > 0).all()

    # Budgeted: the spec names it, the budget counts its parameters.
    spec = model_spec(model)
    assert spec["layers"][2] == {"type": "ToyDiagonal", "args": toy.config()}
    budget = check_budget(spec)
    assert budget.parameters == sum(p.numel() for p in model.state_dict().values())

    # Saved and loaded like any registered layer: the same radii.
    lipnet.save(model, tmp_path / "toy", card={"summary": "toy", "license": "test"})
    loaded = lipnet.load(tmp_path / "toy")
    assert isinstance(loaded[2], ToyDiagonal)
    assert torch.allclose(certify.certified_radius(loaded, x), radius, rtol=1e-3)

    # And the checks every registered layer passes.
    check_layer_kind(ToyDiagonal(8), (8,))


def test_the_toy_layer_is_gone_after_its_test():
    assert "ToyDiagonal" not in registry.REGISTRY


def test_a_toy_attack_runs_and_passes_the_generic_checks(
    toy_attack, load_model, mnist08_test
):
    assert "toy" in METHOD_LABELS and METHOD_LABELS["toy"] == "Toy line search"
    check_record(toy_attack)
    model = load_model("mnist08-hkr")
    for box in (True, False):
        check_no_attack_beats_the_certificate(model, mnist08_test[0][:100], "toy", box)
    with pytest.raises(lipnet.attacks.AttackError, match="positive"):
        counterfactual(model, mnist08_test[0][:2], "toy", largest=-1.0)


def test_the_explorer_offers_the_toy_attack_and_links_carry_it(toy_attack):
    at = fresh()
    methods = at.pills(key="method")
    assert methods.options[-1] == "Toy line search"
    check(methods.set_value("toy").run())
    slider = at.slider(key="toy_largest")
    assert slider.label == "Largest step" and slider.value == 4.0
    check(slider.set_value(2.5).run())
    assert any(
        c.startswith("Ran Toy line search: largest step 2.5") for c in texts(at.caption)
    )
    query = {k: v[0] if isinstance(v, list) else v for k, v in at.query_params.items()}
    assert query["method"] == "toy" and query["toy_largest"] == "2.5"

    again = fresh(query)
    assert again.pills(key="method").value == "toy"
    assert again.slider(key="toy_largest").value == 2.5
    hostile = fresh({**query, "toy_largest": "99"})
    assert hostile.slider(key="toy_largest").value == 4.0  # out of range: ignored
    (warning,) = [w for w in texts(hostile.warning) if "link" in w]
    assert "toy_largest" in warning


def test_the_toy_attack_is_gone_after_its_test():
    assert "toy" not in ATTACKS and "toy" not in METHOD_LABELS
