"""Architecture builders: a small config dict → a LipSequential.

The training configs name an architecture by kind ("dense", "conv", and
their unconstrained twins "plain-dense", "plain-conv") and a few numbers, so
a model card can record the recipe and `python -m lipnet train` rebuild it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from . import layers as L

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "fullsort": L.FullSort,
    "groupsort2": L.GroupSort2,
    "groupsort4": lambda: L.GroupSort(4),
    "relu": nn.ReLU,
}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]()


def _head(kind: str, width: int, n_out: int) -> nn.Module:
    if kind == "frobenius":
        return L.FrobeniusLinear(width, n_out, disjoint_neurons=True)
    if kind == "spectral":
        return L.SpectralLinear(width, n_out)
    raise ValueError(f"unknown head {kind!r}; choose 'frobenius' or 'spectral'")


def _dense_tail(
    layers: list[nn.Module],
    fan_in: int,
    widths: Sequence[int],
    activation: str,
    head: str,
    n_out: int,
    linear: Callable[[int, int], nn.Module] = L.SpectralLinear,
) -> list[nn.Module]:
    """Flatten the feature maps, then orthogonal dense layers and the head."""
    layers = [*layers, L.Flatten()]
    for width in widths:
        layers += [linear(fan_in, width), _activation(activation)]
        fan_in = width
    return [*layers, _head(head, fan_in, n_out)]


def dense(
    input_shape: Sequence[int],
    n_out: int,
    widths: Sequence[int],
    activation: str = "fullsort",
    head: str = "frobenius",
    linear: str = "spectral",
) -> list[nn.Module]:
    """Flatten → (Lipschitz dense → activation)* → head."""
    cls = {"spectral": L.SpectralLinear, "aol": L.AOLLinear}[linear]
    layers: list[nn.Module] = [L.Flatten()]
    fan_in = math.prod(input_shape)
    for w in widths:
        layers += [cls(fan_in, w), _activation(activation)]
        fan_in = w
    return [*layers, _head(head, fan_in, n_out)]


def conv(
    input_shape: Sequence[int],
    n_out: int,
    channels: Sequence[int],
    widths: Sequence[int] = (),
    kernel_size: int = 3,
    activation: str = "groupsort2",
    pool: str = "l2norm",
    blocks_per_stage: int = 1,
    padding_mode: str = "zeros",
    head: str = "frobenius",
    stem: bool = False,
) -> list[nn.Module]:
    """Stages of (SpectralConv2d → activation)×blocks then a 2× downsampling,
    then Flatten → dense layers → head. `pool` is "l2norm" (ScaledL2NormPool2d)
    or "invertible" (space-to-depth); `stem` starts with a lossless 2×
    space-to-depth, which makes the first convolutions 4× cheaper."""
    c, h, w = (int(v) for v in input_shape)
    layers: list[nn.Module] = []
    if stem:
        layers.append(L.InvertibleDownSampling(2))
        c, h, w = c * 4, h // 2, w // 2
    for out in channels:
        for _ in range(blocks_per_stage):
            layers += [
                L.SpectralConv2d(
                    c, out, kernel_size, input_size=(h, w), padding_mode=padding_mode
                ),
                _activation(activation),
            ]
            c = out
        if pool == "l2norm":
            layers.append(L.ScaledL2NormPool2d(2))
        elif pool == "invertible":
            layers.append(L.InvertibleDownSampling(2))
            c *= 4
        else:
            raise ValueError(f"unknown pool {pool!r}")
        h, w = h // 2, w // 2
    return _dense_tail(layers, c * h * w, widths, activation, head, n_out)


def gnp(
    input_shape: Sequence[int],
    n_out: int,
    channels: Sequence[int],
    convs_per_stage: int = 2,
    widths: Sequence[int] = (),
    kernel_size: int = 3,
    activation: str = "groupsort2",
    head: str = "frobenius",
    low_pass: int = 1,
    conv: str = "block",
    linear: str = "orthogonal",
    global_pool: bool = False,
) -> list[nn.Module]:
    """A gradient-norm-preserving network: stages of (2× space-to-depth →
    orthogonal conv → activation)×convs_per_stage, then Flatten → Björck dense
    layers → head.

    `conv` picks the orthogonal convolution: "block" (BlockOrthogonalConv2d,
    k×k kernels built in kernel space, trains at about a plain conv's cost)
    or "cayley" (OrthogonalConv2d, Cayley per frequency, grid-wide kernels;
    the shipped face models use it). `linear` picks the dense layers:
    "orthogonal" (OrthogonalLinear, Cholesky) or "spectral" (SpectralLinear,
    Björck; the shipped models).

    Every layer is orthogonal or a co-isometry when each stage's channels are
    at most 4× the previous stage's (the space-to-depth output): the gradient
    that flows back to the input then keeps norm 1 (‖∇f‖ = 1 almost
    everywhere), as the hKR transport argument needs. The first conv of a
    stage may narrow the channels (rows stay orthonormal).

    `low_pass` > 1 starts with a ScaledAvgPool2d of that size: the network
    then sees the area-averaged image, a co-isometry (rows orthonormal, so
    the gradient keeps norm 1), and its input gradients, hence its
    counterfactuals, are constant on low_pass × low_pass blocks: no
    high-frequency checkerboard that a person (or a judge looking at a
    down-sampled view) cannot see.

    `global_pool` ends the trunk with an L2-norm pool over the whole grid
    (ScaledL2NormPool2d, 1-Lipschitz and gradient-norm preserving) instead of
    flattening it: the dense layers then see *what* the trunk found, not
    *where*, so a shift of the face by a multiple of the trunk's stride moves
    its gradient (its counterfactual) with it, up to the image's edges.
    """
    convs = {"block": L.BlockOrthogonalConv2d, "cayley": L.OrthogonalConv2d}
    linears = {"orthogonal": L.OrthogonalLinear, "spectral": L.SpectralLinear}
    if conv not in convs:
        raise ValueError(f"unknown conv {conv!r}; choose from {sorted(convs)}")
    if linear not in linears:
        raise ValueError(f"unknown linear {linear!r}; choose from {sorted(linears)}")
    c, h, w = (int(v) for v in input_shape)
    layers: list[nn.Module] = []
    if low_pass > 1:
        layers.append(L.ScaledAvgPool2d(low_pass))
        h, w = h // low_pass, w // low_pass
    for out in channels:
        layers.append(L.InvertibleDownSampling(2))
        c, h, w = c * 4, h // 2, w // 2
        for _ in range(convs_per_stage):
            layers += [
                convs[conv](c, out, kernel_size, input_size=(h, w)),
                _activation(activation),
            ]
            c = out
    if global_pool:
        layers.append(L.ScaledL2NormPool2d((h, w)))
        h = w = 1
    return _dense_tail(
        layers, c * h * w, widths, activation, head, n_out, linears[linear]
    )


def plain_dense(
    input_shape: Sequence[int], n_out: int, widths: Sequence[int]
) -> list[nn.Module]:
    """An unconstrained ReLU MLP: the contrast model (no certificate)."""
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = math.prod(input_shape)
    for w in widths:
        layers += [nn.Linear(fan_in, w), nn.ReLU()]
        fan_in = w
    return [*layers, nn.Linear(fan_in, n_out)]


def plain_conv(
    input_shape: Sequence[int],
    n_out: int,
    channels: Sequence[int],
    widths: Sequence[int] = (),
    kernel_size: int = 3,
) -> list[nn.Module]:
    """An unconstrained ReLU CNN with max pooling: the contrast model."""
    c, h, w = (int(v) for v in input_shape)
    layers: list[nn.Module] = []
    for out in channels:
        layers += [
            nn.Conv2d(c, out, kernel_size, padding=kernel_size // 2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        c, h, w = out, h // 2, w // 2
    layers.append(nn.Flatten())
    fan_in = c * h * w
    for width in widths:
        layers += [nn.Linear(fan_in, width), nn.ReLU()]
        fan_in = width
    return [*layers, nn.Linear(fan_in, n_out)]


BUILDERS: dict[str, Callable[..., list[nn.Module]]] = {
    "dense": dense,
    "conv": conv,
    "gnp": gnp,
    "plain-dense": plain_dense,
    "plain-conv": plain_conv,
}


def build_model(
    arch: Mapping[str, Any], input_shape: Sequence[int], classes: Sequence[str]
) -> L.LipSequential:
    """Build the architecture an `arch` config describes, for these classes.

    Two classes give one output (positive = classes[1]); more give one per class.
    """
    args = dict(arch)
    kind = args.pop("kind", None)
    if kind not in BUILDERS:
        raise ValueError(
            f"unknown architecture kind {kind!r}; choose from {sorted(BUILDERS)}"
        )
    n_out = 1 if len(classes) == 2 else len(classes)
    layers = BUILDERS[kind](input_shape, n_out, **args)
    return L.LipSequential(*layers, input_shape=input_shape, classes=classes)
