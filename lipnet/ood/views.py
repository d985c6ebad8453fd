"""The detector's two views of an input and its distance to the class means.

``features``: the model's penultimate representation (everything before its
last dense layer); ``pixels``: four numbers about the image itself
(`pixel_stats`). In each view the distance to the nearest class mean is a
diagonal Mahalanobis distance (`distance`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..layers import eval_mode

PIXEL_STATS = ("mean", "log_std", "log_edge", "midtone_share")
EPS = 0.01  # offset inside the logs: a flat image has log contrast log(0.01)
BATCH = 256


def feature_layer(model: nn.Sequential) -> int:
    """How many leading layers form the feature map: all before the last dense one.

    A dense layer is one with ``out_features`` (Linear, SpectralLinear,
    FrobeniusLinear, AOLLinear); a model without one uses all but its last layer.

    Args:
        model: a sequential network.

    Returns:
        The number of leading layers whose output is the feature view.
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

    Args:
        model: a sequential network (its dtype and device are used).
        x: a batch of inputs.
        batch_size: inputs per forward pass.

    Returns:
        The features, one row per input ((0, 0) for an empty batch).
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

    Args:
        x: a batch of images in [0, 1].

    Returns:
        One row of `PIXEL_STATS` per image.
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


def distance(f: Tensor, means: Tensor, variance: Tensor) -> Tensor:
    """Diagonal Mahalanobis distance of each row of `f` to its nearest class mean.

    Args:
        f: (N, D) points in one view.
        means: (C, D) class means.
        variance: (D,) pooled within-class variance.

    Returns:
        (N,) distances.
    """
    d = torch.stack([((f - m) ** 2 / variance).sum(1) for m in means], 1)
    return d.min(1).values.sqrt()
