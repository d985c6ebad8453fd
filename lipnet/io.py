"""Model folders: a JSON spec, safetensors weights and a card; `save` and `load`.

The spec holds the architecture as data (layer types from a fixed registry
and their arguments), so loading builds the model from code we ship and
reads only tensors from the weights file: nothing is ever unpickled. Every
way a folder can be wrong (missing, truncated, tampered, mismatched, foreign
or oversized) raises ModelFileError naming the problem.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn
from torch.nn.utils import parametrize

from . import layers as L
from .layers import eval_mode

FORMAT = "lipnet.model"
FORMAT_VERSION = 1
SPEC_FILE = "spec.json"
WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "CARD.md"
MAX_SPEC_BYTES = 1_000_000
MAX_WEIGHTS_BYTES = 200_000_000
MAX_PARAMETERS = 25_000_000
MAX_LAYERS = 256


class ModelFileError(ValueError):
    """A model folder or file that cannot be loaded, with the reason."""


Pair = "pair"
# type name -> (class, {argument: kind}); kinds: int, float, bool, str, pair.
REGISTRY: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {
    "SpectralLinear": (
        L.SpectralLinear,
        {"in_features": int, "out_features": int, "bias": bool, "k": float},
    ),
    "AOLLinear": (
        L.AOLLinear,
        {"in_features": int, "out_features": int, "bias": bool, "k": float},
    ),
    "FrobeniusLinear": (
        L.FrobeniusLinear,
        {
            "in_features": int,
            "out_features": int,
            "bias": bool,
            "k": float,
            "disjoint_neurons": bool,
        },
    ),
    "SpectralConv2d": (
        L.SpectralConv2d,
        {
            "in_channels": int,
            "out_channels": int,
            "kernel_size": Pair,
            "input_size": Pair,
            "stride": int,
            "padding": Pair,
            "padding_mode": str,
            "bias": bool,
            "k": float,
        },
    ),
    "AOLConv2d": (
        L.AOLConv2d,
        {
            "in_channels": int,
            "out_channels": int,
            "kernel_size": Pair,
            "stride": int,
            "padding": Pair,
            "padding_mode": str,
            "bias": bool,
            "k": float,
        },
    ),
    "GroupSort": (L.GroupSort, {"group_size": int}),
    "GroupSort2": (L.GroupSort2, {}),
    "FullSort": (L.FullSort, {}),
    "MaxMin": (L.MaxMin, {}),
    "ScaledL2NormPool2d": (L.ScaledL2NormPool2d, {"kernel_size": Pair}),
    "ScaledAvgPool2d": (L.ScaledAvgPool2d, {"kernel_size": Pair}),
    "InvertibleDownSampling": (L.InvertibleDownSampling, {"kernel_size": int}),
    "LipFlatten": (L.Flatten, {}),
    # Plain torch layers, for unconstrained contrast models.
    "Linear": (nn.Linear, {"in_features": int, "out_features": int, "bias": bool}),
    "Conv2d": (
        nn.Conv2d,
        {
            "in_channels": int,
            "out_channels": int,
            "kernel_size": Pair,
            "stride": int,
            "padding": Pair,
            "padding_mode": str,
            "bias": bool,
        },
    ),
    "ReLU": (nn.ReLU, {}),
    "Flatten": (nn.Flatten, {}),
    "MaxPool2d": (nn.MaxPool2d, {"kernel_size": Pair}),
    "AvgPool2d": (nn.AvgPool2d, {"kernel_size": Pair}),
    "Dropout": (nn.Dropout, {"p": float}),
    "PixelUnshuffle": (nn.PixelUnshuffle, {"downscale_factor": int}),
}
_NAMES = {cls: name for name, (cls, _) in REGISTRY.items()}


def _plain_config(m: nn.Module) -> dict[str, Any]:
    """Constructor arguments of a registered plain torch layer."""
    if isinstance(m, nn.Linear):
        return {
            "in_features": m.in_features,
            "out_features": m.out_features,
            "bias": m.bias is not None,
        }
    if isinstance(m, nn.Conv2d):
        return {
            "in_channels": m.in_channels,
            "out_channels": m.out_channels,
            "kernel_size": list(m.kernel_size),
            "stride": m.stride[0],
            "padding": list(m.padding),
            "padding_mode": m.padding_mode,
            "bias": m.bias is not None,
        }
    if isinstance(m, nn.MaxPool2d | nn.AvgPool2d):
        k = m.kernel_size
        return {"kernel_size": [k, k] if isinstance(k, int) else list(k)}
    if isinstance(m, nn.Dropout):
        return {"p": m.p}
    if isinstance(m, nn.PixelUnshuffle):
        return {"downscale_factor": m.downscale_factor}
    return {}


def layer_spec(m: nn.Module) -> dict[str, Any]:
    """{"type": name, "args": {...}} for one layer of a registered type."""
    cls = parametrize.type_before_parametrizations(m)
    if cls not in _NAMES:
        raise ModelFileError(f"layer type {cls.__name__} cannot be saved")
    args = m.config() if isinstance(m, L.LipschitzLayer) else _plain_config(m)
    return {"type": _NAMES[cls], "args": args}


def model_spec(model: L.LipSequential) -> dict[str, Any]:
    """The architecture part of a spec, as JSON data."""
    if not isinstance(model, L.LipSequential):
        raise TypeError("only LipSequential models can be saved")
    if model.input_shape is None:
        raise ValueError("the model needs an input_shape to be saved")
    classes = model.classes or []
    spec = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": "binary" if _n_outputs(model) == 1 else "multiclass",
        "input_shape": list(model.input_shape),
        "classes": classes,
        "head": model.head,
        "lipschitz_constant": model.lipschitz_constant,
        "certified": model.head != "none",
        "normalization": None,
        "layers": [layer_spec(m) for m in model],
    }
    if spec["task"] == "binary" and len(classes) == 2:
        spec["positive_class"] = classes[1]
    return spec


def _n_outputs(model: nn.Module) -> int:
    x = torch.zeros(1, *model.input_shape)
    p = next(model.parameters(), None)
    if p is not None:
        x = x.to(p.device)
    with eval_mode(model), torch.no_grad():
        out = model(x)
    return int(out.reshape(1, -1).shape[1])


def save(
    model: L.LipSequential,
    path: str | os.PathLike,
    card: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> Path:
    """Write a model folder: spec.json, weights.safetensors and CARD.md.

    `card` (training config, data provenance and license, metrics, …) is
    stored in the spec under "card" and rendered to CARD.md.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    spec = model_spec(model)
    spec["name"] = name or folder.name
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    blob = save_safetensors(state, metadata={"format": FORMAT})
    spec["weights"] = {
        "file": WEIGHTS_FILE,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
    }
    spec["card"] = dict(card or {})
    (folder / WEIGHTS_FILE).write_bytes(blob)
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=2, sort_keys=False) + "\n")
    (folder / CARD_FILE).write_text(render_card(spec))
    return folder


def load(path: str | os.PathLike) -> L.LipSequential:
    """Load a model folder (or its spec.json): the model in eval mode, with `.spec`.

    Builds the architecture from the spec's registered layer types, checks
    the weights' checksum, keys, shapes, dtypes and values, and never
    unpickles anything.
    """
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        raise ModelFileError(f"no model folder at {folder}")
    spec_path, weights_path = folder / SPEC_FILE, folder / WEIGHTS_FILE
    for p, limit in ((spec_path, MAX_SPEC_BYTES), (weights_path, MAX_WEIGHTS_BYTES)):
        if not p.is_file():
            raise ModelFileError(f"{p.name} is missing from {folder}")
        if p.stat().st_size > limit:
            raise ModelFileError(f"{p.name} is larger than the {limit:,}-byte limit")
    return from_bytes(spec_path.read_bytes(), weights_path.read_bytes())


def from_bytes(spec_bytes: bytes, weights_bytes: bytes) -> L.LipSequential:
    """Build a model from the bytes of a spec.json and a weights.safetensors."""
    if len(spec_bytes) > MAX_SPEC_BYTES:
        raise ModelFileError("spec.json is larger than the 1 MB limit")
    if len(weights_bytes) > MAX_WEIGHTS_BYTES:
        raise ModelFileError("weights.safetensors is larger than the 200 MB limit")
    spec = parse_spec(spec_bytes)
    digest = hashlib.sha256(weights_bytes).hexdigest()
    expected = spec["weights"].get("sha256")
    if expected != digest:
        raise ModelFileError(
            "weights.safetensors does not match the checksum in spec.json: the "
            "file is truncated, corrupted or was modified"
        )
    model = build(spec)
    try:
        state = load_safetensors(weights_bytes)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise ModelFileError(
            f"weights.safetensors is not a valid safetensors file: {e}"
        ) from None
    _check_state(model, state)
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():  # builds the eval-mode weight caches once, up front
        model(torch.zeros(1, *spec["input_shape"]))
    model.spec = spec
    return model


def parse_spec(spec_bytes: bytes) -> dict[str, Any]:
    """Decode and validate a spec.json (structure, types, sizes), without building."""
    try:
        spec = json.loads(spec_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"spec.json is not valid JSON: {e}") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ModelFileError(
            f"spec.json is not a lipnet model spec (expected format {FORMAT!r})"
        )
    if spec.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"unsupported spec format_version {spec.get('format_version')!r}"
        )
    shape = spec.get("input_shape")
    if not (
        isinstance(shape, list)
        and len(shape) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) for v in shape)
        and shape[0] in (1, 3)
        and all(2 <= v <= 1024 for v in shape[1:])
    ):
        raise ModelFileError(f"invalid input_shape {shape!r}: expected [1 or 3, H, W]")
    layers = spec.get("layers")
    if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_LAYERS:
        raise ModelFileError("spec.json needs a list of 1 to 256 layers")
    for i, entry in enumerate(layers):
        _check_layer(i, entry)
    if not isinstance(spec.get("weights"), dict):
        raise ModelFileError("spec.json has no 'weights' entry")
    classes = spec.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ModelFileError("'classes' must be a list of names")
    if spec.get("head") not in (*L.HEAD_FACTORS, "none"):
        raise ModelFileError(f"unknown head type {spec.get('head')!r}")
    return spec


def _check_layer(i: int, entry: Any) -> None:
    """Validate one layer entry against the registry."""
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise ModelFileError(f"layer {i} must be an object with a 'type'")
    kind = entry["type"]
    if kind not in REGISTRY:
        raise ModelFileError(f"layer {i} has unknown type {kind!r}")
    args = entry.get("args", {})
    if not isinstance(args, dict):
        raise ModelFileError(f"layer {i} ({kind}): 'args' must be an object")
    allowed = REGISTRY[kind][1]
    for name, value in args.items():
        if name not in allowed:
            raise ModelFileError(f"layer {i} ({kind}): unknown argument {name!r}")
        if not _valid_value(allowed[name], value):
            raise ModelFileError(f"layer {i} ({kind}): invalid {name}={value!r}")


def _valid_value(kind: Any, value: Any) -> bool:
    checks: dict[Any, Callable[[Any], bool]] = {
        int: lambda v: (
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 1 << 20
        ),
        float: lambda v: (
            isinstance(v, int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
            and 0 <= v <= 1e6
        ),
        bool: lambda v: isinstance(v, bool),
        str: lambda v: isinstance(v, str) and len(v) <= 32,
        Pair: lambda v: (
            isinstance(v, list) and len(v) == 2 and all(checks[int](x) for x in v)
        ),
    }
    return checks[kind](value)


def _parameter_estimate(spec: Mapping[str, Any]) -> int:
    """Parameter count implied by the layer arguments, before allocating anything."""
    total = 0
    for entry in spec["layers"]:
        a = entry.get("args", {})
        if "in_features" in a:
            total += a["in_features"] * a.get("out_features", 1)
        if "in_channels" in a:
            k = a.get("kernel_size", [1, 1])
            total += a["in_channels"] * a.get("out_channels", 1) * k[0] * k[1]
    return total


def build(spec: Mapping[str, Any]) -> L.LipSequential:
    """Instantiate the architecture a validated spec describes (random weights)."""
    n = _parameter_estimate(spec)
    if n > MAX_PARAMETERS:
        raise ModelFileError(
            f"the spec describes {n:,} parameters, over the {MAX_PARAMETERS:,} limit"
        )
    modules = []
    for i, entry in enumerate(spec["layers"]):
        cls = REGISTRY[entry["type"]][0]
        try:
            modules.append(cls(**entry.get("args", {})))
        except (TypeError, ValueError) as e:
            raise ModelFileError(f"layer {i} ({entry['type']}): {e}") from None
    try:
        model = L.LipSequential(
            *modules,
            input_shape=spec["input_shape"],
            classes=spec.get("classes") or None,
            head=spec.get("head"),
        )
    except ValueError as e:
        raise ModelFileError(f"inconsistent spec: {e}") from None
    declared = spec.get("lipschitz_constant")
    actual = model.lipschitz_constant
    if (declared is None) != (actual is None) or (
        actual is not None and not math.isclose(declared, actual, rel_tol=1e-9)
    ):
        raise ModelFileError(
            f"spec.json declares a Lipschitz constant of {declared}, but its layers "
            f"give {actual}"
        )
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *spec["input_shape"]))
    except RuntimeError as e:
        raise ModelFileError(
            f"the layers do not fit together for input {spec['input_shape']}: {e}"
        ) from None
    return model


def _check_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Weights must match the architecture exactly and hold finite float32 values."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ModelFileError(
            "weights.safetensors does not match the architecture in spec.json "
            f"(missing {missing[:5]}, unexpected {extra[:5]})"
        )
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise ModelFileError(
                f"weight {key} has shape {tuple(tensor.shape)}, the architecture "
                f"expects {tuple(expected[key].shape)}"
            )
        if tensor.dtype != torch.float32:
            raise ModelFileError(f"weight {key} has dtype {tensor.dtype}, not float32")
        if not torch.isfinite(tensor).all():
            raise ModelFileError(f"weight {key} contains NaN or infinite values")


def render_card(spec: Mapping[str, Any]) -> str:
    """A Markdown model card from the spec and its "card" entry."""
    card = spec.get("card", {})
    lines = [f"# {spec.get('name', 'model')}", ""]
    if card.get("summary"):
        lines += [card["summary"], ""]
    lip = spec.get("lipschitz_constant")
    shape = " × ".join(map(str, spec.get("input_shape", [])))
    certified = (
        "yes" if spec.get("certified") else "NO: this model carries no certificate"
    )
    lines += [
        "| property | value |",
        "| --- | --- |",
        f"| task | {spec.get('task')} ({', '.join(spec.get('classes', []))}) |",
        f"| input | {shape}, pixels in [0, 1] |",
        f"| Lipschitz constant (declared) | {lip if lip is not None else 'none'} |",
        f"| head | {spec.get('head')} |",
        f"| certified | {certified} |",
    ]
    layers = ", ".join(e["type"] for e in spec.get("layers", []))
    lines += ["", "## Architecture", "", layers, ""]
    for title, key in (
        ("Data", "data"),
        ("Training", "training"),
        ("Metrics", "metrics"),
        ("Lipschitz bounds", "lipschitz"),
        ("Attacks", "attacks"),
    ):
        if card.get(key):
            lines += [
                f"## {title}",
                "",
                "```json",
                json.dumps(card[key], indent=2),
                "```",
                "",
            ]
    if card.get("license"):
        lines += ["## License and use", "", card["license"], ""]
    if card.get("reproduce"):
        lines += ["## Reproduce", "", "```", card["reproduce"], "```", ""]
    return "\n".join(lines)


def zip_folder(folder: str | os.PathLike) -> bytes:
    """The files of a model folder as one zip archive (for downloads)."""
    import io
    import zipfile

    folder = Path(folder)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(folder.iterdir()):
            if f.is_file():
                z.write(f, f"{folder.name}/{f.name}")
    return buf.getvalue()
