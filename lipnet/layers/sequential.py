"""A Sequential that knows its Lipschitz constant, head type and classes."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from .base import LipschitzLayer
from .linear import FrobeniusLinear

# How a certificate divides the top-1 margin, per head type (times L):
# binary |f|/L; a network L-Lipschitz as a whole (f_i − f_j)/(√2·L);
# independently L-Lipschitz output neurons (f_i − f_j)/(2·L).
HEAD_FACTORS = {"binary": 1.0, "lipschitz": math.sqrt(2.0), "disjoint": 2.0}


class LipSequential(nn.Sequential):
    """nn.Sequential of layers plus what a certificate needs to know about them.

    `lipschitz_constant` is the product of the layers' constants when every
    layer is a lipnet layer, else None (an unconstrained model: no
    certificate). `head` is "binary" (one output; positive means
    `classes[1]`), "lipschitz" (several outputs, the network L-Lipschitz as a
    whole), "disjoint" (each output neuron L-Lipschitz) or "none". The head
    must match the last layer: "disjoint" needs a disjoint FrobeniusLinear
    there, and such a layer needs the "disjoint" head.

    `measured_lipschitz` certifies plain layers (a plain-layer export of a
    certified model) by measurement instead of by construction: the constant
    counts only once `lipnet.certify.check_measured` has found the rigorous bound
    within it, and only while the parameters stay as they were then.
    """

    def __init__(
        self,
        *layers: nn.Module,
        input_shape: Sequence[int] | None = None,
        classes: Sequence[str] | None = None,
        head: str | None = None,
        measured_lipschitz: float | None = None,
    ) -> None:
        super().__init__(*layers)
        self.input_shape = tuple(int(v) for v in input_shape) if input_shape else None
        self.classes = list(classes) if classes is not None else None
        self.measured_lipschitz = measured_lipschitz
        self._checked: tuple[float, tuple] | None = None
        self.head = head if head is not None else self._infer_head()
        if self.head not in (*HEAD_FACTORS, "none"):
            raise ValueError(f"unknown head type {self.head!r}")
        unbounded = self._derived_constant() is None and measured_lipschitz is None
        if self.head != "none" and unbounded:
            raise ValueError(
                f"head {self.head!r} needs every layer to be a lipnet layer "
                "with a Lipschitz bound (or a measured_lipschitz); use "
                "head='none' for an unconstrained model"
            )
        self._check_head()

    def forward(self, x: Tensor) -> Tensor:
        """The layers in turn, computed in the model's type, returned in `x`'s.

        A model converted to float64 (`lipnet.precision.to_float64`) takes
        the float32 images every page and attack builds and gives float32
        scores back, each the float64 score rounded once (the certificate
        counts that rounding too).
        """
        p = next(self.parameters(), None)
        if p is None or not x.is_floating_point() or x.dtype == p.dtype:
            return super().forward(x)
        return super().forward(x.to(p.dtype)).to(x.dtype)

    def accept_measured(self, upper: float, tolerance: float = 1e-3) -> None:
        """Certify a plain model by a measured rigorous bound `upper` of its layers.

        `lipnet.certify.check_measured` measures and calls this; raises
        ValueError when `upper` exceeds `measured_lipschitz` by more than
        `tolerance` (relative). The constant then counts while the parameters
        stay as they are.
        """
        if self.measured_lipschitz is None or self.input_shape is None:
            raise ValueError(
                "check_measured needs a measured_lipschitz and input_shape"
            )
        if not upper <= self.measured_lipschitz * (1 + tolerance):
            raise ValueError(
                f"the layers measure up to {upper:.6g}, over the declared "
                f"{self.measured_lipschitz:g}"
            )
        self._checked = (self.measured_lipschitz, self._fingerprint())

    def _fingerprint(self) -> tuple:
        return tuple((p._version, p.data_ptr()) for p in self.parameters())

    @property
    def lipschitz_constant(self) -> float | None:
        """Product of the layers' constants, or None if any is unbounded.

        Each layer counts as a map on its own, wherever it stands; only the
        last layer under a "disjoint" head counts per output neuron. A model
        of plain layers has the measured constant once `check_measured` has
        passed on its current parameters.
        """
        derived = self._derived_constant()
        if derived is not None or self._checked is None:
            return derived
        value, fingerprint = self._checked
        return value if fingerprint == self._fingerprint() else None

    def _derived_constant(self) -> float | None:
        if not all(isinstance(m, LipschitzLayer) for m in self):
            return None
        per_neuron = getattr(self, "head", None) == "disjoint"
        last = len(self) - 1
        return math.prod(
            layer_constant(m, per_neuron and i == last) for i, m in enumerate(self)
        )

    def _check_head(self) -> None:
        """Refuse a head that does not match the last layer."""
        last = self[-1] if len(self) else None
        disjoint = _is_disjoint(last)
        if self.measured_lipschitz is not None and type(last) is nn.Linear:
            disjoint = self.head == "disjoint"  # a plain head: measured per neuron
        if self.head == "disjoint" and not disjoint:
            raise ValueError(
                "head 'disjoint' needs a FrobeniusLinear with disjoint_neurons=True "
                "as the last layer"
            )
        if self.head in ("lipschitz", "binary") and disjoint and last.out_features > 1:
            raise ValueError(
                f"the last layer certifies each of its {last.out_features} neurons "
                "on its own: its head must be 'disjoint'"
            )
        if self.head == "binary" and getattr(last, "out_features", 1) != 1:
            raise ValueError("head 'binary' needs a last layer with one output")

    def _infer_head(self) -> str:
        if self.lipschitz_constant is None:
            return "none"
        last = [m for m in self if hasattr(m, "out_features")]
        if last and last[-1].out_features == 1:
            return "binary"
        if _is_disjoint(self[-1]):
            return "disjoint"
        return "lipschitz"


def _is_disjoint(m: nn.Module | None) -> bool:
    return isinstance(m, FrobeniusLinear) and m.disjoint_neurons


def layer_constant(m: LipschitzLayer, per_neuron: bool = False) -> float:
    """A layer's L2 Lipschitz constant as a map from its input to its output.

    A disjoint FrobeniusLinear bounds each of its n rows by k, so as a whole
    map it is only √n·k-Lipschitz (its spectral norm is at most its Frobenius
    norm); `per_neuron` gives the per-row k that a "disjoint" head certifies.
    """
    if _is_disjoint(m) and not per_neuron:
        return m.lipschitz * math.sqrt(m.out_features)
    return m.lipschitz
