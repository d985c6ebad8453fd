"""A corpus of models that are sound on paper and hostile to floating point.

Each case is (spec.json bytes, weights bytes, expected refusal or None), made
in memory from the shipped `mnist08-hkr` and `mnist10-hkr` or from a small
spec: biases that cancel at several magnitudes (the score is then rounded to
a coarse grid), gains that overflow, declared constants a hair below the
measured one, and AOL layers around the build budget. A case with a refusal
must be refused with that reason; a case without one must load with a
certificate no attack can beat (`tests/test_float_certificates.py`). Run as a
program with case names it loads each one and prints its CPU seconds and
peak-memory growth as JSON (the load-cost test runs it under a memory limit).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from lipnet.io import ModelFileError, build, load

MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"


class FloatCase(NamedTuple):
    spec: bytes
    weights: bytes
    refusal: str | None
    """Regex of the ModelFileError message, or None: it must load and be sound."""


def _shipped(name: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    folder = MODELS / name
    spec = json.loads((folder / "spec.json").read_text())
    return spec, load_safetensors((folder / "weights.safetensors").read_bytes())


def _pack(spec: dict[str, Any], state: dict[str, torch.Tensor]) -> tuple[bytes, bytes]:
    """The two files of a model folder, the checksum matching the weights."""
    blob = save_safetensors(
        {k: v.contiguous() for k, v in state.items()},
        metadata={"format": "lipnet.model"},
    )
    spec = copy.deepcopy(spec)
    spec["weights"] = {
        "file": "weights.safetensors",
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
    }
    return json.dumps(spec).encode(), blob


def _case(spec: dict, state: dict, refusal: str | None) -> FloatCase:
    return FloatCase(*_pack(spec, state), refusal)


def _cancelling_binary(magnitude: float) -> tuple[dict, dict]:
    """mnist08-hkr with its head bias raised by `magnitude`, then a 1 × 1
    Frobenius layer whose bias takes it off again: 1-Lipschitz on paper."""
    spec, state = _shipped("mnist08-hkr")
    spec["name"] = "cancel-binary"
    last = len(spec["layers"])
    spec["layers"].append(
        {
            "type": "FrobeniusLinear",
            "args": {"in_features": 1, "out_features": 1, "k": 1.0},
        }
    )
    state["7.bias"] = state["7.bias"] + magnitude
    state[f"{last}.bias"] = torch.tensor([-magnitude])
    state[f"{last}.parametrizations.weight.original"] = torch.ones(1, 1)
    return spec, state


def _cancelling_multiclass(magnitude: float) -> tuple[dict, dict]:
    """mnist10-hkr with every score raised by `magnitude` and an identity
    Björck layer that takes it off again."""
    spec, state = _shipped("mnist10-hkr")
    spec["name"] = "cancel-multiclass"
    head = len(spec["layers"]) - 1
    last = head + 1
    spec["layers"].append(
        {
            "type": "SpectralLinear",
            "args": {"in_features": 10, "out_features": 10, "k": 1.0},
        }
    )
    state[f"{head}.bias"] = state[f"{head}.bias"] + magnitude
    state[f"{last}.bias"] = torch.full((10,), -magnitude)
    state[f"{last}.parametrizations.weight.original"] = torch.eye(10)
    state[f"{last}.parametrizations.weight.0.u"] = torch.ones(10) / 10**0.5
    return spec, state


def _gain_chain(up: int, gain: float, bias: float = 0.0) -> tuple[dict, dict]:
    """mnist08-hkr with `up` 64 × 64 identity layers of k = gain before its
    head, then `up` of k = 1/gain: the derived constant stays 1. The first
    of them adds `bias` to one unit and takes it from another."""
    spec, state = _shipped("mnist08-hkr")
    spec["name"] = "gain-chain"
    head = spec["layers"].pop()
    head_state = {k: v for k, v in state.items() if k.startswith("7.")}
    state = {k: v for k, v in state.items() if not k.startswith("7.")}
    for i in range(2 * up):
        k = gain if i < up else 1 / gain
        index = len(spec["layers"])
        spec["layers"].append(
            {
                "type": "SpectralLinear",
                "args": {"in_features": 64, "out_features": 64, "k": k},
            }
        )
        state[f"{index}.bias"] = torch.zeros(64)
        if i == 0:
            state[f"{index}.bias"][:2] = torch.tensor([bias, -bias])
        state[f"{index}.parametrizations.weight.original"] = torch.eye(64)
        state[f"{index}.parametrizations.weight.0.u"] = torch.ones(64) / 8
    index = len(spec["layers"])
    spec["layers"].append(head)
    for key, value in head_state.items():
        state[f"{index}." + key.split(".", 1)[1]] = value
    spec["lipschitz_constant"] = _derived(spec)
    return spec, state


def _derived(spec: dict[str, Any]) -> float:
    """The constant `build` derives: the product of the layers' k, in order."""
    return math.prod(e.get("args", {}).get("k", 1.0) for e in spec["layers"])


def _declared_below(factor: float) -> tuple[dict, dict]:
    """The plain export of mnist08-hkr declaring a constant `factor` below 1:
    within the loader's tolerance, so the certificate must use the measured."""
    spec, _ = _shipped("mnist08-hkr")
    spec["name"] = "declared-below"
    spec["lipschitz_source"] = "measured"
    spec["lipschitz_constant"] = 1.0 / factor
    plain = {"LipFlatten": ("Flatten", {})}
    layers = []
    model = load(MODELS / "mnist08-hkr")
    new_state = {}
    for i, entry in enumerate(spec["layers"]):
        if entry["type"] in plain:
            layers.append({"type": plain[entry["type"]][0], "args": {}})
        elif entry["type"] == "FullSort":
            layers.append(entry)
        else:
            a = entry["args"]
            layers.append(
                {
                    "type": "Linear",
                    "args": {
                        "in_features": a["in_features"],
                        "out_features": a["out_features"],
                        "bias": True,
                    },
                }
            )
            new_state[f"{i}.weight"] = model[i].scaled_weight().detach().float()
            new_state[f"{i}.bias"] = model[i].bias.detach().float()
    spec["layers"] = layers
    return spec, new_state


def _aol_conv(cin: int, size: int) -> dict[str, Any]:
    args = {"in_channels": cin, "out_channels": 32, "kernel_size": [size, size]}
    return {"type": "AOLConv2d", "args": args}


def _aol(kind: str, size: int) -> tuple[dict, dict]:
    """A small binary model around one AOL layer of a chosen size."""
    if kind == "AOLLinear":
        side = int(size**0.5)
        layers = [
            {"type": "LipFlatten", "args": {}},
            {
                "type": "AOLLinear",
                "args": {"in_features": side * side, "out_features": 8},
            },
        ]
        shape = [1, side, side]
    else:
        layers = [
            _aol_conv(1, 3),
            {"type": "GroupSort2", "args": {}},
            _aol_conv(32, size),
            {"type": "GroupSort2", "args": {}},
            {"type": "LipFlatten", "args": {}},
            {
                "type": "SpectralLinear",
                "args": {"in_features": 32 * 16 * 16, "out_features": 8},
            },
        ]
        shape = [1, 16, 16]
    layers += [
        {"type": "GroupSort2", "args": {}},
        {"type": "FrobeniusLinear", "args": {"in_features": 8, "out_features": 1}},
    ]
    spec = {
        "format": "lipnet.model",
        "format_version": 1,
        "name": f"aol-{size}",
        "task": "binary",
        "input_shape": shape,
        "classes": ["a", "b"],
        "head": "binary",
        "lipschitz_constant": 1.0,
        "lipschitz_source": "derived",
        "certified": True,
        "normalization": None,
        "layers": layers,
        "weights": {"sha256": ""},
        "card": {},
    }
    torch.manual_seed(0)
    try:
        state = {k: v.float() for k, v in build(spec).state_dict().items()}
    except ModelFileError:  # over the budget: the weights are never read
        state = {}
    return spec, state


def corpus(include_heavy: bool = True) -> dict[str, FloatCase]:
    """Every float-hostile case by name (the budget-sized AOL ones if heavy)."""
    cases: dict[str, FloatCase] = {}
    for power in (10, 25):
        cases[f"cancel-binary-2^{power}"] = _case(*_cancelling_binary(2.0**power), None)
        cases[f"cancel-multiclass-2^{power}"] = _case(
            *_cancelling_multiclass(2.0**power), None
        )
    drowned = r"rounding could change this model's scores"
    for power in (40, 60, 100):
        cases[f"cancel-binary-2^{power}"] = _case(
            *_cancelling_binary(2.0**power), drowned
        )
        cases[f"cancel-multiclass-2^{power}"] = _case(
            *_cancelling_multiclass(2.0**power), drowned
        )
    # Overflows float32 (the scores of the old loader were inf); exact in float64.
    cases["gain-chain-1e3x13"] = _case(*_gain_chain(13, 1e3), None)
    cases["gain-chain-1e3x40"] = _case(*_gain_chain(40, 1e3), None)
    cases["gain-chain-bias-1e3x5"] = _case(*_gain_chain(5, 1e3, 1e30), drowned)
    cases["gain-chain-overflow"] = _case(
        *_gain_chain(95, 1e3, 3e38), r"not finite on some inputs"
    )
    for factor in (1.0005, 1.000998):
        cases[f"declared-below-{factor}"] = _case(*_declared_below(factor), None)
    cases["declared-below-1.01"] = _case(
        *_declared_below(1.01), r"over the declared 0\.99"
    )
    if include_heavy:
        over = r"MAX_BUILD_BYTES|MAX_BUILD_FLOPS"
        cases["aol-linear-4096"] = _case(*_aol("AOLLinear", 64 * 64), None)
        cases["aol-linear-over"] = _case(*_aol("AOLLinear", 160 * 160), over)
        cases["aol-conv-9"] = _case(*_aol("AOLConv2d", 9), None)
        cases["aol-conv-over"] = _case(*_aol("AOLConv2d", 15), over)
    return cases


def _load_cost(names: list[str]) -> dict[str, dict[str, Any]]:
    """Load each named case; its outcome, CPU seconds and peak-RSS growth."""
    from lipnet.io import load_upload

    torch.set_num_threads(1)
    cases = corpus()
    results = {}
    for name in names:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.process_time()
        try:
            load_upload(cases[name].spec, cases[name].weights)
            error = None
        except Exception as e:  # the test reports any type that is not ours
            error = f"{type(e).__name__}: {e}"
        results[name] = {
            "error": error,
            "cpu_seconds": time.process_time() - started,
            "rss_growth_mb": (
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
            )
            / 1024,
        }
    return results


if __name__ == "__main__":
    json.dump(_load_cost(sys.argv[1:]), sys.stdout)
