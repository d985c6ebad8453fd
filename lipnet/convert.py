"""Bring your own model: a deel-torchlip or plain PyTorch network as a lipnet model.

`from_torch` reads a trained network layer by layer (in eval mode, as its
`forward` computes) and rebuilds it from plain layers that a model folder can
store: nn.Linear / nn.Conv2d with the effective weights baked in, and the
parameter-free lipnet layers (sorting activations, 1-Lipschitz pooling,
space-to-depth). The Lipschitz constant is then **measured** with the
rigorous bound (`lipnet.certify.lipschitz_upper_bound`), never taken from
the network's own claims, and the result must reproduce the original's
outputs. `lipnet.save` writes it as a folder the dashboard uploads, and
`lipnet.load` measures it again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .certify import check_measured, lipschitz_upper_bound
from .convert_layers import (
    SUPPORTED,
    ConversionError,
    convert_layers,
    deel,
    describe,
    disjoint_frobenius,
    leaves,
)
from .layers import LipSequential, eval_mode

__all__ = ["SUPPORTED", "ConversionError", "from_torch"]

MAX_CONSTANT = 1e6
"""A model folder's Lipschitz constant lies in [1e-6, 1e6] (`lipnet.io`)."""
OUTPUT_TOLERANCE = 1e-5
"""Largest difference from the original's outputs, relative to their size."""


def from_torch(
    module: nn.Module,
    input_shape: Sequence[int],
    classes: Sequence[str],
    head: str | None = None,
) -> LipSequential:
    """A lipnet model of plain layers computing what `module` computes in eval mode.

    Args:
        module: an nn.Sequential (deel-torchlip's `Sequential`, its
            `vanilla_export()`, or plain torch) of the layers in `SUPPORTED`;
            nested Sequentials are flattened. Read in eval mode and left as
            it was (deel-torchlip's cached Björck weights are what eval uses).
        input_shape: one input's shape, e.g. (1, 28, 28).
        classes: the class names, 2 for one output (positive = classes[1]),
            else one per output.
        head: "binary", "lipschitz" (the network L-Lipschitz as a whole),
            "disjoint" (each output neuron on its own: deel-torchlip's
            FrobeniusLinear head) or "none" (no certificate); None infers it
            from the outputs and the last layer.

    Returns:
        A `LipSequential` in eval mode whose `lipschitz_constant` is the
        rigorous upper bound measured on its layers (`check_measured` passed),
        with `card` holding what a model folder's card should say.

    Raises:
        ConversionError: an unsupported layer (named), non-finite weights,
            an input shape the network does not take, outputs that do not
            match the classes or head, or a converted model whose outputs
            differ from the original's.
    """
    shape = _input_shape(input_shape)
    if not isinstance(module, nn.Module):
        raise ConversionError(f"expected an nn.Module, got {type(module).__name__}")
    layers = list(leaves(module, "model"))
    if not layers:
        raise ConversionError("the network has no layers")
    _check_finite(layers)
    with eval_mode(module), torch.no_grad():
        out = _run(module, torch.zeros(1, *shape), shape)
        plain, last = convert_layers(layers, shape)
    n_out = _check_outputs(out, classes)
    head = head if head is not None else _infer_head(n_out, last)
    model = _measured_model(plain, shape, classes, head)
    _check_same_outputs(module, model, shape)
    model.card = _card(module, model)
    return model


def _input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ConversionError(
            f"input_shape must be a sequence of integers, got {input_shape!r}"
        ) from None
    if not 1 <= len(shape) <= 3 or min(shape) < 1:
        raise ConversionError(
            f"input_shape must be (C, H, W) or (features,) with sizes ≥ 1, got {shape}"
        )
    return shape


def _check_finite(layers: list[tuple[str, nn.Module]]) -> None:
    for name, layer in layers:
        for key, t in [*layer.named_parameters(), *layer.named_buffers()]:
            if t.is_floating_point() and not torch.isfinite(t).all():
                raise ConversionError(
                    f"{describe(name, layer)} has non-finite values (NaN or inf) "
                    f"in {key!r}"
                )


def _run(module: nn.Module, x: Tensor, shape: tuple[int, ...]) -> Tensor:
    p = next(module.parameters(), None)
    if p is not None:
        x = x.to(p.device, p.dtype)
    try:
        out = module(x)
    except (RuntimeError, ValueError, IndexError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConversionError(
            f"the network does not take inputs of shape {shape}: {first}"
        ) from None
    if not torch.is_tensor(out) or out.dim() != 2:
        got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise ConversionError(
            f"the network must output scores of shape (batch, outputs), got {got}"
        )
    return out


def _check_outputs(out: Tensor, classes: Sequence[str]) -> int:
    n = int(out.shape[1])
    if isinstance(classes, str) or len(classes) < 2:
        raise ConversionError("classes must be a list of at least 2 class names")
    want = 2 if n == 1 else n
    if len(classes) != want:
        raise ConversionError(
            f"the network has {n} output(s), so it needs {want} class names, "
            f"got {len(classes)}"
        )
    return n


def _infer_head(n_out: int, last: nn.Module | None) -> str:
    if n_out == 1:
        return "binary"
    return "disjoint" if disjoint_frobenius(last) else "lipschitz"


# ------------------------------------------------------------- measure and check


def _measured_model(
    plain: list[nn.Module], shape: tuple[int, ...], classes: Sequence[str], head: str
) -> LipSequential:
    """The plain layers as a LipSequential whose constant is the rigorous bound."""
    kwargs: dict[str, Any] = {"input_shape": shape, "classes": classes}
    try:
        if head == "none":
            return LipSequential(*plain, head="none", **kwargs).eval()
        model = LipSequential(*plain, head=head, measured_lipschitz=math.inf, **kwargs)
        model.eval()
        bound = lipschitz_upper_bound(model, shape)
    except (ValueError, TypeError) as e:
        raise ConversionError(str(e)) from None
    if not 1e-6 <= bound <= MAX_CONSTANT:
        raise ConversionError(
            f"the measured Lipschitz bound {bound:.6g} is outside the [1e-6, 1e6] "
            "a model folder allows: the network is not Lipschitz-constrained; "
            "use head='none' for a model without a certificate"
        )
    model.measured_lipschitz = bound
    check_measured(model)
    return model


def _check_same_outputs(
    module: nn.Module, model: LipSequential, shape: tuple[int, ...]
) -> None:
    """Refuse a conversion that does not reproduce the original on random inputs."""
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.zeros(1, *shape), torch.rand(8, *shape, generator=gen)])
    with eval_mode(module), torch.no_grad():
        p = next(module.parameters(), None)
        want = module(x.to(p.device, p.dtype) if p is not None else x)
        got = model(x)
    want = want.detach().double().cpu()
    diff = float((got.double() - want).abs().max())
    if not diff <= OUTPUT_TOLERANCE * (1 + float(want.abs().max())):
        raise ConversionError(
            f"the converted model's outputs differ from the network's by {diff:.3g}: "
            "a layer's forward is not what its type says; "
            f"supported layers are {SUPPORTED}"
        )


def _card(module: nn.Module, model: LipSequential) -> dict[str, Any]:
    """What a model folder's card says about an imported network."""
    tl = deel()
    source = "plain PyTorch"
    if tl is not None and any(
        isinstance(m, tl.LipschitzModule) or type(m).__module__.startswith("deel.")
        for m in module.modules()
    ):
        source = f"deel-torchlip {tl.__version__}"
    lip = model.lipschitz_constant
    card: dict[str, Any] = {
        "summary": f"Imported from {source} with lipnet.from_torch: plain layers, "
        + (
            f"Lipschitz constant {lip:.6g} measured (rigorous bound), re-measured "
            "on load."
            if lip is not None
            else "no certificate."
        ),
        "imported_from": source,
    }
    if lip is not None:
        card["lipschitz"] = {
            "declared": lip,
            "upper_bound": lip,
            "sound": True,
            "method": "rigorous upper bound measured on import",
        }
    return card
