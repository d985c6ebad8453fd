"""Out-of-distribution hint: is an input unlike the data a model was trained on?

A certificate holds for any input, including a grey square or noise, where
the class it certifies means nothing. This module scores how unusual an
input is, so the explorer can say so beside the certificate.

The score looks at an input in two views, and in each one measures the
distance to the nearest class mean (a diagonal Mahalanobis distance: each
coordinate divided by its within-class standard deviation on the training
images):

* ``features``: the model's penultimate representation, i.e. the output of
  every layer before its last dense layer (what the classifier's last,
  linear step sees). It catches inputs the model itself represents unlike
  its training data, such as faces shown to a digit model.
* ``pixels``: four numbers about the image itself (`pixel_stats`): mean
  brightness, log contrast, log edge strength and the share of mid-tone
  pixels. The features alone miss flat and noisy images: a network trained
  to tell 0 from 8 maps a uniform grey image close to its class means (a
  blurred average digit is grey), but no digit or face has zero contrast,
  nor the edges of pixel noise.

Each view's distance is divided by its own ``quantile`` (e.g. 99 %) on the
test set, so 1 means "as far as the 1 % most unusual test images" in that
view, and the score is the larger of the two. The threshold is the same
quantile of the scores of the test images: about 1 − quantile of real test
images are flagged. The calibration (`calibrate`) is a small JSON entry
kept in the model card under "ood"; `check`, `ood_score` and `is_unusual`
read it and return None when a model has none or a malformed one (uploaded
model folders are untrusted). No image or mean image is stored, only
per-class means of features and of the four pixel statistics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .layers import eval_mode

METHOD = "nearest-class-mean-diag-mahalanobis:features+pixels"
VERSION = 1
MESSAGE = (
    "This input is unlike the training data; the certificate still holds, "
    "the class may be meaningless."
)
PIXEL_STATS = ("mean", "log_std", "log_edge", "midtone_share")
EPS = 0.01  # offset inside the logs: a flat image has log contrast log(0.01)
VARIANCE_FLOOR = 1e-3  # added variance, relative to the view's mean variance
SIGNIFICANT_DIGITS = 6  # floats are stored rounded: a smaller card, same scores
MAX_CLASSES = 1000
MAX_FEATURES = 16_384
MAX_FLOATS = 200_000
MAX_ABS = 1e9
BATCH = 256
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


def feature_layer(model: nn.Sequential) -> int:
    """How many leading layers form the feature map: all before the last dense one.

    A dense layer is one with ``out_features`` (Linear, SpectralLinear,
    FrobeniusLinear, AOLLinear); a model without one uses all but its last layer.
    """
    layers = list(model)
    dense = [i for i, m in enumerate(layers) if hasattr(m, "out_features")]
    return dense[-1] if dense else len(layers) - 1


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def features(model: nn.Sequential, x: Tensor, batch_size: int = BATCH) -> Tensor:
    """The penultimate representation of a batch: (N, D) float64 on the CPU.

    The output of the first `feature_layer(model)` layers (everything before
    the last dense layer), flattened, in eval mode and without gradients.
    """
    k = feature_layer(model)
    layers = list(model)[:k]
    device = _device(model)
    p = next(model.parameters(), None)
    dtype = p.dtype if p is not None else torch.float32  # float64 for certified models
    out = []
    with eval_mode(model), torch.no_grad():
        for i in range(0, len(x), batch_size):
            h = x[i : i + batch_size].to(device, dtype)
            for layer in layers:
                h = layer(h)
            out.append(h.flatten(1).to("cpu", torch.float64))
    if not out:
        return torch.zeros(0, 0, dtype=torch.float64)
    return torch.cat(out)


def pixel_stats(x: Tensor) -> Tensor:
    """Four numbers per image (N, C, H, W) → (N, 4) float64, see `PIXEL_STATS`.

    Mean brightness; log(0.01 + standard deviation of the pixels); log(0.01 +
    mean absolute difference between neighbouring pixels, across and down);
    share of pixels strictly between 0.1 and 0.9 (mid-tones: MNIST digits
    have few, faces many, a uniform grey image only).
    """
    x = x.detach().to("cpu", torch.float64)
    flat = x.flatten(1)
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    return torch.stack(
        [
            flat.mean(1),
            (flat.std(1, correction=0) + EPS).log(),
            ((dx + dy) / 2 + EPS).log(),
            ((flat > 0.1) & (flat < 0.9)).double().mean(1),
        ],
        1,
    )


def _distance(f: Tensor, means: Tensor, variance: Tensor) -> Tensor:
    """Diagonal Mahalanobis distance of each row of `f` to its nearest class mean."""
    d = torch.stack([((f - m) ** 2 / variance).sum(1) for m in means], 1)
    return d.min(1).values.sqrt()


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
    test_distances = []
    for name, fn in (
        ("features", lambda x: features(model, x)),
        ("pixels", pixel_stats),
    ):
        means, variance = _fit_view(fn(x_train), y_train, n_classes)
        dist = _distance(fn(x_test), means, variance)
        scale = _quantile(dist, quantile)
        if not scale > 0:
            raise ValueError(f"the test images all sit on a class mean ({name})")
        test_distances.append(dist / scale)
        views[name] = {
            "class_means": means.tolist(),
            "variance": variance.tolist(),
            "scale": scale,
        }
    scores = torch.stack(test_distances).max(0).values
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


@dataclass(frozen=True)
class OODResult:
    """Per input: `score` (> `threshold` means `unusual`) and its two parts.

    `feature_score` and `pixel_score` are each view's distance over its
    scale; `score` is the larger. Score NaN (e.g. a NaN input) counts as unusual.
    """

    score: Tensor
    unusual: Tensor
    threshold: float
    feature_score: Tensor
    pixel_score: Tensor
    message: str = MESSAGE


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
    """
    entry = _entry(model)
    if entry is None:
        return None
    layer, n_classes = _expected(model)
    result = parse_calibration(entry, layer, n_classes)
    return None if isinstance(result, str) else result


def check(model: nn.Sequential, x: Tensor) -> OODResult | None:
    """Score a batch (N, C, H, W) or one image (C, H, W) against the model's card.

    None when the model carries no valid calibration, or one whose feature
    size does not match the model.
    """
    cal = read_calibration(model)
    if cal is None:
        return None
    if x.dim() == 3:
        x = x.unsqueeze(0)
    f = features(model, x)
    if f.shape[1] != cal.feature_means.shape[1]:
        return None
    fs = _distance(f, cal.feature_means, cal.feature_variance) / cal.feature_scale
    px = _distance(pixel_stats(x), cal.pixel_means, cal.pixel_variance)
    ps = px / cal.pixel_scale
    score = torch.maximum(fs, ps)  # NaN if either is NaN
    return OODResult(
        score=score,
        unusual=~(score <= cal.threshold),
        threshold=cal.threshold,
        feature_score=fs,
        pixel_score=ps,
    )


def ood_score(model: nn.Sequential, x: Tensor) -> Tensor | None:
    """Score per input (unusual above the threshold); None without calibration."""
    result = check(model, x)
    return None if result is None else result.score


def is_unusual(model: nn.Sequential, x: Tensor) -> Tensor | None:
    """Bool per input: unlike the training data? None without a valid calibration."""
    result = check(model, x)
    return None if result is None else result.unusual


def summary(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The few numbers of an "ood" entry worth showing on a model card."""
    keys = (
        "method",
        "quantile",
        "threshold",
        "flagged_test_share",
        "n_train",
        "n_test",
    )
    return {k: entry[k] for k in keys if k in entry}
