"""Layer by layer: a deel-torchlip or plain torch layer as plain, storable layers.

Each supported layer becomes the plain layers a model folder can name
(`lipnet.registry`) computing the same function in eval mode: nn.Linear /
nn.Conv2d with the effective weight baked in, lipnet's parameter-free
sorting, pooling and space-to-depth layers. Anything else is refused with
a `ConversionError` naming the layer. `lipnet.convert.from_torch` measures
and checks the result.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from .export import vanilla_export
from .layers import (
    FullSort,
    GroupSort,
    GroupSort2,
    InvertibleDownSampling,
    LipschitzLayer,
    MaxMin,
    ScaledAvgPool2d,
    ScaledL2NormPool2d,
)

SUPPORTED = (
    "nn.Linear, nn.Conv2d (zeros or circular padding), nn.ReLU, nn.Flatten, "
    "nn.AvgPool2d / nn.MaxPool2d / nn.LPPool2d(2) with stride = kernel, "
    "nn.AdaptiveAvgPool2d(1), nn.PixelUnshuffle, nn.Identity, nn.Dropout, and "
    "deel-torchlip's SpectralLinear, FrobeniusLinear, SpectralConv2d, "
    "FrobeniusConv2d, GroupSort, GroupSort2, FullSort, MaxMin, ScaledAvgPool2d, "
    "ScaledL2NormPool2d, ScaledAdaptiveAvgPool2d, ScaledAdaptativeL2NormPool2d, "
    "InvertibleDownSampling, inside nn.Sequential / torchlip.Sequential"
)


class ConversionError(ValueError):
    """A network that cannot become a certified lipnet model, and why."""


def leaves(module: nn.Module, name: str) -> Iterator[tuple[str, nn.Module]]:
    """The layers in the order a Sequential runs them, nested ones flattened."""
    if isinstance(module, nn.Sequential):
        for child_name, child in module.named_children():
            yield from leaves(child, f"{name}.{child_name}")
    else:
        yield name, module


def describe(name: str, layer: nn.Module) -> str:
    cls = type(layer)
    return f"layer {name!r} ({cls.__module__}.{cls.__qualname__})"


def disjoint_frobenius(layer: nn.Module | None) -> bool:
    """deel-torchlip's FrobeniusLinear with disjoint_neurons=True (the default)."""
    plist = getattr(getattr(layer, "parametrizations", None), "weight", None)
    return plist is not None and any(
        type(p).__name__ == "_FrobeniusNorm" and getattr(p, "dim_norm", None) == 1
        for p in plist
    )


@torch.no_grad()
def convert_layers(
    layers: list[tuple[str, nn.Module]], shape: tuple[int, ...]
) -> tuple[list[nn.Module], nn.Module | None]:
    """Plain layers for `layers`, and the last original layer with weights.

    A deel-torchlip coefficient k on a parameter-free layer (every one of
    them is positively homogeneous) is moved into the weights of the nearest
    affine layer before it, or after it when there is none before.
    """
    x = torch.zeros(1, *shape)
    p = next((p for _, m in layers for p in m.parameters()), None)
    x = x.to(p.device, p.dtype) if p is not None else x
    plain: list[nn.Module] = []
    affine: nn.Module | None = None  # the last converted affine layer
    last: nn.Module | None = None
    pending = 1.0
    for name, layer in layers:
        new, coef = _convert(name, layer, x)
        for m in new:
            if isinstance(m, nn.Linear | nn.Conv2d):
                if pending != 1.0:
                    m.weight.mul_(pending)
                    pending = 1.0
                affine, last = m, layer
        if coef != 1.0:
            if not coef > 0:
                raise ConversionError(
                    f"{describe(name, layer)}: coefficient {coef} is not positive"
                )
            if affine is not None:
                affine.weight.mul_(coef)
                if affine.bias is not None:
                    affine.bias.mul_(coef)
            else:
                pending *= coef
        plain += new
        x = layer(x)
    if pending != 1.0:
        raise ConversionError("a k_coef_lip with no dense or conv layer to carry it")
    return plain, last


def deel() -> Any | None:
    """The deel.torchlip package, or None when it is not installed."""
    try:
        from deel import torchlip
    except ImportError:  # deel-torchlip is optional
        return None
    return torchlip


def _convert(name: str, layer: nn.Module, x: Tensor) -> tuple[list[nn.Module], float]:
    """(plain layers computing `layer` on inputs shaped like `x`, coefficient)."""
    what = describe(name, layer)
    tl = deel()
    if tl is not None and isinstance(layer, tl.LipschitzModule | tl.PadConv2d):
        return _convert_deel(tl, what, layer, x)
    if isinstance(layer, LipschitzLayer):  # lipnet's own layers
        if any(True for _ in layer.parameters()):
            return [_affine(what, m) for m in vanilla_export(layer)], 1.0
        return [copy.deepcopy(layer)], 1.0
    kind = type(layer)
    if kind in (nn.Identity, nn.Dropout):
        return [], 1.0
    if kind is nn.ReLU:
        return [nn.ReLU()], 1.0
    if kind is nn.Flatten:
        if (layer.start_dim, layer.end_dim) != (1, -1):
            raise ConversionError(f"{what}: only nn.Flatten() (dims 1 to -1)")
        return [nn.Flatten()], 1.0
    if kind is nn.PixelUnshuffle:
        return [InvertibleDownSampling(layer.downscale_factor)], 1.0
    if kind in (nn.AvgPool2d, nn.MaxPool2d):
        return [kind(_window(what, layer))], 1.0
    if kind is nn.LPPool2d:
        if float(layer.norm_type) != 2.0:
            raise ConversionError(f"{what}: only the L2 norm (norm_type=2) pools")
        return [ScaledL2NormPool2d(_window(what, layer))], 1.0
    if kind is nn.AdaptiveAvgPool2d:
        _global(what, layer.output_size)
        return [nn.AvgPool2d(tuple(x.shape[-2:]))], 1.0
    if isinstance(layer, nn.Linear | nn.Conv2d) and _plain_forward(layer):
        return [_affine(what, layer)], 1.0
    hint = ""
    if isinstance(layer, nn.Softmax | nn.LogSoftmax | nn.Sigmoid):
        hint = ": remove it, the certificate is on the scores before it"
    elif any(n != "parametrizations" for n, _ in layer.named_children()):
        hint = (
            ": a custom module's forward cannot be read; pass an nn.Sequential "
            "of its layers"
        )
    raise ConversionError(f"{what} is not supported{hint}. Supported: {SUPPORTED}")


def _convert_deel(
    tl: Any, what: str, layer: nn.Module, x: Tensor
) -> tuple[list[nn.Module], float]:
    """A deel-torchlip layer: its plain form and its k_coef_lip."""
    coef = float(getattr(layer, "_coefficient_lip", 1.0))
    if isinstance(layer, tl.GroupSort):  # GroupSort2 and FullSort too
        g, c = layer.group_size, x.shape[1]
        sort = FullSort() if g is None or g >= c else GroupSort2() if g == 2 else None
        return [sort or GroupSort(g)], coef
    if isinstance(layer, tl.MaxMin):
        if layer._dim not in (None, 1):
            raise ConversionError(f"{what}: only MaxMin over the channels (dim 1)")
        return [MaxMin()], coef
    if isinstance(layer, tl.ScaledAvgPool2d):
        if layer.divisor_override is not None:
            raise ConversionError(f"{what}: divisor_override is not supported")
        return [ScaledAvgPool2d(_window(what, layer))], coef
    if isinstance(layer, tl.ScaledL2NormPool2d):
        return [ScaledL2NormPool2d(_window(what, layer))], coef
    if isinstance(layer, tl.ScaledAdaptiveAvgPool2d):
        return [ScaledAvgPool2d(tuple(x.shape[-2:]))], coef
    if isinstance(layer, tl.ScaledAdaptativeL2NormPool2d):
        return [ScaledL2NormPool2d(tuple(x.shape[-2:]))], coef
    if isinstance(layer, tl.InvertibleDownSampling):
        # deel-torchlip 1.0.5 runs PixelUnshuffle's forward: k is not applied.
        return [InvertibleDownSampling(layer.downscale_factor)], 1.0
    if isinstance(layer, tl.SpectralConv2d | tl.FrobeniusConv2d | tl.PadConv2d):
        mode = str(getattr(layer, "old_padding_mode", layer.padding_mode)).lower()
        if mode not in ("zeros", "circular"):
            raise ConversionError(_padding_message(what, mode))
        return [_affine(what, layer)], 1.0  # k_coef_lip is in its weight
    if isinstance(layer, tl.SpectralLinear | tl.FrobeniusLinear):
        return [_affine(what, layer)], 1.0
    raise ConversionError(f"{what} is not supported. Supported: {SUPPORTED}")


def _plain_forward(layer: nn.Module) -> bool:
    """A Linear/Conv2d (sub)class that computes what the torch class computes."""
    base = nn.Linear if isinstance(layer, nn.Linear) else nn.Conv2d
    return type(layer).forward is base.forward


def _padding_message(what: str, mode: str) -> str:
    return (
        f"{what}: padding_mode {mode!r} repeats border pixels, so no tight "
        "Lipschitz bound can be measured for it; use 'zeros' or 'circular' "
        "padding (retrain if needed)"
    )


def _window(what: str, layer: nn.Module) -> tuple[int, int]:
    """A pooling's kernel, refused unless its windows tile the input exactly."""
    k = _pair(layer.kernel_size)
    stride = _pair(layer.stride) if layer.stride else k
    padding = _pair(getattr(layer, "padding", 0))
    dilation = _pair(getattr(layer, "dilation", 1))
    if stride != k or padding != (0, 0) or dilation != (1, 1):
        raise ConversionError(
            f"{what}: only non-overlapping windows (stride = kernel_size, no "
            f"padding or dilation), got kernel {k}, stride {stride}, padding "
            f"{padding}, dilation {dilation}"
        )
    if getattr(layer, "ceil_mode", False) or getattr(layer, "return_indices", False):
        raise ConversionError(f"{what}: ceil_mode and return_indices are not supported")
    return k


def _global(what: str, output_size: Any) -> None:
    if _pair(output_size) != (1, 1):
        raise ConversionError(f"{what}: only a global pooling (output size 1)")


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _affine(what: str, layer: nn.Module) -> nn.Module:
    """A plain nn.Linear / nn.Conv2d with the layer's effective (eval) weight."""
    weight = layer.weight.detach()  # through deel's parametrizations, as eval uses
    bias = None if layer.bias is None else layer.bias.detach()
    if isinstance(layer, nn.Linear):
        out: nn.Module = nn.Linear(
            layer.in_features, layer.out_features, bias=bias is not None
        )
    else:
        out = nn.Conv2d(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            stride=_conv_checks(what, layer),
            padding=_conv_padding(what, layer),
            bias=bias is not None,
            padding_mode=layer.padding_mode,
        )
    if not torch.isfinite(weight).all():
        raise ConversionError(f"{what}: its effective weight is not finite")
    out.weight.copy_(weight.float().cpu())
    if bias is not None:
        out.bias.copy_(bias.float().cpu())
    return out


def _conv_checks(what: str, layer: nn.Conv2d) -> int:
    """The stride of a convolution we can bound, or a ConversionError saying why not."""
    if layer.padding_mode not in ("zeros", "circular"):
        raise ConversionError(_padding_message(what, layer.padding_mode))
    if layer.groups != 1 or tuple(layer.dilation) != (1, 1):
        raise ConversionError(
            f"{what}: grouped or dilated convolutions are not supported "
            f"(groups={layer.groups}, dilation={tuple(layer.dilation)})"
        )
    if layer.stride[0] != layer.stride[1]:
        raise ConversionError(f"{what}: only equal strides, got {layer.stride}")
    return int(layer.stride[0])


def _conv_padding(what: str, layer: nn.Conv2d) -> tuple[int, int]:
    """Explicit symmetric padding; 'valid' is 0, 'same' (odd kernels) is k // 2."""
    if layer.padding == "valid":
        return (0, 0)
    if layer.padding == "same":
        if any(k % 2 == 0 for k in layer.kernel_size):
            raise ConversionError(
                f"{what}: padding 'same' with an even kernel pads unevenly; "
                "pad explicitly instead"
            )
        return (layer.kernel_size[0] // 2, layer.kernel_size[1] // 2)
    return _pair(layer.padding)
