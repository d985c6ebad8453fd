"""A photo on a face model: its faces, the model input, the result on the photo.

The face models were trained on aligned crops, so a photo is not centre-cropped
but goes through :mod:`lipnet.faces`: every face is found and outlined, the
chosen one is aligned to the model's input, and the counterfactual of that
crop is pasted back onto the photo (only pixels inside the face's square
change). Without a face, the centre crop is the fallback. No Streamlit here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from . import faces
from .data.images import (
    MAX_BYTES,
    _apply_exif_orientation,
    _normalise_mode,
    image_to_tensor,
    load_photo,
    tensor_to_image,
)

MAX_SIDE = 1600
"""A photo is reduced to at most this many pixels a side (shown, searched)."""
CHOSEN, OTHER = (255, 214, 0), (0, 200, 255)
"""Outline colours: the face the model sees, and the others."""


def open_photo(data: bytes, max_bytes: int = MAX_BYTES) -> Image.Image:
    """A checked upload (see :func:`lipnet.data.load_photo`) as an upright RGB
    photo of at most :data:`MAX_SIDE` a side; raises ImageError."""
    with load_photo(data, max_bytes, draft_side=MAX_SIDE) as img:
        rgb = _normalise_mode(_apply_exif_orientation(img)).convert("RGB")
    rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return rgb


def model_input(
    photo: Image.Image, face: faces.Face | None, spec: dict
) -> torch.Tensor:
    """The (1, 3, H, W) input: the face aligned like the training crops, or
    the photo's centre crop when there is no face."""
    size = int(spec["input_shape"][-1])
    crop = photo if face is None else faces.align(photo, face, size)
    return image_to_tensor(crop, spec)


def outlined(
    photo: Image.Image, found: Sequence[faces.Face], chosen: int | None
) -> Image.Image:
    """The photo with each face's square drawn and numbered (the chosen one in
    :data:`CHOSEN`, thicker)."""
    out = photo.copy()
    draw = ImageDraw.Draw(out)
    side = max(photo.size)
    width = max(2, round(side / 250))
    order = [i for i in range(len(found)) if i != chosen]
    order += [] if chosen is None else [chosen]  # the chosen one on top
    for i in order:
        corners = [tuple(p) for p in found[i].corners()]
        colour, w = (CHOSEN, 2 * width) if i == chosen else (OTHER, width)
        draw.line([*corners, corners[0]], fill=colour, width=w, joint="curve")
        if len(found) > 1:
            x, y = np.min(found[i].corners(), axis=0)
            draw.text(
                (max(0, x) + w, max(0, y) + w),
                str(i + 1),
                fill=colour,
                font_size=max(12, round(min(found[i].size / 2.5, side / 12))),
                stroke_width=2,
                stroke_fill=(0, 0, 0),
            )
    return out


def pasted(photo: Image.Image, face: faces.Face, x_adv: torch.Tensor) -> Image.Image:
    """The photo with the changed crop ``x_adv`` ((1, 3, H, W) in [0, 1]) put
    back through the inverse alignment; pixels outside the face's square are
    unchanged."""
    return faces.paste_back(photo, tensor_to_image(x_adv), face)
