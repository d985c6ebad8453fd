"""A model built from a checked spec, its weights checked, its certificate verified.

`build` instantiates the layers a spec names (after the budget's checks);
`check_state` holds the weights to the architecture; `verify` measures a
certified model's Lipschitz bound and rounding and refuses one that lies.
All of it under a CPU-time backstop (`check_time`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from . import layers as L
from .budget import check_budget
from .certify import (
    UNSOUND_TOLERANCE,
    box_rounding,
    certificate_context,
    check_measured,
    within_bound,
)
from .errors import ModelFileError
from .registry import REGISTRY

MAX_BUILD_SECONDS = 60.0
"""CPU seconds of the loading thread to build, fill and measure a model.

A backstop behind the budget's work limits (shipped models take under 2 s).
CPU time, not wall time, so a busy server never refuses a sound model.
"""
MAX_ROUNDING_RADIUS = 1e-4
"""The most of a certified radius that rounding may take anywhere in the box."""


def verify(model: L.LipSequential) -> dict[str, Any]:
    """Measure a certified model's Lipschitz constant and rounding; refuse a liar.

    A model of plain layers that declares a measured constant is certified
    here (`lipnet.certify.check_measured`), or refused. Then the pixel box is
    probed (`lipnet.certify.box_rounding`): a model with a non-finite output
    there, or whose rounding error could cost more than MAX_ROUNDING_RADIUS of
    a radius, is refused.

    Args:
        model: a model with its weights loaded (float64 when certified).

    Returns:
        The measurement kept as `model.lipschitz_check`.

    Raises:
        ModelFileError: an unmeasurable or too large bound, or rounding that
            overflows or drowns the radii.
    """
    if model.head == "none":
        return {"declared": None, "sound": False}
    try:
        if model.measured_lipschitz is not None:
            check_measured(model, UNSOUND_TOLERANCE)
        declared = model.lipschitz_constant
        context = certificate_context(model)
        rounding = box_rounding(model)
    except (RuntimeError, ValueError, TypeError) as e:
        raise ModelFileError(
            f"the Lipschitz bound cannot be measured or is too large: {e}"
        ) from None
    upper = context.upper
    if not within_bound(upper, declared):
        raise ModelFileError(
            f"the model declares a Lipschitz constant of {declared:g}, but its "
            f"layers measure up to {upper:.6g}: its certificates would be wrong"
        )
    _check_rounding(rounding, context.divisor)
    return {
        "declared": declared,
        "upper_bound": upper,
        "lipschitz": context.lipschitz,
        "rounding_bound": rounding["score_error"],
        "sound": True,
    }


def _check_rounding(rounding: Mapping[str, float], divisor: float) -> None:
    """Refuse a model whose outputs overflow or whose rounding drowns its radii."""
    if not rounding["finite"]:
        raise ModelFileError(
            "the model's outputs are not finite on some inputs in the pixel box "
            "(an overflow or NaN): it has no certificate to give"
        )
    lost = rounding["score_error"] / divisor
    if not lost <= MAX_ROUNDING_RADIUS:
        raise ModelFileError(
            "floating-point rounding could change this model's scores by up to "
            f"{rounding['score_error']:.3g} inside the pixel box, i.e. "
            f"{lost:.3g} of every certified radius (over the {MAX_ROUNDING_RADIUS:g}"
            " limit): its certificates would be dominated by rounding error "
            "(cancelling large biases or huge gains do this)"
        )


def check_time(started: float, what: str) -> None:
    """Refuse a model whose loading thread spent over MAX_BUILD_SECONDS of CPU.

    Args:
        started: `time.thread_time()` when the work began.
        what: the work, for the message ("build", "load").

    Raises:
        ModelFileError: over the limit.
    """
    elapsed = time.thread_time() - started
    if elapsed > MAX_BUILD_SECONDS:
        raise ModelFileError(
            f"the model took {elapsed:.0f} CPU seconds to {what}, over the "
            f"MAX_BUILD_SECONDS limit of {MAX_BUILD_SECONDS:g}"
        )


def _check_outputs(spec: Mapping[str, Any], outputs: int) -> None:
    """The last layer's outputs must match the head and the class list."""
    n_classes = len(spec["classes"])
    expected = 1 if spec["task"] == "binary" else n_classes  # multilabel: A outputs
    if outputs != expected:
        raise ModelFileError(
            f"the model outputs {outputs} score(s), but its {spec['task']} task "
            f"with {n_classes} classes needs {expected}"
        )


def build(spec: Mapping[str, Any]) -> L.LipSequential:
    """Instantiate the architecture a validated spec describes (random weights).

    The spec's costs are checked first (`lipnet.budget.check_budget`: shapes,
    activations, parameters, FFT sizes, work), so nothing large is allocated
    for a spec that asks too much. The Lipschitz constant is derived from the
    layers (`LipSequential.lipschitz_constant`) and must equal the declared one.

    Args:
        spec: a spec checked by `parse_spec`.

    Returns:
        The model with random weights.

    Raises:
        ModelFileError: over budget, a layer that cannot be built, layers that
            do not fit together, or a constant that does not match.
    """
    started = time.thread_time()
    budget = check_budget(spec)
    _check_outputs(spec, budget.outputs)
    modules = []
    for i, entry in enumerate(spec["layers"]):
        try:
            modules.append(REGISTRY[entry["type"]][0](**entry.get("args", {})))
        except (TypeError, ValueError, RuntimeError, MemoryError) as e:
            raise ModelFileError(
                f"layer {i} ({entry['type']}) cannot be built: {e}"
            ) from None
    measured = spec.get("lipschitz_source") == "measured"
    declared = spec.get("lipschitz_constant")
    try:
        model = L.LipSequential(
            *modules,
            input_shape=spec["input_shape"],
            classes=spec["classes"],
            head=spec["head"],
            measured_lipschitz=declared if measured else None,
        )
    except ValueError as e:
        raise ModelFileError(f"inconsistent spec: {e}") from None
    if measured:  # certified by measurement once the weights are in (`verify`)
        check_time(started, "build")
        return model
    actual = model.lipschitz_constant
    if (declared is None) != (actual is None) or (
        actual is not None and not math.isclose(declared, actual, rel_tol=1e-9)
    ):
        raise ModelFileError(
            f"spec.json declares a Lipschitz constant of {declared}, but its layers "
            f"give {actual}"
        )
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *spec["input_shape"]))
    except (RuntimeError, ValueError) as e:
        raise ModelFileError(
            f"the layers do not fit together for input {spec['input_shape']}: {e}"
        ) from None
    check_time(started, "build")
    return model


def check_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Weights must match the architecture exactly and hold finite float32 values.

    Args:
        model: the built model.
        state: the weights read from the file.

    Raises:
        ModelFileError: missing or unexpected keys, a wrong shape or dtype, or a
            non-finite value.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ModelFileError(
            "weights.safetensors does not match the architecture in spec.json "
            f"(missing {missing[:5]}, unexpected {extra[:5]})"
        )
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise ModelFileError(
                f"weight {key} has shape {tuple(tensor.shape)}, the architecture "
                f"expects {tuple(expected[key].shape)}"
            )
        if tensor.dtype != torch.float32:
            raise ModelFileError(f"weight {key} has dtype {tensor.dtype}, not float32")
        if not torch.isfinite(tensor).all():
            raise ModelFileError(f"weight {key} contains NaN or infinite values")
