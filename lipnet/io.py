"""Model folders: a JSON spec, safetensors weights and a card; `save` and `load`.

The spec holds the architecture as data (layer types from a fixed registry
and their arguments), so loading builds the model from code we ship and
reads only tensors from the weights file: nothing is ever unpickled. Every
way a folder can be wrong (missing, truncated, tampered, mismatched, foreign
or oversized) raises ModelFileError naming the problem.

This module reads and writes the folders; the spec's checks are
`lipnet.spec_check`, building and verifying the model `lipnet.model_build`
(their names are importable from here too).
"""

from __future__ import annotations

import hashlib
import json
import os
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
from .card import for_upload, render_card
from .errors import ModelFileError
from .layers import eval_mode
from .model_build import MAX_BUILD_SECONDS as MAX_BUILD_SECONDS
from .model_build import MAX_ROUNDING_RADIUS as MAX_ROUNDING_RADIUS
from .model_build import build, check_state, check_time, verify
from .ood import calibration_problem
from .precision import to_float64
from .registry import REGISTRY, layer_spec
from .spec_check import FORMAT, FORMAT_VERSION, NAME_RULE, parse_spec, valid_name
from .spec_check import MAX_CLASS_NAME as MAX_CLASS_NAME
from .spec_check import MAX_LAYERS as MAX_LAYERS
from .spec_check import NAME_PATTERN as NAME_PATTERN

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

SPEC_FILE = "spec.json"
WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "CARD.md"
MAX_SPEC_BYTES = 1_000_000
MAX_WEIGHTS_BYTES = 200_000_000


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
    if not valid_name(name):
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
    check_state(model, state)
    model.load_state_dict(state, strict=True)
    model.eval()
    if spec["task"] == "multilabel":
        model.task = spec["task"]
    if model.head != "none":  # certificates are for float64 arithmetic
        to_float64(model)
    with torch.no_grad():  # builds the eval-mode weight caches once, up front
        model(torch.zeros(1, *spec["input_shape"]))
    model.spec = spec
    model.lipschitz_check = verify(model)
    check_time(started, "load")
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
