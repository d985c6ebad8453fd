"""What every certificate of one model needs, measured once per parameters.

`certificate_context` gathers the declared constant, the rigorous upper
bound (`lipnet.bounds.layer_norms`), the head and the rounding profile
(`lipnet.rounding`) of a model, cached on the model until its parameters
change. `lipnet.certify` turns outputs into radii with it and re-exports
every name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from .bounds import layer_norms
from .layers import HEAD_FACTORS
from .rounding import RoundingProfile, rounding_profile


class NoCertificateError(ValueError):
    """A certificate was asked of a model that declares no Lipschitz bound."""


def certificate_params(model: nn.Module) -> tuple[float, str]:
    """(declared Lipschitz constant, head type) of a certified model.

    Raises NoCertificateError for a model that declares no bound.
    """
    lip = getattr(model, "lipschitz_constant", None)
    head = getattr(model, "head", None)
    if lip is None or head not in HEAD_FACTORS:
        raise NoCertificateError(
            "this model declares no Lipschitz constant: it carries no certificate"
        )
    return float(lip), head


@dataclass(frozen=True)
class CertificateContext:
    """What every certificate of one model needs, measured once per parameters.

    `lipschitz` is the larger of the declared constant and the rigorous upper
    bound, rounded up: no tolerance can make a radius grow. `rounding` bounds
    what the machine's arithmetic adds (`lipnet.rounding`); `prefix[k]` is the
    product of the constants of the layers before layer k.
    """

    lipschitz: float
    declared: float
    upper: float
    head: str
    rounding: RoundingProfile
    prefix: tuple[float, ...]

    @property
    def divisor(self) -> float:
        """What the margin is divided by: c·L (c = 1, √2 or 2 by head)."""
        return HEAD_FACTORS[self.head] * self.lipschitz

    @property
    def error_factor(self) -> float:
        """How many output-error bounds the margin loses (at x and at x')."""
        return 2.0 if self.head == "binary" else 4.0


def certificate_context(
    model: nn.Module, input_shape: Sequence[int] | None = None
) -> CertificateContext:
    """The model's certificate context, cached until its parameters change.

    Raises NoCertificateError for a model without a declared bound, and
    TypeError for a layer without a bound or a rounding model.
    """
    declared, head = certificate_params(model)
    shape = tuple(getattr(model, "input_shape", None) or input_shape or ())
    if not shape:
        raise ValueError("a certificate needs the model's input shape")
    key = (shape, _fingerprint(model))
    cached = getattr(model, "_certificate_context", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    norms = [norm for _, norm in layer_norms(model, shape)]
    upper = math.prod(norms)
    lipschitz = math.nextafter(max(declared, upper), math.inf)
    prefix = tuple(math.prod(norms[:k]) for k in range(len(norms)))
    profile = rounding_profile(model, shape, norms)
    context = CertificateContext(lipschitz, declared, upper, head, profile, prefix)
    object.__setattr__(model, "_certificate_context", (key, context))
    return context


def _fingerprint(model: nn.Module) -> tuple:
    """Identifies the current parameters and buffers (storage and version)."""
    tensors = [*model.parameters(), *model.buffers()]
    return tuple((t._version, t.data_ptr(), t.dtype) for t in tensors)
