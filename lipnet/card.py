"""A model's card: what is known about it, validated before any page shows it.

The card travels inside spec.json, so an uploaded card is hostile data: a
list where a mapping belongs, a string where a metric belongs, nesting deep
enough to exhaust a renderer. `check_card` accepts only the shapes the
pages read; `for_upload` drops what an uploaded card must not steer (its
training config, which would pick the data the server reads).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from .attribute_words import attribute_rows
from .errors import ModelFileError
from .ood import PER_ATTRIBUTE
from .ood import summary as ood_summary

MAX_TEXT = 4_000
MAX_DEPTH = 16


def _text(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= MAX_TEXT and "\x00" not in v


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _share(v: Any) -> bool:
    return _number(v) and 0 <= v <= 1


def _curve(v: Any) -> bool:
    """{ε as text: share}, as the certified-accuracy curve is stored."""
    if not isinstance(v, dict) or len(v) > 100:
        return False
    try:
        return all(math.isfinite(float(k)) and _share(s) for k, s in v.items())
    except ValueError:
        return False


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


_SPLIT = {
    "n": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "balanced": lambda v: isinstance(v, bool),
    "clean_accuracy": _share,
    "certified_accuracy": _optional(_curve),
}
_LIPSCHITZ = {
    "declared": _optional(_number),
    "upper_bound": _number,
    "lower_bound": _number,
    "estimate": _number,
    "median_gradient_norm": _number,
    "rounding_bound": _number,
    "rounding_bound_float32": _number,
    "sound": lambda v: isinstance(v, bool),
    "method": _text,
    "note": _text,
}
_TRAINING = {"train_time_s": _number, "machine": _text, "config": lambda v: True}


def _previous(v: Any) -> bool:
    """Earlier versions of the model: a short list of labelled test curves."""
    return (
        isinstance(v, list)
        and len(v) <= 20
        and all(
            isinstance(e, dict)
            and _text(e.get("label"))
            and _share(e.get("clean_accuracy"))
            and _curve(e.get("certified_accuracy"))
            and _optional(_text)(e.get("note"))
            for e in v
        )
    )


def _quality(v: Any) -> bool:
    """Counterfactual-quality measurements: {name: number, text or None}, flat."""
    return (
        isinstance(v, dict)
        and len(v) <= 50
        and all(_text(k) and (v[k] is None or _number(v[k]) or _text(v[k])) for k in v)
    )


# section -> check of the whole value, or a mapping of checks for its keys.
_SECTIONS: dict[str, Any] = {
    "summary": _text,
    "license": _text,
    "reproduce": _text,
    "exported_from": _optional(_text),
    "source_lipschitz_constant": _optional(_number),
    "source_head": _optional(_text),
    "lipschitz": _LIPSCHITZ,
    "training": _TRAINING,
    "metrics": {"test": _SPLIT, "test_subset": _SPLIT},
    "previous": _previous,
    "counterfactual_quality": _quality,
}


def check_card(card: Any) -> dict[str, Any]:
    """The card if every section the pages read has the shape they expect.

    Known sections are checked key by key (texts, shares in [0, 1], finite
    numbers, the certified-accuracy curve); other entries may hold any JSON
    up to a nesting depth of 16. Raises ModelFileError naming the entry.
    """
    if card is None:
        return {}
    if not isinstance(card, dict):
        raise ModelFileError("'card' must be an object")
    _check_depth(card, "card", 0)
    for key, value in card.items():
        rule = _SECTIONS.get(key)
        if rule is not None:
            _check_entry(f"card.{key}", value, rule)
    return card


def _check_entry(where: str, value: Any, rule: Any) -> None:
    if callable(rule):
        if not rule(value):
            raise ModelFileError(f"{where} has an invalid value")
        return
    if not isinstance(value, dict):
        raise ModelFileError(f"{where} must be an object")
    for key, inner in value.items():
        if key in rule:
            _check_entry(f"{where}.{key}", inner, rule[key])


def _check_depth(value: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ModelFileError(f"{where} is nested deeper than {MAX_DEPTH} levels")
    children = value.values() if isinstance(value, dict) else value
    if isinstance(value, dict | list):
        for child in children:
            _check_depth(child, where, depth + 1)


def for_upload(card: Mapping[str, Any]) -> dict[str, Any]:
    """An uploaded model's card without its training config.

    The config names a dataset, an image size and a seed, which would make
    the server decode data of the uploader's choosing (a 1,024-px CelebA
    gallery is 1.4 GB); an uploaded model gets the built-in and uploaded
    inputs instead.
    """
    card = dict(card)
    if isinstance(card.get("training"), dict):
        card["training"] = {k: v for k, v in card["training"].items() if k != "config"}
    return card


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
    rounding = (card.get("lipschitz") or {}).get("rounding_bound")
    if rounding is not None:
        lines.append(
            f"| rounding bound (float64, any score in the pixel box) | {rounding:g}, "
            "taken off every certified radius |"
        )
    layers = ", ".join(e["type"] for e in spec.get("layers", []))
    lines += ["", "## Architecture", "", layers, ""]
    for title, key in (
        ("Data", "data"),
        ("Training", "training"),
        ("Metrics", "metrics"),
        ("Lipschitz bounds", "lipschitz"),
        ("Attacks", "attacks"),
        ("Counterfactual quality", "counterfactual_quality"),
        ("Attributes: validation and test", "attribute_metrics"),
        ("Attributes: counterfactual quality", "attribute_quality"),
        ("Earlier versions", "previous"),
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
    lines += _attribute_lines(card)
    if isinstance(card.get("ood"), dict):
        lines += [
            "## Out-of-distribution hint",
            "",
            "An input scored above the threshold is flagged in the explorer as "
            "unlike the training data (`lipnet.ood`).",
            "",
            "```json",
            json.dumps(ood_summary(card["ood"]), indent=2),
            "```",
            "",
        ]
    lines += _attribute_ood_lines(card.get(PER_ATTRIBUTE))
    if card.get("license"):
        lines += ["## License and use", "", card["license"], ""]
    if card.get("reproduce"):
        lines += ["## Reproduce", "", "```", card["reproduce"], "```", ""]
    return "\n".join(lines)


def _attribute_lines(card: dict) -> list[str]:
    """A multi-attribute model's table: each attribute's own test numbers."""
    rows = attribute_rows(card)
    if not rows:
        return []
    columns = list(rows[0])
    lines = [
        "## Per attribute (test split)",
        "",
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    for row in rows:
        cells = ("—" if v is None else str(v) for v in row.values())
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _attribute_ood_lines(per_attribute: Any) -> list[str]:
    """A multi-attribute model's hint: each attribute's threshold and the share
    of its test faces flagged."""
    if not isinstance(per_attribute, dict) or not per_attribute:
        return []
    lines = [
        "## Out-of-distribution hint, per attribute",
        "",
        "The explorer flags an input scored above the chosen attribute's "
        "threshold as unlike the training data (`lipnet.ood`).",
        "",
        "| attribute | threshold | test faces flagged |",
        "| --- | --- | --- |",
    ]
    for name, entry in per_attribute.items():
        if isinstance(entry, dict):
            summary = ood_summary(entry)
            lines.append(
                f"| {name} | {summary.get('threshold', '')} "
                f"| {summary.get('flagged_test_share', '')} |"
            )
    return [*lines, ""]
