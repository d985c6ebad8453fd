"""Reparametrizations that make a weight provably 1-Lipschitz.

The ground floor of lipnet: power iteration, Björck orthonormalization with a
strict final step, the exact operator norm of a convolution (via the FFT of its
kernel), AOL rescaling (`operators`), and the `parametrize` modules that apply
them with a cache in eval mode (`parametrize`). Every name is importable from
`lipnet.constraints`.
"""

from .operators import (
    BJORCK_GRAD_ITER,
    BJORCK_MAX_ITER,
    BJORCK_SWITCH,
    BJORCK_TOL,
    aol_scale,
    bjorck_orthonormalize,
    cayley,
    conv_operator_norm,
    power_iteration,
)
from .parametrize import (
    AOLRescale,
    ConvOperatorNorm,
    FrobeniusNormalize,
    SpectralBjorck,
    _CachedInEval,
)

__all__ = [
    "BJORCK_GRAD_ITER",
    "BJORCK_MAX_ITER",
    "BJORCK_SWITCH",
    "BJORCK_TOL",
    "AOLRescale",
    "ConvOperatorNorm",
    "FrobeniusNormalize",
    "SpectralBjorck",
    "_CachedInEval",
    "aol_scale",
    "bjorck_orthonormalize",
    "cayley",
    "conv_operator_norm",
    "power_iteration",
]
