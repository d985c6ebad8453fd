"""ε in the units papers use: an L2 radius on [0, 1] pixels, in 8-bit terms.

lipnet states every ε and radius as an L2 norm on pixels in [0, 1]. Papers
and leaderboards write the same number in 8-bit units: "ε = 36/255" is
the L2 radius 36/255 ≈ 0.141 (`eps_255` gives the 36). Spread evenly over
the d values of an input, an L2 change of ε moves each value by ε/√d on
average (root mean square): `eps_rms_255` gives that in 0–255 levels, the
size one pixel change would have to be. `parse_eps` reads either form.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

LEVELS = 255
_FRACTION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*/\s*255\s*$")


def eps_255(eps: float) -> float:
    """The 8-bit equivalent of an L2 ε on [0, 1] pixels: ε·255 (36/255 → 36).

    Args:
        eps: an L2 radius on pixels in [0, 1].

    Returns:
        ε·255, the numerator of the "k/255" convention.
    """
    return float(eps) * LEVELS


def eps_rms_255(eps: float, dimension: int) -> float:
    """The per-pixel root mean square of an L2 change ε, in 0–255 levels.

    Args:
        eps: an L2 radius on pixels in [0, 1].
        dimension: d, the number of values in one input (C·H·W).

    Returns:
        255·ε/√d: how far each value moves when ε is spread evenly.

    Raises:
        ValueError: a dimension below 1.
    """
    if int(dimension) < 1:
        raise ValueError(f"dimension must be at least 1, got {dimension}")
    return float(eps) * LEVELS / math.sqrt(int(dimension))


def dimension(input_shape: Sequence[int]) -> int:
    """d = C·H·W, the number of values in one input of `input_shape`."""
    return math.prod(int(v) for v in input_shape)


def parse_eps(text: str | float) -> float:
    """An L2 ε given in [0, 1] pixel units ("0.5") or in 8-bit units ("36/255").

    Args:
        text: a number (as text or a float), or "k/255" with k a number.

    Returns:
        ε in [0, 1] pixel units (L2).

    Raises:
        ValueError: not a number or k/255, negative, or not finite.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    elif isinstance(text, str):
        match = _FRACTION.match(text)
        try:
            value = float(match.group(1)) / LEVELS if match else float(text.strip())
        except ValueError:
            raise ValueError(
                f"ε must be a number such as 0.5 or an 8-bit value such as "
                f"36/255, got {text!r}"
            ) from None
    else:
        raise ValueError(f"ε must be a number or text, got {type(text).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"ε must be a finite number ≥ 0, got {text!r}")
    return value


def eps_units(eps: float, input_shape: Sequence[int]) -> dict[str, float]:
    """ε in the three units, for reports: {"eps", "eps_255", "eps_rms_255"}.

    Args:
        eps: an L2 radius on pixels in [0, 1].
        input_shape: one input's shape (C, H, W).
    """
    return {
        "eps": float(eps),
        "eps_255": eps_255(eps),
        "eps_rms_255": eps_rms_255(eps, dimension(input_shape)),
    }


def eps_label(eps: float, input_shape: Sequence[int] | None = None) -> str:
    """ε as people read it: "0.5 (127.5/255; 4.55/255 RMS per pixel)".

    Args:
        eps: an L2 radius on pixels in [0, 1].
        input_shape: one input's shape; without it the RMS is left out.
    """
    label = f"{eps:.4g} ({eps_255(eps):.4g}/255"
    if input_shape is not None:
        label += f"; {eps_rms_255(eps, dimension(input_shape)):.3g}/255 RMS per pixel"
    return label + ")"
