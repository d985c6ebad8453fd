"""Is a face framed like the face models' training crops? ("crop to the face")

The face models learned CelebA's aligned crops: one face filling the square,
eyes level at a fixed height. An uncropped photo (a portrait down to the
shoulders) is only centre-cropped and resized on the way in, so the face is
small and high in the frame; the model still answers, and the
out-of-distribution hint (`lipnet.ood`) may even find the pixels familiar,
but the class means little. `check_framing` finds the largest face in the
model-ready image (`lipnet.faces`, on a 4× enlargement) and compares the
square of its training framing with the image: its side (`MIN_SIZE` to
`MAX_SIZE` of the image's) and its centre (at most `MAX_SHIFT` of the side
away). On the 268 shared CelebA test faces of the moustache task the side
is 0.88 to 1.38 and the centre at most 0.12 away, so none is flagged; Grace
Hopper's whole portrait gives a side of 0.77 with the centre 0.23 too high,
and is (numbers with `lipnet.faces`' framing of December 2026).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from torch import Tensor

from . import faces

MIN_SIZE, MAX_SIZE = 0.8, 1.5
"""The face's training-framing square, as a share of the image's side."""
MAX_SHIFT = 0.2
"""How far (a share of the side) its centre may be from the image's."""
UPSCALE = 4
"""The detector sees the model-ready image enlarged this many times."""


@dataclass(frozen=True)
class Framing:
    """The verdict on one image: framed like a training face, or why not."""

    framed: bool
    reason: str
    """Empty when framed; else what is wrong, in words for the user."""
    size: float | None = None
    """The face square's side over the image's (None: no face found)."""
    shift: tuple[float, float] | None = None
    """Its centre minus the image's, (x, y) as shares of the side."""


def check_framing(x: Tensor) -> Framing:
    """Whether the (1, 3, H, W) or (3, H, W) image in [0, 1] shows one face
    framed like the training crops."""
    a = x.detach().cpu().float().reshape(-1, *x.shape[-2:])
    if a.shape[0] != 3:
        return Framing(False, "no face found: this is not a colour photo")
    pixels = (a.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    side = pixels.shape[1] * UPSCALE
    image = Image.fromarray(pixels).resize((side, pixels.shape[0] * UPSCALE))
    found = faces.detect_faces(image)
    if not found:
        return Framing(False, "no face found")
    face = found[0]
    size = face.size / side
    centre = face.transform @ np.array([0.5, 0.5, 1.0])
    shift = (float(centre[0] / side - 0.5), float(centre[1] / image.height - 0.5))
    if size < MIN_SIZE:
        reason = "the face is small in the frame"
    elif size > MAX_SIZE:
        reason = "the face is cut off: too close"
    elif max(abs(s) for s in shift) > MAX_SHIFT:
        reason = "the face is off-centre"
    else:
        reason = ""
    return Framing(not reason, reason, size, shift)
