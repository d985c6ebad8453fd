"""`python -m lipnet import`: a saved state_dict and its architecture as a model folder.

The architecture is a small JSON description, data and never code: each
layer is a type from a fixed list (deel-torchlip's layers as
`torchlip.Name`, plain torch as `nn.Name`) with its constructor arguments,
each checked against its kind. The weights are read with
`torch.load(weights_only=True)`: tensors only, no module is ever unpickled.
The network is then converted by `lipnet.convert.from_torch`, which
measures its Lipschitz constant.

    {"input_shape": [1, 28, 28], "classes": ["0", "8"],
     "layers": [{"type": "torchlip.SpectralConv2d",
                 "args": {"in_channels": 1, "out_channels": 8,
                          "kernel_size": 3, "padding": 1}},
                {"type": "torchlip.GroupSort2"}, ...]}

Optional keys: "head" (see `from_torch`), "name" (the model folder's name),
"k_coef_lip" (deel-torchlip's `Sequential(..., k_coef_lip=k)`) and
"state_dict_prefix" (stripped from every key, e.g. "model.").
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .convert import ConversionError, from_torch
from .convert_layers import deel
from .layers import LipSequential

MAX_ARCH_BYTES = 1_000_000
MAX_STATE_BYTES = 200_000_000
MAX_LAYERS = 256
MAX_PARAMETERS = 25_000_000


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 1 << 16


def _size(v: Any) -> bool:
    return _int(v) or (isinstance(v, list) and len(v) == 2 and all(map(_int, v)))


def _float(v: Any) -> bool:
    return (
        isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
        and 0 <= v <= 1e6
    )


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _padding(v: Any) -> bool:
    return _size(v) or v in ("same", "valid")


def _padding_mode(v: Any) -> bool:  # the converter explains its refusals itself
    return v in ("zeros", "circular", "reflect", "replicate", "symmetric")


def _optional_float(v: Any) -> bool:
    return v is None or _float(v)


_K = {"k_coef_lip": _float}
_DENSE = {"in_features": _int, "out_features": _int, "bias": _bool}
_CONV = {
    "in_channels": _int,
    "out_channels": _int,
    "kernel_size": _size,
    "stride": _size,
    "padding": _padding,
    "padding_mode": _padding_mode,
    "bias": _bool,
}
_EPS = {"eps_spectral": _float, "eps_bjorck": _optional_float}
# type -> {argument: check}
LAYER_TYPES: dict[str, dict[str, Callable[[Any], bool]]] = {
    "torchlip.SpectralLinear": {**_DENSE, **_K, **_EPS},
    "torchlip.FrobeniusLinear": {**_DENSE, **_K, "disjoint_neurons": _bool},
    "torchlip.SpectralConv2d": {**_CONV, **_K, **_EPS},
    "torchlip.FrobeniusConv2d": {**_CONV, **_K},
    "torchlip.GroupSort": {"group_size": _int, **_K},
    "torchlip.GroupSort2": dict(_K),
    "torchlip.FullSort": dict(_K),
    "torchlip.MaxMin": dict(_K),
    "torchlip.ScaledAvgPool2d": {"kernel_size": _size, **_K},
    "torchlip.ScaledL2NormPool2d": {"kernel_size": _size, **_K},
    "torchlip.ScaledAdaptiveAvgPool2d": {"output_size": _size, **_K},
    "torchlip.ScaledAdaptativeL2NormPool2d": {"output_size": _size, **_K},
    "torchlip.InvertibleDownSampling": {"kernel_size": _int, **_K},
    "nn.Linear": dict(_DENSE),
    "nn.Conv2d": dict(_CONV),
    "nn.ReLU": {},
    "nn.Flatten": {},
    "nn.Identity": {},
    "nn.Dropout": {"p": lambda v: _float(v) and v <= 1},
    "nn.AvgPool2d": {"kernel_size": _size},
    "nn.MaxPool2d": {"kernel_size": _size},
    "nn.LPPool2d": {"norm_type": _float, "kernel_size": _size},
    "nn.AdaptiveAvgPool2d": {"output_size": _size},
    "nn.PixelUnshuffle": {"downscale_factor": _int},
}
_SIZE_ARGS = ("kernel_size", "stride", "padding", "output_size")


def read_arch(path: str | os.PathLike) -> dict[str, Any]:
    """Parse and check an architecture file.

    Args:
        path: the JSON description (at most 1 MB, at most 256 layers).

    Returns:
        The description, each layer's arguments checked against its type.

    Raises:
        ConversionError: naming the first problem.
    """
    p = Path(path)
    if not p.is_file():
        raise ConversionError(f"no architecture file at {p}")
    if p.stat().st_size > MAX_ARCH_BYTES:
        raise ConversionError(f"{p.name} is larger than {MAX_ARCH_BYTES:,} bytes")
    try:
        arch = json.loads(p.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConversionError(f"{p.name} is not valid JSON: {e}") from None
    if not isinstance(arch, dict):
        raise ConversionError(f"{p.name} must hold a JSON object")
    for key in ("input_shape", "classes", "layers"):
        if key not in arch:
            raise ConversionError(f"{p.name} has no {key!r}")
    layers = arch["layers"]
    if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_LAYERS:
        raise ConversionError(f"'layers' must be a list of 1 to {MAX_LAYERS} layers")
    for i, entry in enumerate(layers):
        _check_layer(i, entry)
    for key, check in (("k_coef_lip", _float), ("state_dict_prefix", _text)):
        if key in arch and not check(arch[key]):
            raise ConversionError(f"invalid {key!r}: {arch[key]!r}")
    return arch


def _text(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 200


def _check_layer(i: int, entry: Any) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise ConversionError(f"layer {i} must be an object with a 'type'")
    kind = entry["type"]
    if kind not in LAYER_TYPES:
        raise ConversionError(
            f"layer {i} has unknown type {kind!r}; known: {', '.join(LAYER_TYPES)}"
        )
    args = entry.get("args", {})
    if not isinstance(args, dict):
        raise ConversionError(f"layer {i} ({kind}): 'args' must be an object")
    for name, value in args.items():
        if name not in LAYER_TYPES[kind]:
            raise ConversionError(f"layer {i} ({kind}): unknown argument {name!r}")
        if not LAYER_TYPES[kind][name](value):
            raise ConversionError(f"layer {i} ({kind}): invalid {name}={value!r}")


def build_network(arch: Mapping[str, Any]) -> nn.Sequential:
    """The torch network an architecture describes (untrained weights).

    Args:
        arch: a description checked by `read_arch`.

    Returns:
        An nn.Sequential, or deel-torchlip's Sequential (with the
        description's `k_coef_lip`) when it has deel-torchlip layers.

    Raises:
        ConversionError: deel-torchlip is not installed, the network is over
            25,000,000 parameters, or a constructor refuses its arguments.
    """
    tl = deel()
    layers, n_params = [], 0
    for i, entry in enumerate(arch["layers"]):
        kind = entry["type"]
        args = {
            k: tuple(v) if k in _SIZE_ARGS and isinstance(v, list) else v
            for k, v in entry.get("args", {}).items()
        }
        n_params += _parameters(args)
        if n_params > MAX_PARAMETERS:
            raise ConversionError(f"over {MAX_PARAMETERS:,} parameters at layer {i}")
        space, name = kind.split(".", 1)
        if space == "torchlip" and tl is None:
            raise ConversionError(
                f"layer {i} is {kind}: install deel-torchlip to import it"
            )
        cls = getattr(tl if space == "torchlip" else nn, name)
        try:
            layers.append(cls(**args))
        except (TypeError, ValueError, RuntimeError, AssertionError) as e:
            raise ConversionError(f"layer {i} ({kind}): {e}") from None
    if any(e["type"].startswith("torchlip.") for e in arch["layers"]):
        return tl.Sequential(*layers, k_coef_lip=float(arch.get("k_coef_lip", 1.0)))
    return nn.Sequential(*layers)


def _parameters(args: Mapping[str, Any]) -> int:
    """Weights a dense or conv layer allocates (before building it)."""
    if "in_features" in args:
        return args.get("in_features", 1) * args.get("out_features", 1)
    k = args.get("kernel_size", 1)
    area = k * k if isinstance(k, int) else k[0] * k[1]
    return args.get("in_channels", 1) * args.get("out_channels", 1) * area


def read_state(path: str | os.PathLike, prefix: str = "") -> dict[str, torch.Tensor]:
    """A state_dict read with `torch.load(weights_only=True)`: tensors, never code.

    Args:
        path: a file written by `torch.save(model.state_dict(), path)` (or a
            checkpoint dict with a "state_dict" / "model_state_dict" entry).
        prefix: stripped from the start of every key that has it.

    Returns:
        {key: tensor}.

    Raises:
        ConversionError: missing, too large, not a weights-only torch file,
            or not a mapping of names to tensors.
    """
    p = Path(path)
    if not p.is_file():
        raise ConversionError(f"no weights file at {p}")
    if p.stat().st_size > MAX_STATE_BYTES:
        raise ConversionError(f"{p.name} is larger than {MAX_STATE_BYTES:,} bytes")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a foreign file
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConversionError(
            f"{p.name} is not a weights-only torch file (torch.load with "
            f"weights_only=True refused it: {first})"
        ) from None
    for key in ("state_dict", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()
    ):
        raise ConversionError(f"{p.name} does not hold a state_dict of tensors")
    return {k.removeprefix(prefix) if prefix else k: v for k, v in state.items()}


def load_state(network: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load `state` into `network`, or say exactly how they differ.

    Raises:
        ConversionError: listing missing and unexpected keys and shape
            mismatches.
    """
    want = network.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    shapes = [
        f"{k} is {tuple(state[k].shape)} in the file, {tuple(v.shape)} in the "
        "architecture"
        for k, v in want.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for label, items in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("wrong shape", shapes),
    ):
        if items:
            more = f" (and {len(items) - 5} more)" if len(items) > 5 else ""
            problems.append(f"{label}: {', '.join(items[:5])}{more}")
    if problems:
        raise ConversionError(
            "the state_dict does not match the architecture; " + "; ".join(problems)
        )
    network.load_state_dict(state, strict=True)


def import_model(
    arch_path: str | os.PathLike, state_path: str | os.PathLike
) -> LipSequential:
    """Build, load and convert: the lipnet model of a saved deel-torchlip/torch net.

    Args:
        arch_path: the JSON architecture (see the module's docstring).
        state_path: its state_dict (`torch.save(model.state_dict(), path)`).

    Returns:
        `from_torch`'s model: plain layers, the Lipschitz constant measured.
    """
    arch = read_arch(arch_path)
    network = build_network(arch)
    load_state(network, read_state(state_path, arch.get("state_dict_prefix", "")))
    network.eval()
    return from_torch(network, arch["input_shape"], arch["classes"], arch.get("head"))


def import_folder(
    arch_path: str | os.PathLike,
    state_path: str | os.PathLike,
    out: str | os.PathLike,
    name: str | None = None,
) -> tuple[Path, LipSequential]:
    """`import_model`, written as a model folder that `lipnet.load` reads.

    Returns:
        (the folder, the model as loaded back from it, measured again).
    """
    from .io import ModelFileError, load, save

    model = import_model(arch_path, state_path)
    arch = json.loads(Path(arch_path).read_text())
    card = dict(model.card)
    card["reproduce"] = (
        f"python -m lipnet import {Path(arch_path).name} {Path(state_path).name} "
        f"--out {Path(out).name}"
    )
    try:
        folder = save(model, out, card=card, name=name or arch.get("name"))
        return folder, load(folder)
    except (ModelFileError, ValueError) as e:
        raise ConversionError(f"the model folder does not save or load: {e}") from None
