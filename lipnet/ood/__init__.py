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

A multi-attribute model (`lipnet.attributes`) keeps one calibration per
attribute under ``PER_ATTRIBUTE`` (the classes of each are the attribute's
absent / present); `lipnet.attribute` hands the chosen attribute's entry to
its binary model as that model's "ood", so `check` works on it unchanged.

One job a module: `views` computes the two views and the distance,
`calibration` fits and validates the card entry, and this module scores
inputs with it (`check`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .calibration import (
    MAX_ABS,
    MAX_CLASSES,
    MAX_FEATURES,
    MAX_FLOATS,
    METHOD,
    SIGNIFICANT_DIGITS,
    VARIANCE_FLOOR,
    VERSION,
    Calibration,
    calibrate,
    calibration_problem,
    parse_calibration,
    read_calibration,
)
from .views import (
    BATCH,
    EPS,
    PIXEL_STATS,
    distance,
    feature_layer,
    features,
    pixel_stats,
)

__all__ = [
    "BATCH",
    "EPS",
    "MAX_ABS",
    "MAX_CLASSES",
    "MAX_FEATURES",
    "MAX_FLOATS",
    "MESSAGE",
    "METHOD",
    "PER_ATTRIBUTE",
    "PIXEL_STATS",
    "SIGNIFICANT_DIGITS",
    "VARIANCE_FLOOR",
    "VERSION",
    "Calibration",
    "OODResult",
    "calibrate",
    "calibration_problem",
    "check",
    "distance",
    "feature_layer",
    "features",
    "is_unusual",
    "ood_score",
    "parse_calibration",
    "pixel_stats",
    "read_calibration",
    "summary",
]

PER_ATTRIBUTE = "ood_by_attribute"
"""The card key of a multi-attribute model's calibrations: {attribute: entry}."""

MESSAGE = (
    "This input is unlike the training data; the certificate still holds, "
    "the class may be meaningless."
)


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


def check(model: nn.Sequential, x: Tensor) -> OODResult | None:
    """Score a batch (N, C, H, W) or one image (C, H, W) against the model's card.

    None when the model carries no valid calibration, or one whose feature
    size does not match the model.

    Args:
        model: a model whose card may hold an "ood" entry.
        x: one image or a batch.

    Returns:
        The scores and verdicts, or None.
    """
    cal = read_calibration(model)
    if cal is None:
        return None
    if x.dim() == 3:
        x = x.unsqueeze(0)
    f = features(model, x)
    if f.shape[1] != cal.feature_means.shape[1]:
        return None
    fs = distance(f, cal.feature_means, cal.feature_variance) / cal.feature_scale
    px = distance(pixel_stats(x), cal.pixel_means, cal.pixel_variance)
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
    """Score per input (unusual above the threshold); None without calibration.

    Args:
        model: a model whose card may hold an "ood" entry.
        x: one image or a batch.

    Returns:
        The scores, or None.
    """
    result = check(model, x)
    return None if result is None else result.score


def is_unusual(model: nn.Sequential, x: Tensor) -> Tensor | None:
    """Bool per input: unlike the training data? None without a valid calibration.

    Takes the arguments of `ood_score`; returns the verdicts (a score above
    the threshold, or NaN) where `ood_score` returns the scores.
    """
    result = check(model, x)
    return None if result is None else result.unusual


def summary(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The few numbers of an "ood" entry worth showing on a model card.

    Args:
        entry: an "ood" card entry.

    Returns:
        Its method, quantile, threshold, flagged share and counts (those present).
    """
    keys = (
        "method",
        "quantile",
        "threshold",
        "flagged_test_share",
        "n_train",
        "n_test",
    )
    return {k: entry[k] for k in keys if k in entry}
