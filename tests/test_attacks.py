"""Attacks on the shipped models: soundness, strength, API and bad input."""

from __future__ import annotations

import pytest
import torch

from lipnet.attacks import ATTACKS, METHODS, Attack, AttackError, counterfactual

N = 300
ALL = {name: dict(attack.test_params) for name, attack in ATTACKS.items()}
"""Every attack's record, with the parameters the generic tests run it with."""


def check_record(attack: Attack) -> None:
    """An attack's record agrees with its function and with the explorer's rules."""
    arguments = attack.arguments()
    assert {"box"} <= arguments
    assert set(attack.positive) <= arguments
    assert set(attack.test_params) <= arguments
    assert attack.takes_eps == ({"eps", "norm"} <= arguments)
    for p in attack.params:
        assert p.name in arguments
        assert p.low <= p.default <= p.high
        assert p.widget in ("slider", "number")


def check_no_attack_beats_the_certificate(model, x, method: str, box: bool) -> None:
    """Run `method` with its test parameters: no success below the radius."""
    result = counterfactual(model, x, method, box=box, **ATTACKS[method].test_params)
    ok = result.success
    assert ok.any()
    slack = result.l2[ok] - result.certified_radius[ok]
    assert slack.min() >= -1e-4
    if box:
        assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1


@pytest.mark.parametrize("method", list(ATTACKS))
def test_every_record_matches_its_function(method):
    check_record(ATTACKS[method])


def test_records_share_a_widget_or_link_key_only_for_one_parameter():
    by_key, by_url = {}, {}
    for attack in ATTACKS.values():
        for p in attack.params:
            assert by_key.setdefault(p.key, p) == p
            assert by_url.setdefault(p.url, p) == p


@pytest.mark.parametrize("method", list(ALL))
@pytest.mark.parametrize("box", [True, False])
def test_no_attack_beats_the_certificate_mnist08(load_model, mnist08_test, method, box):
    """Hundreds of test images: no successful perturbation below the radius."""
    model = load_model("mnist08-hkr")
    check_no_attack_beats_the_certificate(model, mnist08_test[0][:N], method, box)


@pytest.mark.parametrize("method", ["transport", "deepfool", "fmn"])
def test_no_attack_beats_the_certificate_mnist10(load_model, mnist_test, method):
    model = load_model("mnist10-hkr")
    x = mnist_test[0][:200]
    result = counterfactual(model, x, method, **ALL[method])
    ok = result.success
    assert ok.float().mean() > 0.9
    assert (result.l2[ok] - result.certified_radius[ok]).min() >= -1e-4


def test_targeted_multiclass(load_model, mnist_test):
    model = load_model("mnist10-hkr")
    x = mnist_test[0][:20]
    for method in ("transport", "deepfool", "fmn", "pgd"):
        params = {"eps": 4.0, "steps": 50} if method == "pgd" else {}
        r = counterfactual(model, x, method, target=3, **params)
        hit = r.outputs_after.argmax(1) == 3
        assert torch.equal(hit, r.success)
        assert r.success.float().mean() > 0.8


# Budgets (L2, pixels in [0, 1]): the MNIST 0-vs-8 baseline is a fairly
# robust MLP on an easy task (median smallest flip 1.7, ~9 for the image norm);
# the face baseline flips at a median of 0.3.
STRENGTH = {
    "mnist08-baseline": {
        "pgd": {"eps": 4.0, "steps": 50, "restarts": 2},
        "fmn": {"steps": 100},
        "pgd_search": {"eps_max": 4.0, "search_steps": 6, "pgd_steps": 20},
    },
    "moustache-baseline": {
        # Its median smallest flip is 0.40; one face in 50 needs just over 1.
        "pgd": {"eps": 1.5, "steps": 30},
        "fmn": {"steps": 50},
    },
}


@pytest.mark.parametrize(
    ("name", "method"), [(n, m) for n, methods in STRENGTH.items() for m in methods]
)
def test_attacks_break_the_unconstrained_baselines(load_model, name, method):
    """Strength: ≥ 99% of correctly classified images flipped within small budgets."""
    from lipnet import zoo

    model = load_model(name)
    x, y = zoo.test_images(model.spec, N if name.startswith("mnist") else 60)
    with torch.no_grad():
        correct = (model(x)[:, 0] > 0).long() == y
    r = counterfactual(model, x[correct], method, **STRENGTH[name][method])
    assert r.success.float().mean() >= 0.99
    budget = STRENGTH[name][method].get("eps", STRENGTH[name][method].get("eps_max"))
    if budget is not None:
        assert r.l2[r.success].max() <= budget + 1e-4
    assert r.certified_radius is None


def test_result_fields_and_trajectory(load_model, mnist08_test):
    model = load_model("mnist08-hkr")
    x = mnist08_test[0][:3]
    r = counterfactual(model, x, "transport", step_size=0.5)
    assert r.x_adv.shape == x.shape and r.delta.shape == x.shape
    assert torch.allclose(r.l2, r.delta.flatten(1).norm(dim=1))
    assert torch.allclose(r.linf, r.delta.flatten(1).abs().amax(1))
    assert r.trajectory_x.shape[1:] == x.shape and r.trajectory_x.shape[0] >= 2
    assert r.trajectory_outputs.shape[:2] == (r.trajectory_x.shape[0], 3)
    assert torch.allclose(r.trajectory_x[-1], r.x_adv)
    assert r.n_gradients >= 2 and r.time_s > 0
    assert torch.all((r.outputs_after[:, 0] > 0) != (r.outputs_before[:, 0] > 0))
    one = counterfactual(model, x[0], "transport")
    assert one.x_adv.shape == (1, *x.shape[1:])
    big = counterfactual(model, mnist08_test[0][:32], "transport")
    assert big.trajectory_x is None  # not kept by default for large batches


def test_transport_is_a_short_path_on_hkr(load_model, mnist08_test):
    """The transport step lands near the boundary: distance close to the radius."""
    model = load_model("mnist08-hkr")
    r = counterfactual(model, mnist08_test[0][:100], "transport", box=False)
    assert r.success.all()
    assert r.ratio_to_radius.median() < 1.5


@pytest.mark.parametrize(
    ("x", "kwargs", "message"),
    [
        (torch.full((1, 1, 28, 28), float("nan")), {}, "NaN"),
        (torch.full((1, 1, 28, 28), float("inf")), {}, "NaN or infinite"),
        (torch.rand(1, 1, 20, 20), {}, "expects"),
        (torch.rand(1, 3, 28, 28), {}, "expects"),
        (torch.rand(1, 1, 28, 28) * 2, {}, r"\[0, 1\]"),
        (torch.zeros(1, 1, 28, 28, dtype=torch.long), {}, "float"),
        (torch.rand(1, 1, 28, 28), {"method": "magic"}, "unknown method"),
        (torch.rand(1, 1, 28, 28), {"method": "pgd", "eps": 0.0}, "positive"),
        (torch.rand(1, 1, 28, 28), {"method": "pgd", "eps": -1.0}, "positive"),
        (torch.rand(1, 1, 28, 28), {"method": "pgd"}, "needs eps"),
        (torch.rand(1, 1, 28, 28), {"method": "pgd", "eps": 1.0, "norm": "l3"}, "norm"),
        (torch.rand(1, 1, 28, 28), {"method": "fmn", "eps": 1.0}, "no parameter eps"),
        (torch.rand(1, 1, 28, 28), {"target": 1}, "binary model"),
    ],
)
def test_bad_input_gives_a_clear_error(load_model, x, kwargs, message):
    model = load_model("mnist08-hkr")
    method = kwargs.pop("method", "transport")
    with pytest.raises(AttackError, match=message):
        counterfactual(model, x, method, **kwargs)


def test_bad_target_multiclass(load_model, mnist_test):
    model = load_model("mnist10-hkr")
    with pytest.raises(AttackError, match="target classes"):
        counterfactual(model, mnist_test[0][:2], "transport", target=12)


def test_every_method_is_listed():
    assert set(METHODS) == {"transport", "fgsm", "pgd", "deepfool", "fmn", "pgd_search"}


def test_runs_on_the_models_device(load_model, mnist08_test):
    """Inputs follow the model's device (a GPU when the model is on one)."""
    model = load_model("mnist08-hkr")
    device = next(model.parameters()).device
    r = counterfactual(model, mnist08_test[0][:2], "fmn", steps=10)
    assert r.x_adv.device == device
