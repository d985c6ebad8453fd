"""lipnet.from_torch and `python -m lipnet import`: deel-torchlip and plain torch nets.

A small deel-torchlip network is trained for a few steps on synthetic
images, converted, and compared with the original; the certificate uses the
measured bound and no attack beats it; the model folder loads (and uploads)
again; every bad input gets a clear error.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from deel import torchlip as tl
from torch import nn

import lipnet
from lipnet.__main__ import main
from lipnet.attacks import counterfactual
from lipnet.certify import lipschitz_lower_bound, lipschitz_upper_bound
from lipnet.convert import ConversionError, from_torch
from lipnet.io import load_upload
from lipnet.torch_import import import_model, read_state

SHAPE = (1, 12, 12)
ARCH = [  # the deel network below, as `python -m lipnet import` reads it
    {
        "type": "torchlip.SpectralConv2d",
        "args": {"in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1},
    },
    {"type": "torchlip.GroupSort2"},
    {"type": "torchlip.ScaledL2NormPool2d", "args": {"kernel_size": 2}},
    {
        "type": "torchlip.SpectralConv2d",
        "args": {
            "in_channels": 4,
            "out_channels": 8,
            "kernel_size": 3,
            "padding": 1,
            "padding_mode": "circular",
        },
    },
    {"type": "torchlip.MaxMin"},
    {"type": "torchlip.InvertibleDownSampling", "args": {"kernel_size": 2}},
    {"type": "nn.Flatten"},
    {
        "type": "torchlip.SpectralLinear",
        "args": {"in_features": 576, "out_features": 16},
    },
    {"type": "torchlip.FullSort"},
    {
        "type": "torchlip.FrobeniusLinear",
        "args": {"in_features": 16, "out_features": 1},
    },
]


def deel_net(outputs: int = 1) -> tl.Sequential:
    return tl.Sequential(
        tl.SpectralConv2d(1, 4, 3, padding=1),
        tl.GroupSort2(),
        tl.ScaledL2NormPool2d(2),
        tl.SpectralConv2d(4, 8, 3, padding=1, padding_mode="circular"),
        tl.MaxMin(),
        tl.InvertibleDownSampling(2),
        nn.Flatten(),
        tl.SpectralLinear(576, 16),
        tl.FullSort(),
        tl.FrobeniusLinear(16, outputs),
    )


def images(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise images; class 1 is brighter in the top half."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.rand(n, *SHAPE, generator=gen) * 0.6
    x[y == 1, :, :6] += 0.4
    return x, y


@pytest.fixture(scope="module")
def trained() -> tl.Sequential:
    """A deel-torchlip binary classifier after 15 hKR steps (a few seconds)."""
    torch.manual_seed(0)
    net = deel_net()
    x, y = images()
    loss = tl.HKRLoss(alpha=0.9, min_margin=0.5)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    net.train()
    for _ in range(15):
        opt.zero_grad()
        loss(net(x), (2 * y - 1).float().unsqueeze(1)).backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def converted(trained) -> lipnet.LipSequential:
    return from_torch(trained, SHAPE, ["dark", "bright"])


def test_outputs_equal_deel_and_its_vanilla_export(trained, converted):
    x, _ = images(32, seed=1)
    with torch.no_grad():
        want = trained(x)
        got = converted(x)
        got_vanilla = from_torch(trained.vanilla_export(), SHAPE, ["d", "b"])(x)
    assert want.abs().max() > 0.05  # a trained network, not zeros
    assert (got - want).abs().max().item() <= 1e-6
    assert (got_vanilla - want).abs().max().item() <= 1e-6
    assert converted.head == "binary" and converted.classes == ["dark", "bright"]
    assert all(
        type(m).__module__.startswith(("torch.nn", "lipnet.layers")) for m in converted
    )
    assert trained.training is False  # the original is left as it was


def test_constant_is_measured_and_certificate_holds(trained, converted):
    x, _ = images(16, seed=2)
    lip = converted.lipschitz_constant
    assert lip == converted.measured_lipschitz
    assert lip == pytest.approx(lipschitz_upper_bound(converted, SHAPE), rel=1e-12)
    # The bound is an upper bound of what the network does locally, and close
    # to deel-torchlip's claim of 1 (its conv normalisation is conservative).
    assert lipschitz_lower_bound(converted, x) <= lip <= 1.0 + 1e-3
    assert lip > 0.3
    with torch.no_grad():
        f = converted(x).squeeze(1)
    radius = lipnet.certified_radius(converted, x)
    ideal = f.abs() / lip
    assert (radius <= ideal + 1e-12).all()
    # In float32 the rounding bound costs a little (about 1%; float64 after
    # lipnet.load: nothing visible, see the round trip).
    assert (radius >= ideal * 0.97).all()
    # No attack gets inside the certified radius (pure R^d, no pixel box).
    for method in ("transport", "fmn"):
        r = counterfactual(converted, x, method, box=False)
        assert r.success.float().mean() >= 0.5
        assert (r.l2[r.success] >= radius[r.success] * (1 - 1e-4)).all()


def test_save_load_and_upload_round_trip(converted, trained, tmp_path):
    folder = lipnet.save(converted, tmp_path / "deel-small", card=converted.card)
    spec = json.loads((folder / "spec.json").read_text())
    assert spec["lipschitz_source"] == "measured"
    assert spec["lipschitz_constant"] == converted.lipschitz_constant
    assert spec["card"]["imported_from"].startswith("deel-torchlip")
    loaded = lipnet.load(folder)
    upload = load_upload(
        (folder / "spec.json").read_bytes(),
        (folder / "weights.safetensors").read_bytes(),
    )
    x, _ = images(16, seed=3)
    with torch.no_grad():
        want = trained(x)
        for m in (loaded, upload):
            assert m(x).dtype == torch.float32
            assert (m(x) - want).abs().max().item() <= 1e-6
    check = loaded.lipschitz_check
    assert check["upper_bound"] <= converted.lipschitz_constant * (1 + 1e-9)
    r_loaded = lipnet.certified_radius(loaded, x)
    lip = check["lipschitz"]
    assert torch.allclose(r_loaded, want.squeeze(1).abs() / lip, atol=1e-6)
    assert (r_loaded >= lipnet.certified_radius(converted, x)).all()


def test_multiclass_heads_and_k_coef_lip():
    torch.manual_seed(1)
    x, _ = images(8, seed=4)
    for k in (1.0, 2.0):
        net = deel_net(outputs=3)
        net = tl.Sequential(*net, k_coef_lip=k).eval()  # k spread over the layers
        model = from_torch(net, SHAPE, ["a", "b", "c"])
        assert model.head == "disjoint"  # deel's FrobeniusLinear: one per neuron
        with torch.no_grad():
            assert (model(x) - net(x)).abs().max().item() <= 1e-6
    # A plain multiclass net: the whole network is measured ("lipschitz").
    plain = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding="same"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular"),
        nn.LPPool2d(2, 2),
        nn.AvgPool2d(3),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(4, 3),
    ).eval()
    model = from_torch(plain, SHAPE, ["a", "b", "c"])
    assert model.head == "lipschitz"
    with torch.no_grad():
        assert (model(x) - plain(x)).abs().max().item() <= 1e-6
    assert model.lipschitz_constant == pytest.approx(
        lipschitz_upper_bound(model, SHAPE), rel=1e-12
    )
    assert lipschitz_lower_bound(model, x) <= model.lipschitz_constant


def test_cli_import_from_arch_and_state_dict(trained, tmp_path, capsys):
    arch = {"input_shape": list(SHAPE), "classes": ["dark", "bright"], "layers": ARCH}
    (tmp_path / "arch.json").write_text(json.dumps(arch))
    torch.save(trained.state_dict(), tmp_path / "state.pt")
    code = main(
        [
            "import",
            str(tmp_path / "arch.json"),
            str(tmp_path / "state.pt"),
            "--out",
            str(tmp_path / "imported"),
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["lipschitz_source"] == "measured" and out["head"] == "binary"
    loaded = lipnet.load(tmp_path / "imported")
    x, _ = images(8, seed=5)
    with torch.no_grad():
        assert (loaded(x) - trained(x)).abs().max().item() <= 1e-6
    # A checkpoint dict with a prefix works too.
    state = {"state_dict": {f"net.{k}": v for k, v in trained.state_dict().items()}}
    torch.save(state, tmp_path / "ckpt.pt")
    arch["state_dict_prefix"] = "net."
    (tmp_path / "arch2.json").write_text(json.dumps(arch))
    model = import_model(tmp_path / "arch2.json", tmp_path / "ckpt.pt")
    assert model.lipschitz_constant == pytest.approx(out["lipschitz_constant"])


def _refused(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(ConversionError, match=match) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_unsupported_layers_are_named():
    msg = _refused(
        "HouseHolder", from_torch, nn.Sequential(tl.HouseHolder(4)), (4,), ["a", "b"]
    )
    assert "model.0" in msg and "Supported:" in msg
    _refused(
        r"nn\.modules\.activation\.Tanh",
        from_torch,
        nn.Sequential(nn.Linear(4, 1), nn.Tanh()),
        (4,),
        ["a", "b"],
    )
    _refused(
        "remove it",
        from_torch,
        nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1)),
        (4,),
        ["a", "b", "c"],
    )

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) * 2

    _refused("Net.*pass an nn.Sequential", from_torch, Net(), (4,), ["a", "b"])
    overlapping = nn.Sequential(nn.AvgPool2d(2, stride=1), nn.Flatten())
    _refused("non-overlapping", from_torch, overlapping, (1, 4, 4), ["a"] * 9)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "symmetric"])
def test_unbounded_paddings_are_refused(mode):
    if mode == "symmetric":
        conv = tl.SpectralConv2d(1, 2, 3, padding=1, padding_mode=mode)
    else:
        conv = nn.Conv2d(1, 2, 3, padding=1, padding_mode=mode)
    net = nn.Sequential(conv, nn.Flatten(), nn.Linear(2 * 36, 1)).eval()
    msg = _refused("padding_mode", from_torch, net, (1, 6, 6), ["a", "b"])
    assert "'zeros' or 'circular'" in msg


def test_bad_weights_shapes_and_classes(trained):
    nan = deel_net()
    with torch.no_grad():
        nan[7].parametrizations.weight.original[0, 0] = math.nan
    _refused("non-finite", from_torch, nan.eval(), SHAPE, ["a", "b"])
    _refused(
        r"inputs of shape \(1, 10, 10\)", from_torch, trained, (1, 10, 10), ["a", "b"]
    )
    _refused("at least 2 class names", from_torch, trained, SHAPE, ["only"])
    _refused("needs 2 class names", from_torch, trained, SHAPE, ["a", "b", "c"])
    _refused("input_shape", from_torch, trained, (1, -3, 12), ["a", "b"])
    # An unconstrained plain network measures above what a folder allows.
    big = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1))
    with torch.no_grad():
        for m in big:
            m.weight.fill_(3000.0)
    _refused("not Lipschitz-constrained", from_torch, big, (4,), ["a", "b"])
    assert from_torch(big, (4,), ["a", "b"], head="none").lipschitz_constant is None


def _arch_file(tmp_path, layers, name="arch.json"):
    arch = {"input_shape": list(SHAPE), "classes": ["a", "b"], "layers": layers}
    (tmp_path / name).write_text(json.dumps(arch))
    return tmp_path / name


def test_cli_bad_state_dicts_and_arch(trained, tmp_path, capsys):
    arch = _arch_file(tmp_path, ARCH)
    state = dict(trained.state_dict())
    del state["7.bias"]
    state["9.bias"] = torch.zeros(2)
    state["extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pt")
    msg = _refused("does not match", import_model, arch, tmp_path / "bad.pt")
    assert "missing: 7.bias" in msg and "unexpected: extra" in msg
    assert "9.bias is (2,) in the file, (1,) in the architecture" in msg
    code = main(["import", str(arch), str(tmp_path / "bad.pt"), "--out", "x"])
    assert code == 1 and "missing: 7.bias" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    # A pickled module is never unpickled.
    torch.save(nn.Sequential(nn.Linear(4, 1)), tmp_path / "module.pt")
    _refused("weights-only", read_state, tmp_path / "module.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    _refused("weights-only", read_state, tmp_path / "junk.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    _refused("state_dict of tensors", read_state, tmp_path / "list.pt")
    # The architecture is data from a fixed list.
    for layers, match in (
        ([{"type": "os.system", "args": {}}], "unknown type 'os.system'"),
        ([{"type": "nn.Linear", "args": {"in_features": "4"}}], "invalid in_features"),
        ([{"type": "nn.Linear", "args": {"weight": 1}}], "unknown argument 'weight'"),
        ([{"type": "nn.Conv2d", "args": {"padding": "x"}}], "invalid padding"),
        (
            [
                {
                    "type": "nn.Linear",
                    "args": {"in_features": 60000, "out_features": 60000},
                }
            ],
            "over 25,000,000 parameters",
        ),
        ([{"type": "torchlip.GroupSort", "args": {"group_size": 3}}], None),
    ):
        path = _arch_file(tmp_path, layers, "a.json")
        if match is None:  # builds, but the state_dict has nothing for it
            torch.save({}, tmp_path / "empty.pt")
            _refused("scores of shape", import_model, path, tmp_path / "empty.pt")
        else:
            _refused(match, import_model, path, tmp_path / "bad.pt")
    (tmp_path / "a.json").write_text("{not json")
    _refused("not valid JSON", import_model, tmp_path / "a.json", tmp_path / "bad.pt")
