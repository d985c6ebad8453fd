"""Export to plain layers: the constrained weights baked into nn.Linear/nn.Conv2d."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from .layers import eval_mode
from .layers import protocol as P


def _plain(layer: nn.Module) -> nn.Module:
    """A parameter-for-parameter plain copy of one layer (the layer's own
    `vanilla_export`, or `lipnet.layers.torch_layers` for a plain one)."""
    return P.vanilla_export(layer)


def vanilla_export(model: nn.Module) -> nn.Sequential:
    """A plain nn.Sequential computing the same function as `model` in eval mode.

    Dense and conv layers become nn.Linear/nn.Conv2d with the constrained
    weight (times k) baked in; parameter-free activations and poolings are
    kept as they are (they have nothing to constrain). Inference then costs
    exactly a plain network's forward pass, and the export needs no lipnet
    parametrization to load. Each layer exports itself
    (`LipschitzLayer.vanilla_export`).

    Args:
        model: a sequential model (or one layer).

    Returns:
        The plain nn.Sequential, in eval mode.
    """
    with eval_mode(model):
        layers = list(model) if isinstance(model, nn.Sequential) else [model]
        plain = nn.Sequential(*(_plain(layer) for layer in layers))
    return plain.eval()


def export_folder(model: nn.Module, path: str | os.PathLike) -> Path:
    """Save the plain export as a model folder that `lipnet.load` reads back.

    The folder holds only plain layers. A certified model's export keeps its
    Lipschitz constant and head as a *measured* constant: the export is the
    same function, so its rigorous upper bound is within the constant, which
    is checked here and again by `lipnet.load` before any certificate is
    shown. Its card names the model it came from.
    """
    from .certify import check_measured
    from .io import save
    from .layers import LipSequential

    plain = vanilla_export(model)
    spec = getattr(model, "spec", {})
    lipschitz = getattr(model, "lipschitz_constant", None)
    head = getattr(model, "head", "none") if lipschitz is not None else "none"
    wrapped = LipSequential(
        *plain,
        input_shape=getattr(model, "input_shape", None),
        classes=getattr(model, "classes", None),
        head=head,
        measured_lipschitz=lipschitz if head != "none" else None,
    ).eval()
    if head != "none":
        check_measured(wrapped)
    name = spec.get("name", "model")
    card = {
        "summary": (
            f"Plain-layer export of {name}: the same function with the constrained "
            "weights baked into nn.Linear/nn.Conv2d"
            + (
                f"; still certified, its Lipschitz constant {lipschitz:g} measured "
                "on load."
                if head != "none"
                else "."
            )
        ),
        "exported_from": spec.get("name"),
        "source_lipschitz_constant": lipschitz,
        "source_head": getattr(model, "head", None),
    }
    return save(wrapped, path, card=card, name=f"{name[:58]}-plain")
