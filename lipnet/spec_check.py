"""A model folder's spec.json, checked field by field before anything is built.

Every field a page or the builder reads is validated here (structure, types,
sizes, names, classes), so a bad or hostile file fails with a ModelFileError
naming the field instead of a crash later.
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import layers as L
from .budget import MAX_OUTPUTS
from .card import check_card
from .errors import ModelFileError
from .registry import check_layer

FORMAT = "lipnet.model"
FORMAT_VERSION = 1
MAX_LAYERS = 256
MAX_CLASS_NAME = 64
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""A model's name: never a path (no separators), so it can name a download."""
NAME_RULE = "1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-', not only dots"


def valid_name(name: Any) -> bool:
    """Whether `name` may name a model (see NAME_RULE).

    Args:
        name: any value from a spec or a caller.

    Returns:
        True for a string of NAME_PATTERN that is not only dots.

    >>> valid_name("mnist08-hkr"), valid_name("../x"), valid_name("..")
    (True, False, False)
    """
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

    Args:
        spec_bytes: the bytes of a spec.json (untrusted).

    Returns:
        The spec as JSON data, its card checked (`lipnet.card.check_card`).

    Raises:
        ModelFileError: the first field found wrong.
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
    if not valid_name(spec.get("name")):
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
