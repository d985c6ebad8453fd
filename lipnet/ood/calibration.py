"""The detector's calibration: fitted on a model's images, kept in its card.

`calibrate` fits the class means, variances, scales and threshold and
returns the card's "ood" entry (JSON data); `parse_calibration` validates an
entry read from an untrusted model folder, key by key, and `read_calibration`
/ `calibration_problem` apply it to a model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .views import PIXEL_STATS, distance, feature_layer, features, pixel_stats

METHOD = "nearest-class-mean-diag-mahalanobis:features+pixels"
VERSION = 1
VARIANCE_FLOOR = 1e-3  # added variance, relative to the view's mean variance
SIGNIFICANT_DIGITS = 6  # floats are stored rounded: a smaller card, same scores
MAX_CLASSES = 1000
MAX_FEATURES = 16_384
MAX_FLOATS = 200_000
MAX_ABS = 1e9
_KEYS = {
    "method",
    "version",
    "layer",
    "features",
    "pixels",
    "threshold",
    "quantile",
    "n_train",
    "n_test",
    "flagged_test_share",
}
_REQUIRED = _KEYS - {"n_train", "n_test", "flagged_test_share"}
_VIEW_KEYS = {"class_means", "variance", "scale"}


def _round(v: float) -> float:
    return float(f"{v:.{SIGNIFICANT_DIGITS}g}")


def _rounded(t: Tensor) -> Tensor:
    return torch.tensor([_round(v) for v in t.flatten().tolist()]).view(t.shape)


def _fit_view(f: Tensor, y: Tensor, n_classes: int) -> tuple[Tensor, Tensor]:
    """Class means and pooled within-class variance (floored), rounded for storage."""
    means = torch.stack([f[y == c].mean(0) for c in range(n_classes)])
    variance = (f - means[y]).pow(2).mean(0)
    variance = variance + VARIANCE_FLOOR * variance.mean() + 1e-12
    return _rounded(means).double(), _rounded(variance).double()


def _quantile(t: Tensor, q: float) -> float:
    return _round(torch.quantile(t, q).item())


def calibrate(
    model: nn.Sequential,
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    quantile: float = 0.99,
    n_train: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The "ood" card entry of a model, from its training and test images.

    Class means and variances come from the training images (a random subset
    of `n_train` of them, drawn with `seed`, when given); each view's scale
    and the threshold are the `quantile` of the test images' distances and
    scores. Labels are class indices 0..C-1 (C = the model's number of
    classes). Returns JSON data: floats rounded to 6 significant digits, the
    scores of `flagged_test_share` computed with the rounded values.

    Args:
        model: a sequential network with weights before its last dense layer.
        x_train: training images (the class means and variances).
        y_train: their class indices.
        x_test: test images (the scales and the threshold).
        quantile: the share of test images below the threshold.
        n_train: how many training images to draw, or None for all.
        seed: the draw's seed.

    Returns:
        The "ood" entry.

    Raises:
        ValueError: a bad quantile, no weights before the last dense layer,
            labels that do not fit, a class without images, or a zero scale.
    """
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    k = feature_layer(model)
    if not any(p.numel() for m in list(model)[:k] for p in m.parameters()):
        raise ValueError(
            "the model has no layer with weights before its last dense layer, so "
            "its features would be the pixels themselves (class means would be "
            "mean images)"
        )
    y_train = torch.as_tensor(y_train).long().flatten()
    if len(y_train) != len(x_train) or len(x_train) == 0 or len(x_test) == 0:
        raise ValueError("need as many labels as training images, and test images")
    classes = getattr(model, "classes", None)
    n_classes = len(classes) if classes else int(y_train.max()) + 1
    if n_train is not None and n_train < len(x_train):
        gen = torch.Generator().manual_seed(seed)
        keep = torch.randperm(len(x_train), generator=gen)[:n_train]
        x_train, y_train = x_train[keep], y_train[keep]
    if y_train.min() < 0 or y_train.max() >= n_classes:
        raise ValueError(f"labels must be class indices in 0..{n_classes - 1}")
    missing = sorted(set(range(n_classes)) - set(y_train.tolist()))
    if missing:
        raise ValueError(f"no training image of class(es) {missing}")
    views: dict[str, dict[str, Any]] = {}
    testdistances = []
    for name, fn in (
        ("features", lambda x: features(model, x)),
        ("pixels", pixel_stats),
    ):
        means, variance = _fit_view(fn(x_train), y_train, n_classes)
        dist = distance(fn(x_test), means, variance)
        scale = _quantile(dist, quantile)
        if not scale > 0:
            raise ValueError(f"the test images all sit on a class mean ({name})")
        testdistances.append(dist / scale)
        views[name] = {
            "class_means": means.tolist(),
            "variance": variance.tolist(),
            "scale": scale,
        }
    scores = torch.stack(testdistances).max(0).values
    threshold = _quantile(scores, quantile)
    return {
        "method": METHOD,
        "version": VERSION,
        "layer": k,
        **views,
        "threshold": threshold,
        "quantile": quantile,
        "n_train": len(x_train),
        "n_test": len(x_test),
        "flagged_test_share": round((scores > threshold).double().mean().item(), 4),
    }


@dataclass(frozen=True)
class Calibration:
    """A validated "ood" entry as tensors (float64)."""

    layer: int
    feature_means: Tensor
    feature_variance: Tensor
    feature_scale: float
    pixel_means: Tensor
    pixel_variance: Tensor
    pixel_scale: float
    threshold: float
    quantile: float


def _number(v: Any) -> bool:
    return (
        isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
        and abs(v) <= MAX_ABS
    )


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 1 << 40


def _view(
    entry: Any, name: str, n_classes: int | None, width: int | None
) -> tuple[Tensor, Tensor, float] | str:
    """(means, variance, scale) of one view, or the reason it is malformed."""
    if not isinstance(entry, dict) or set(entry) != _VIEW_KEYS:
        return f"ood.{name} must be an object with {sorted(_VIEW_KEYS)}"
    means, variance, scale = entry["class_means"], entry["variance"], entry["scale"]
    if not isinstance(means, list) or not 2 <= len(means) <= MAX_CLASSES:
        return f"ood.{name}.class_means must list 2 to {MAX_CLASSES} class means"
    if n_classes is not None and len(means) != n_classes:
        return f"ood.{name}.class_means has {len(means)} rows for {n_classes} classes"
    if not isinstance(variance, list) or not 1 <= len(variance) <= MAX_FEATURES:
        return f"ood.{name}.variance must be a list of 1 to {MAX_FEATURES} numbers"
    d = len(variance)
    if width is not None and d != width:
        return f"ood.{name} has {d} dimensions, the model gives {width}"
    if len(means) * d > MAX_FLOATS:
        return f"ood.{name} holds more than {MAX_FLOATS:,} numbers"
    if not all(isinstance(row, list) and len(row) == d for row in means):
        return f"ood.{name}.class_means rows must each hold {d} numbers"
    if not all(_number(v) for row in means for v in row):
        return f"ood.{name}.class_means must hold finite numbers"
    if not all(_number(v) and v > 0 for v in variance):
        return f"ood.{name}.variance must hold finite positive numbers"
    if not (_number(scale) and scale > 0):
        return f"ood.{name}.scale must be a finite positive number"
    return (
        torch.tensor(means, dtype=torch.float64),
        torch.tensor(variance, dtype=torch.float64),
        float(scale),
    )


def parse_calibration(
    entry: Any,
    layer: int | None = None,
    n_classes: int | None = None,
    feature_size: int | None = None,
) -> Calibration | str:
    """A `Calibration` from a card's "ood" entry, or the reason it is malformed.

    Checks every key, type and size (finite numbers, positive variances and
    scales, at most MAX_FLOATS numbers per view, one row per class); the
    optional arguments are what the model requires of the layer, the number
    of classes and the feature size.

    Args:
        entry: the card's "ood" value (untrusted JSON data).
        layer: the feature layer the model requires, or None.
        n_classes: the model's number of classes, or None.
        feature_size: the model's feature size, or None.

    Returns:
        The calibration, or a one-line reason it is malformed.
    """
    if not isinstance(entry, dict):
        return "ood must be an object"
    unknown, missing = set(entry) - _KEYS, _REQUIRED - set(entry)
    if unknown or missing:
        names = sorted(str(k)[:40] for k in unknown)[:5]
        return f"ood: unknown keys {names}, missing {sorted(missing)}"
    if (
        entry["method"] != METHOD
        or type(entry["version"]) is not int
        or entry["version"] != VERSION
    ):
        return f"ood has an unknown method or version (this code reads {METHOD!r} v1)"
    k = entry["layer"]
    if not (isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= 4096):
        return "ood.layer must be a positive integer"
    if layer is not None and k != layer:
        return f"ood.layer is {k}, but this model's features are after {layer} layers"
    q, t = entry.get("quantile"), entry.get("threshold")
    if not (_number(q) and 0 < q < 1):
        return "ood.quantile must be a number in (0, 1)"
    if not (_number(t) and t > 0):
        return "ood.threshold must be a finite positive number"
    for key in ("n_train", "n_test"):
        if key in entry and not _count(entry[key]):
            return f"ood.{key} must be a count"
    share = entry.get("flagged_test_share", 0)
    if not (_number(share) and 0 <= share <= 1):
        return "ood.flagged_test_share must be a number in [0, 1]"
    feats = _view(entry["features"], "features", n_classes, feature_size)
    if isinstance(feats, str):
        return feats
    pixels = _view(entry["pixels"], "pixels", feats[0].shape[0], len(PIXEL_STATS))
    if isinstance(pixels, str):
        return pixels
    return Calibration(k, *feats, *pixels, threshold=float(t), quantile=float(q))


def _expected(model: nn.Sequential) -> tuple[int, int | None]:
    """(feature layer, number of classes or None when the model does not say)."""
    classes = getattr(model, "classes", None)
    return feature_layer(model), (len(classes) if classes else None)


def _entry(model: nn.Module) -> Any:
    spec = getattr(model, "spec", None)
    card = spec.get("card") if isinstance(spec, Mapping) else None
    return card.get("ood") if isinstance(card, Mapping) else None


def calibration_problem(entry: Any, model: nn.Sequential) -> str | None:
    """Why `entry` is not a valid "ood" calibration for `model`, or None if it is.

    For a loader: runs the feature layers once on a zero image to learn
    the feature size.

    Args:
        entry: the card's "ood" value.
        model: the model it belongs to.

    Returns:
        The reason, or None for a valid entry.
    """
    layer, n_classes = _expected(model)
    shape = getattr(model, "input_shape", None)
    size = None
    if shape:
        size = features(model, torch.zeros(1, *shape)).shape[1]
    result = parse_calibration(entry, layer, n_classes, size)
    return result if isinstance(result, str) else None


def read_calibration(model: nn.Sequential) -> Calibration | None:
    """The model's validated calibration (`model.spec["card"]["ood"]`), or None.

    The feature size is checked when scoring (`check`).

    Args:
        model: a loaded model (its `spec`).

    Returns:
        The calibration, or None when the card has none or a malformed one.
    """
    entry = _entry(model)
    if entry is None:
        return None
    layer, n_classes = _expected(model)
    result = parse_calibration(entry, layer, n_classes)
    return None if isinstance(result, str) else result
