"""lipnet: 1-Lipschitz networks, their certificates and their export.

The public API the dashboard and outside checks rely on:
`load`, `save`, `certified_radius`, `certified_accuracy`, `vanilla_export`,
`lipschitz_upper_bound` (rigorous), `lipschitz_estimate`, `lipschitz_lower_bound`,
`from_torch` (a deel-torchlip or plain torch network, its constant measured),
plus the layers and losses.
"""

from .attributes import attribute, attribute_names
from .certify import (
    NoCertificateError,
    certified_accuracy,
    certified_radius,
    check_lipschitz,
    lipschitz_estimate,
    lipschitz_lower_bound,
    lipschitz_upper_bound,
)
from .convert import ConversionError, from_torch
from .export import vanilla_export
from .io import ModelFileError, load, save
from .layers import (
    AOLConv2d,
    AOLLinear,
    BlockOrthogonalConv2d,
    Flatten,
    FrobeniusLinear,
    FullSort,
    GroupSort,
    GroupSort2,
    InvertibleDownSampling,
    LipSequential,
    MaxMin,
    OrthogonalConv2d,
    OrthogonalLinear,
    ScaledAvgPool2d,
    ScaledL2NormPool2d,
    SpectralConv2d,
    SpectralLinear,
)
from .losses import (
    HingeLoss,
    HKRLoss,
    HKRMarginLoss,
    HKRMulticlassLoss,
    KRLoss,
    MulticlassHingeLoss,
)

__all__ = [
    "AOLConv2d",
    "AOLLinear",
    "BlockOrthogonalConv2d",
    "ConversionError",
    "Flatten",
    "FrobeniusLinear",
    "FullSort",
    "GroupSort",
    "GroupSort2",
    "HKRLoss",
    "HKRMarginLoss",
    "HKRMulticlassLoss",
    "HingeLoss",
    "InvertibleDownSampling",
    "KRLoss",
    "LipSequential",
    "MaxMin",
    "ModelFileError",
    "MulticlassHingeLoss",
    "NoCertificateError",
    "OrthogonalConv2d",
    "OrthogonalLinear",
    "ScaledAvgPool2d",
    "ScaledL2NormPool2d",
    "SpectralConv2d",
    "SpectralLinear",
    "attribute",
    "attribute_names",
    "certified_accuracy",
    "certified_radius",
    "check_lipschitz",
    "from_torch",
    "lipschitz_estimate",
    "lipschitz_lower_bound",
    "lipschitz_upper_bound",
    "load",
    "save",
    "vanilla_export",
]
