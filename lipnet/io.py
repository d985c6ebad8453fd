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
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from . import layers as L
from .budget import MAX_OUTPUTS, check_budget
from .card import check_card, for_upload, render_card
from .certify import (
    UNSOUND_TOLERANCE,
    box_rounding,
    certificate_context,
    check_measured,
    within_bound,
)
from .errors import ModelFileError
from .layers import eval_mode
from .ood import calibration_problem
from .precision import to_float64
from .registry import REGISTRY, check_layer, layer_spec

__all__ = [
    "REGISTRY",
    "ModelFileError",
    "build",
    "from_bytes",
    "load",
    "load_upload",
    "parse_spec",
    "render_card",
    "save",
    "update_card",
    "zip_folder",
]

FORMAT = "lipnet.model"
FORMAT_VERSION = 1
SPEC_FILE = "spec.json"
WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "CARD.md"
MAX_SPEC_BYTES = 1_000_000
MAX_WEIGHTS_BYTES = 200_000_000
MAX_LAYERS = 256
MAX_CLASS_NAME = 64
MAX_BUILD_SECONDS = 60.0
"""CPU seconds of the loading thread to build, fill and measure a model.

A backstop behind the budget's work limits (shipped models take under 2 s).
CPU time, not wall time, so a busy server never refuses a sound model.
"""
MAX_ROUNDING_RADIUS = 1e-4
"""The most of a certified radius that rounding may take anywhere in the box."""
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""A model's name: never a path (no separators), so it can name a download."""
NAME_RULE = "1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-', not only dots"


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
        "task": getattr(model, "task", None)
        or ("binary" if _n_outputs(model) == 1 else "multiclass"),
        "input_shape": list(model.input_shape),
        "classes": classes,
        "head": model.head,
        "lipschitz_constant": model.lipschitz_constant,
        "lipschitz_source": "derived"
        if model.measured_lipschitz is None
        else "measured",
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
    name = name or folder.name
    if not _valid_name(name):
        raise ValueError(f"invalid model name {name!r}: {NAME_RULE}")
    folder.mkdir(parents=True, exist_ok=True)
    spec = model_spec(model)
    spec["name"] = name
    state = {
        k: v.detach().cpu().float().contiguous() for k, v in model.state_dict().items()
    }
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


def update_card(path: str | os.PathLike, **sections: Any) -> L.LipSequential:
    """Replace sections of a model folder's card in place; the weights stay as they are.

    Rewrites spec.json (only `card[section]` changes) and CARD.md, each
    through a temporary file and a rename, then loads the folder again to
    prove it still loads; returns that model.
    """
    folder = Path(path)
    spec = json.loads((folder / SPEC_FILE).read_text())
    spec["card"].update(sections)
    for name, text in (
        (SPEC_FILE, json.dumps(spec, indent=2, sort_keys=False) + "\n"),
        (CARD_FILE, render_card(spec)),
    ):
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, folder / name)
    return load(folder)


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
    """Build a model from the bytes of a spec.json and a weights.safetensors.

    A certified model is also measured: its rigorous Lipschitz upper bound
    (`lipschitz_upper_bound`) must not exceed the declared constant by more
    than 1e-3 (relative), so no certificate is shown that was not checked.
    The measurement is kept as `model.lipschitz_check`.
    """
    started = time.thread_time()
    if len(spec_bytes) > MAX_SPEC_BYTES:
        raise ModelFileError("spec.json is larger than the 1 MB limit")
    if len(weights_bytes) > MAX_WEIGHTS_BYTES:
        raise ModelFileError("weights.safetensors is larger than the 200 MB limit")
    spec = parse_spec(spec_bytes)
    digest = hashlib.sha256(weights_bytes).hexdigest()
    if spec["weights"]["sha256"] != digest:
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
    if spec["task"] == "multilabel":
        model.task = spec["task"]
    if model.head != "none":  # certificates are for float64 arithmetic
        to_float64(model)
    with torch.no_grad():  # builds the eval-mode weight caches once, up front
        model(torch.zeros(1, *spec["input_shape"]))
    model.spec = spec
    model.lipschitz_check = _verify(model)
    _check_time(started, "load")
    return model


def load_upload(spec_bytes: bytes, weights_bytes: bytes) -> L.LipSequential:
    """A user's model from its two files: `from_bytes`, with a card it cannot steer.

    The card's training config is dropped (`lipnet.card.for_upload`): it
    would choose which data the server decodes; so is an out-of-distribution
    calibration that `lipnet.ood` finds malformed.
    """
    model = from_bytes(spec_bytes, weights_bytes)
    card = for_upload(model.spec["card"])
    if "ood" in card and calibration_problem(card["ood"], model) is not None:
        del card["ood"]  # a malformed calibration only loses the hint
    model.spec["card"] = card
    return model


def _verify(model: L.LipSequential) -> dict[str, Any]:
    """Measure a certified model's Lipschitz constant and rounding; refuse a liar.

    A model of plain layers that declares a measured constant is certified
    here (`lipnet.certify.check_measured`), or refused. Then the pixel box is
    probed (`lipnet.certify.box_rounding`): a model with a non-finite output
    there, or whose rounding error could cost more than MAX_ROUNDING_RADIUS of
    a radius, is refused.
    """
    if model.head == "none":
        return {"declared": None, "sound": False}
    try:
        if model.measured_lipschitz is not None:
            check_measured(model, UNSOUND_TOLERANCE)
        declared = model.lipschitz_constant
        context = certificate_context(model)
        rounding = box_rounding(model)
    except (RuntimeError, ValueError, TypeError) as e:
        raise ModelFileError(
            f"the Lipschitz bound cannot be measured or is too large: {e}"
        ) from None
    upper = context.upper
    if not within_bound(upper, declared):
        raise ModelFileError(
            f"the model declares a Lipschitz constant of {declared:g}, but its "
            f"layers measure up to {upper:.6g}: its certificates would be wrong"
        )
    _check_rounding(rounding, context.divisor)
    return {
        "declared": declared,
        "upper_bound": upper,
        "lipschitz": context.lipschitz,
        "rounding_bound": rounding["score_error"],
        "sound": True,
    }


def _check_rounding(rounding: Mapping[str, float], divisor: float) -> None:
    """Refuse a model whose outputs overflow or whose rounding drowns its radii."""
    if not rounding["finite"]:
        raise ModelFileError(
            "the model's outputs are not finite on some inputs in the pixel box "
            "(an overflow or NaN): it has no certificate to give"
        )
    lost = rounding["score_error"] / divisor
    if not lost <= MAX_ROUNDING_RADIUS:
        raise ModelFileError(
            "floating-point rounding could change this model's scores by up to "
            f"{rounding['score_error']:.3g} inside the pixel box, i.e. "
            f"{lost:.3g} of every certified radius (over the {MAX_ROUNDING_RADIUS:g}"
            " limit): its certificates would be dominated by rounding error "
            "(cancelling large biases or huge gains do this)"
        )


def _check_time(started: float, what: str) -> None:
    elapsed = time.thread_time() - started
    if elapsed > MAX_BUILD_SECONDS:
        raise ModelFileError(
            f"the model took {elapsed:.0f} CPU seconds to {what}, over the "
            f"MAX_BUILD_SECONDS limit of {MAX_BUILD_SECONDS:g}"
        )


def _valid_name(name: Any) -> bool:
    return (
        isinstance(name, str)
        and NAME_PATTERN.fullmatch(name) is not None
        and set(name) != {"."}
    )


def _valid_class_name(c: Any) -> bool:
    return isinstance(c, str) and 1 <= len(c) <= MAX_CLASS_NAME and c.isprintable()


def parse_spec(spec_bytes: bytes) -> dict[str, Any]:
    """Decode and validate a spec.json (structure, types, sizes), without building.

    Every field a page or the builder reads is checked here, so a bad file
    fails with a ModelFileError naming the field instead of a crash later.
    """
    try:
        spec = json.loads(spec_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        # ValueError covers JSONDecodeError and integers of over 4,300 digits.
        reason = "it is nested too deeply" if isinstance(e, RecursionError) else e
        raise ModelFileError(f"spec.json is not valid JSON: {reason}") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ModelFileError(
            f"spec.json is not a lipnet model spec (expected format {FORMAT!r})"
        )
    if spec.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"unsupported spec format_version {spec.get('format_version')!r}"
        )
    if not _valid_name(spec.get("name")):
        raise ModelFileError(f"spec.json: 'name' must be {NAME_RULE}")
    shape = spec.get("input_shape")
    if not (
        isinstance(shape, list)
        and len(shape) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) for v in shape)
        and shape[0] in (1, 3)
        and all(2 <= v <= 256 for v in shape[1:])
    ):
        raise ModelFileError(
            f"invalid input_shape {shape!r}: expected [1 or 3, H, W], H and W "
            "from 2 to 256"
        )
    layers = spec.get("layers")
    if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_LAYERS:
        raise ModelFileError("spec.json needs a list of 1 to 256 layers")
    for i, entry in enumerate(layers):
        check_layer(i, entry)
    weights = spec.get("weights")
    if not isinstance(weights, dict) or not isinstance(weights.get("sha256"), str):
        raise ModelFileError("spec.json has no 'weights' entry with a sha256")
    _check_classes(spec)
    lip = spec.get("lipschitz_constant")
    if lip is not None and not (
        isinstance(lip, int | float)
        and not isinstance(lip, bool)
        and 1e-6 <= lip <= 1e6
    ):
        raise ModelFileError(
            "'lipschitz_constant' must be null or a number from 1e-6 to 1e6, "
            f"got {lip!r}"
        )
    if spec.get("lipschitz_source", "derived") not in ("derived", "measured"):
        raise ModelFileError("'lipschitz_source' must be 'derived' or 'measured'")
    certified = spec["head"] != "none"
    if spec.get("certified", certified) != certified:
        raise ModelFileError("'certified' does not match the head")
    if spec.get("normalization") is not None:
        raise ModelFileError("'normalization' must be null: normalize inside the model")
    spec["card"] = check_card(spec.get("card"))
    return spec


def _check_classes(spec: dict[str, Any]) -> None:
    """Head, task and class names: what a certificate and every page read."""
    if spec.get("head") not in (*L.HEAD_FACTORS, "none"):
        raise ModelFileError(f"unknown head type {spec.get('head')!r}")
    classes = spec.get("classes")
    if not (
        isinstance(classes, list)
        and 2 <= len(classes) <= MAX_OUTPUTS
        and all(_valid_class_name(c) for c in classes)
        and len(set(classes)) == len(classes)
    ):
        raise ModelFileError(
            "'classes' must list 2 to 1,000 distinct names of 1 to 64 printable "
            "characters"
        )
    if spec["head"] == "binary" and len(classes) != 2:
        raise ModelFileError("head 'binary' needs exactly 2 classes")
    if spec.get("task") == "multilabel":  # one output per attribute (classes)
        if spec["head"] not in ("disjoint", "none"):
            raise ModelFileError("a multilabel model's head must be 'disjoint'")
        return
    binary = spec["head"] == "binary" or (spec["head"] == "none" and len(classes) == 2)
    if spec.get("task") != ("binary" if binary else "multiclass"):
        raise ModelFileError(
            f"'task' must be {'binary' if binary else 'multiclass'} for head "
            f"{spec['head']!r} with {len(classes)} classes"
        )
    if binary and spec.get("positive_class", classes[1]) != classes[1]:
        raise ModelFileError("'positive_class' must be the second class")


def _check_outputs(spec: Mapping[str, Any], outputs: int) -> None:
    """The last layer's outputs must match the head and the class list."""
    n_classes = len(spec["classes"])
    expected = 1 if spec["task"] == "binary" else n_classes  # multilabel: A outputs
    if outputs != expected:
        raise ModelFileError(
            f"the model outputs {outputs} score(s), but its {spec['task']} task "
            f"with {n_classes} classes needs {expected}"
        )


def build(spec: Mapping[str, Any]) -> L.LipSequential:
    """Instantiate the architecture a validated spec describes (random weights).

    The spec's costs are checked first (`lipnet.budget.check_budget`: shapes,
    activations, parameters, FFT sizes, work), so nothing large is allocated
    for a spec that asks too much. The Lipschitz constant is derived from the
    layers (`LipSequential.lipschitz_constant`) and must equal the declared one.
    """
    started = time.thread_time()
    budget = check_budget(spec)
    _check_outputs(spec, budget.outputs)
    modules = []
    for i, entry in enumerate(spec["layers"]):
        try:
            modules.append(REGISTRY[entry["type"]][0](**entry.get("args", {})))
        except (TypeError, ValueError, RuntimeError, MemoryError) as e:
            raise ModelFileError(
                f"layer {i} ({entry['type']}) cannot be built: {e}"
            ) from None
    measured = spec.get("lipschitz_source") == "measured"
    declared = spec.get("lipschitz_constant")
    try:
        model = L.LipSequential(
            *modules,
            input_shape=spec["input_shape"],
            classes=spec["classes"],
            head=spec["head"],
            measured_lipschitz=declared if measured else None,
        )
    except ValueError as e:
        raise ModelFileError(f"inconsistent spec: {e}") from None
    if measured:  # certified by measurement once the weights are in (`_verify`)
        _check_time(started, "build")
        return model
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
    except (RuntimeError, ValueError) as e:
        raise ModelFileError(
            f"the layers do not fit together for input {spec['input_shape']}: {e}"
        ) from None
    _check_time(started, "build")
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
