"""Model folders: round trips, export equivalence, and every bad file."""

from __future__ import annotations

import copy
import hashlib
import json
import pickle

import pytest
import torch
from helpers import train_steps
from safetensors.torch import save as save_safetensors
from torch import nn

import lipnet
from lipnet.certify import check_measured
from lipnet.io import ModelFileError
from lipnet.precision import to_float64


def conv_model() -> lipnet.LipSequential:
    torch.manual_seed(0)
    return lipnet.LipSequential(
        lipnet.SpectralConv2d(1, 8, 3, input_size=28),
        lipnet.GroupSort2(),
        lipnet.InvertibleDownSampling(2),
        lipnet.SpectralConv2d(32, 16, 3, input_size=14, padding_mode="circular"),
        lipnet.MaxMin(),
        lipnet.ScaledL2NormPool2d(2),
        lipnet.AOLConv2d(32, 8, 3),
        lipnet.ScaledAvgPool2d(7),
        lipnet.Flatten(),
        lipnet.SpectralLinear(8, 32),
        lipnet.GroupSort(4),
        lipnet.AOLLinear(32, 16),
        lipnet.FullSort(),
        lipnet.FrobeniusLinear(16, 10),
        input_shape=(1, 28, 28),
        classes=[str(i) for i in range(10)],
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = conv_model()
    train_steps(model, (1, 28, 28), steps=5)
    model.eval()
    folder = tmp_path_factory.mktemp("model")
    lipnet.save(model, folder, card={"summary": "a test model", "license": "MIT"})
    return model, folder


def test_round_trip_and_export_equivalence(saved):
    model, folder = saved
    x = torch.rand(16, 1, 28, 28)
    loaded = lipnet.load(folder)
    assert not loaded.training
    assert loaded.lipschitz_constant == 1.0 and loaded.head == "disjoint"
    assert loaded.spec["classes"][3] == "3" and loaded.spec["card"]["license"] == "MIT"
    with torch.no_grad():
        ref = model(x)
        assert torch.allclose(loaded(x), ref, atol=1e-5)
        exported = lipnet.vanilla_export(loaded)
        assert torch.allclose(exported(x), ref, atol=1e-5)
        assert torch.allclose(lipnet.vanilla_export(model)(x), ref, atol=1e-5)
    # The export is plain torch: no parametrizations, only standard weights.
    assert all(not hasattr(m, "parametrizations") for m in exported.modules())
    assert {type(m) for m in exported if list(m.parameters())} <= {nn.Linear, nn.Conv2d}
    # And it survives torch's own safe round trip.
    state = exported.state_dict()
    blob = save_safetensors({k: v.contiguous() for k, v in state.items()})
    from safetensors.torch import load as load_st

    exported.load_state_dict(load_st(blob))
    with torch.no_grad():
        assert torch.allclose(exported(x), ref, atol=1e-5)
    assert (folder / "CARD.md").read_text().startswith("# ")


def test_certificates_survive_the_round_trip(saved):
    model, folder = saved
    x = torch.rand(8, 1, 28, 28)
    loaded = lipnet.load(folder)
    # A loaded certified model computes in float64 with the weights it was
    # trained with: the same certificates as the in-memory model in float64.
    same = to_float64(copy.deepcopy(model))
    assert loaded.lipschitz_check["rounding_bound"] < 1e-9
    assert torch.allclose(
        lipnet.certified_radius(loaded, x), lipnet.certified_radius(same, x), atol=1e-6
    )
    # In float32 the in-memory model's radii lose the float32 rounding bound.
    float32 = lipnet.certified_radius(model, x)
    assert (float32 <= lipnet.certified_radius(loaded, x) + 1e-6).all()


def test_unconstrained_model_round_trip(tmp_path):
    model = lipnet.LipSequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.1),
        nn.Linear(4 * 14 * 14, 1),
        input_shape=(1, 28, 28),
        classes=["0", "8"],
    )
    lipnet.save(model.eval(), tmp_path / "plain")
    loaded = lipnet.load(tmp_path / "plain")
    assert loaded.head == "none" and loaded.spec["certified"] is False
    assert "no certificate" in (tmp_path / "plain" / "CARD.md").read_text()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)


def copy_folder(folder, dest):
    dest.mkdir()
    for f in folder.iterdir():
        (dest / f.name).write_bytes(f.read_bytes())
    return dest


def rewrite_spec(folder, change):
    spec = json.loads((folder / "spec.json").read_text())
    change(spec)
    (folder / "spec.json").write_text(json.dumps(spec))


def rehash(folder):
    blob = (folder / "weights.safetensors").read_bytes()
    rewrite_spec(
        folder, lambda s: s["weights"].update(sha256=hashlib.sha256(blob).hexdigest())
    )


def test_missing_and_truncated_files(saved, tmp_path):
    _, folder = saved
    with pytest.raises(ModelFileError, match="no model folder"):
        lipnet.load(tmp_path / "nothing")
    bad = copy_folder(folder, tmp_path / "a")
    (bad / "weights.safetensors").unlink()
    with pytest.raises(ModelFileError, match=r"weights\.safetensors is missing"):
        lipnet.load(bad)
    bad = copy_folder(folder, tmp_path / "b")
    blob = (bad / "weights.safetensors").read_bytes()
    (bad / "weights.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelFileError, match="checksum"):
        lipnet.load(bad)
    rehash(bad)  # even with a matching checksum, a truncated file is refused
    with pytest.raises(ModelFileError, match="not a valid safetensors"):
        lipnet.load(bad)


def test_tampered_weights_and_spec(saved, tmp_path):
    _, folder = saved
    bad = copy_folder(folder, tmp_path / "a")
    blob = bytearray((bad / "weights.safetensors").read_bytes())
    blob[-3] ^= 0xFF
    (bad / "weights.safetensors").write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="checksum"):
        lipnet.load(bad)
    # A spec claiming a smaller Lipschitz constant would inflate certificates.
    bad = copy_folder(folder, tmp_path / "b")
    rewrite_spec(bad, lambda s: s.update(lipschitz_constant=0.5))
    with pytest.raises(ModelFileError, match=r"declares a Lipschitz constant of 0\.5"):
        lipnet.load(bad)


def test_mismatched_weights(saved, tmp_path):
    _, folder = saved
    bad = copy_folder(folder, tmp_path / "a")
    rewrite_spec(bad, lambda s: s["layers"][0]["args"].update(out_channels=4))
    with pytest.raises(ModelFileError):
        lipnet.load(bad)
    other = lipnet.LipSequential(
        lipnet.Flatten(), lipnet.SpectralLinear(784, 1), input_shape=(1, 28, 28)
    )
    lipnet.save(other, tmp_path / "other")
    bad = copy_folder(folder, tmp_path / "b")
    (bad / "weights.safetensors").write_bytes(
        (tmp_path / "other" / "weights.safetensors").read_bytes()
    )
    rehash(bad)
    with pytest.raises(ModelFileError, match="does not match the architecture"):
        lipnet.load(bad)


def test_nan_and_wrong_dtype_weights(saved, tmp_path):
    model, folder = saved
    for name, change in [
        ("nan", lambda t: t.fill_(float("nan"))),
        ("dtype", lambda t: t.double()),
    ]:
        bad = copy_folder(folder, tmp_path / name)
        state = {
            k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
        }
        key = next(iter(state))
        state[key] = change(state[key])
        (bad / "weights.safetensors").write_bytes(save_safetensors(state))
        rehash(bad)
        with pytest.raises(ModelFileError, match=r"NaN|dtype"):
            lipnet.load(bad)


class _Boom:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_foreign_and_malicious_files(saved, tmp_path, capsys):
    _, folder = saved
    bad = copy_folder(folder, tmp_path / "a")
    (bad / "weights.safetensors").write_bytes(pickle.dumps(_Boom()))
    rehash(bad)
    with pytest.raises(ModelFileError, match="not a valid safetensors"):
        lipnet.load(bad)
    assert "must never run" not in capsys.readouterr().out
    bad = copy_folder(folder, tmp_path / "b")
    (bad / "spec.json").write_bytes(b"\x80\x04not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        lipnet.load(bad)
    (bad / "spec.json").write_text(json.dumps({"hello": "world"}))
    with pytest.raises(ModelFileError, match="not a lipnet model spec"):
        lipnet.load(bad)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s["layers"].append({"type": "os.system", "args": {}}),
            "unknown type",
        ),
        (
            lambda s: s["layers"][0]["args"].update(command="rm -rf /"),
            "unknown argument",
        ),
        (
            lambda s: s["layers"][0]["args"].update(kernel_size="3"),
            "invalid kernel_size",
        ),
        (lambda s: s.update(input_shape=[1, 28]), "invalid input_shape"),
        (lambda s: s.update(layers=[]), "list of 1 to 256 layers"),
        (lambda s: s.update(head="magic"), "unknown head"),
        (
            lambda s: s.update(
                layers=[
                    {"type": "Flatten", "args": {}},
                    {
                        "type": "Linear",
                        "args": {"in_features": 784, "out_features": 100000},
                    },
                ]
            ),
            "MAX_OUTPUTS, over its limit",
        ),
        (
            lambda s: s["layers"][0]["args"].update(padding_mode="reflect"),
            "padding_mode",
        ),
        (lambda s: s.update(format_version=99), "format_version"),
    ],
)
def test_malformed_specs(saved, tmp_path, change, message):
    _, folder = saved
    bad = copy_folder(folder, tmp_path / "m")
    rewrite_spec(bad, change)
    with pytest.raises(ModelFileError, match=message):
        lipnet.load(bad)


def test_oversized_files_are_refused(saved, tmp_path):
    _, folder = saved
    bad = copy_folder(folder, tmp_path / "big")
    with open(bad / "spec.json", "ab") as f:
        f.write(b" " * 1_000_001)
    with pytest.raises(ModelFileError, match="limit"):
        lipnet.load(bad)


def test_export_folder_round_trip(saved, tmp_path):
    from lipnet.export import export_folder
    from lipnet.io import zip_folder

    model, folder = saved
    out = export_folder(lipnet.load(folder), tmp_path / "plain")
    plain = lipnet.load(out)
    # The same function, still certified: the constant is measured on load.
    assert plain.spec["lipschitz_source"] == "measured"
    assert (
        (plain.head, plain.lipschitz_constant) == (model.head, 1.0) == ("disjoint", 1.0)
    )
    assert plain.lipschitz_check["sound"] and plain.spec["card"]["exported_from"]
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(plain(x), model(x), atol=1e-5)
    same = to_float64(copy.deepcopy(model))
    assert torch.allclose(
        lipnet.certified_radius(plain, x), lipnet.certified_radius(same, x), atol=1e-5
    )
    blob = zip_folder(out)
    assert blob[:2] == b"PK" and b"spec.json" in blob


def test_a_tampered_measured_export_is_refused(saved, tmp_path):
    """Plain layers whose weights grew no longer meet their measured constant."""
    import hashlib

    from safetensors.torch import load_file, save_file

    from lipnet.export import export_folder

    out = export_folder(lipnet.load(saved[1]), tmp_path / "plain")
    state = load_file(out / "weights.safetensors")
    # Every weight doubled: the bound (0.27 here, the AOL layers are loose)
    # grows 2⁶-fold, past the measured constant 1.
    state = {k: v * 2 if k.endswith("weight") else v for k, v in state.items()}
    save_file(state, out / "weights.safetensors")
    digest = hashlib.sha256((out / "weights.safetensors").read_bytes()).hexdigest()
    rewrite_spec(out, lambda s: s["weights"].update(sha256=digest))
    with pytest.raises(ModelFileError, match=r"measure up to \d+"):
        lipnet.load(out)


def test_a_measured_constant_counts_only_while_checked():
    torch.manual_seed(0)
    plain = lipnet.LipSequential(
        torch.nn.Linear(4, 1), input_shape=(4,), head="binary", measured_lipschitz=5.0
    )
    assert plain.lipschitz_constant is None  # declared, not yet measured
    check_measured(plain)
    assert plain.lipschitz_constant == 5.0
    with torch.no_grad():
        plain[0].weight.mul_(100)  # the parameters changed: the check is void
    assert plain.lipschitz_constant is None
    with pytest.raises(ValueError, match="measure up to"):
        check_measured(plain)
