"""Preprocessing of user images: any Pillow image to a model's input tensor and back.

EXIF orientation, any mode to grayscale or RGB (alpha over white, 16-bit and
float scaled), center-crop to the model's aspect ratio, LANCZOS resize, and
the inversion of dark-on-white drawings for MNIST-style models. The checks
on untrusted files come before, in :mod:`~lipnet.data.images`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps

from .image_guards import ImageError

log = logging.getLogger(__name__)


def _parse_spec(spec: Mapping[str, Any]) -> tuple[int, int, int]:
    if not isinstance(spec, Mapping) or "input_shape" not in spec:
        raise ImageError("model spec must be a mapping with an 'input_shape' [C, H, W]")
    shape = spec["input_shape"]
    if (
        isinstance(shape, str | bytes)
        or not isinstance(shape, Sequence | torch.Size | np.ndarray)
        or len(shape) != 3
        or not all(
            isinstance(v, int | np.integer) and not isinstance(v, bool) for v in shape
        )
    ):
        raise ImageError(f"input_shape must be three integers [C, H, W], got {shape!r}")
    c, h, w = (int(v) for v in shape)
    if c not in (1, 3):
        raise ImageError(f"input_shape channels must be 1 or 3, got {c}")
    if not (1 <= h <= 4096 and 1 <= w <= 4096):
        raise ImageError(
            f"input_shape height and width must be in 1..4096, got {h}×{w}"
        )
    return c, h, w


def _to_numeric_gray(img: Image.Image) -> Image.Image:
    """Map 16/32-bit integer ('I;16*', 'I') and float ('F') images to 8-bit 'L'.

    'I;16*' is scaled by 1/65535. For 'I' and 'F' the value range decides: data
    within [0, 1] (float only), [0, 255] or [0, 65535] is scaled to that range;
    anything else is min-max normalised.
    """
    a = np.array(img, dtype=np.float32)  # a copy, worked on in place (memory)
    np.nan_to_num(a, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    if img.mode.startswith("I;16"):
        scale, offset = 1 / 65535, 0.0
    elif img.mode == "F" and lo >= 0 and hi <= 1:
        scale, offset = 1.0, 0.0
    elif lo >= 0 and hi <= 255:
        scale, offset = 1 / 255, 0.0
    elif lo >= 0 and hi <= 65535:
        scale, offset = 1 / 65535, 0.0
    elif hi > lo:
        scale, offset = 1 / (hi - lo), lo / (hi - lo)
    else:
        scale, offset = 0.0, 0.0
    a *= scale  # then subtract: unlike a - lo, this cannot overflow float32
    a -= offset
    np.clip(a, 0, 1, out=a)
    a *= 255
    return Image.fromarray(np.rint(a, out=a).astype(np.uint8), "L")


def _normalise_mode(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 'L' or 'RGB'; alpha is composited over white."""
    mode = img.mode
    if mode in ("L", "RGB") and "transparency" not in img.info:
        return img
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I") or mode == "F":
        return _to_numeric_gray(img)
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in img.info
    if has_alpha:
        rgba = img if mode == "RGBA" else img.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba)  # lighter on memory than alpha_composite
        return out.convert("L") if mode in ("LA", "La", "L") else out
    return img.convert("RGB")  # P, CMYK, YCbCr, HSV, RGBX, ...


def _center_crop_resize(img: Image.Image, h: int, w: int) -> Image.Image:
    """Center-crop ``img`` to the aspect ratio w:h, then resize it to (w, h)."""
    iw, ih = img.size
    if iw * h > ih * w:  # too wide
        cw, ch = max(1, round(ih * w / h)), ih
    else:  # too tall (or exact)
        cw, ch = iw, max(1, round(iw * h / w))
    left, top = (iw - cw) // 2, (ih - ch) // 2
    if (cw, ch) != (iw, ih):
        img = img.crop((left, top, left + cw, top + ch))
    if img.size != (w, h):
        img = img.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return img


def _apply_exif_orientation(img: Image.Image) -> Image.Image:
    """Rotate/flip by the EXIF orientation tag; unreadable EXIF leaves it as is."""
    try:
        if img.getexif().get(ExifTags.Base.Orientation, 1) == 1:
            return img  # exif_transpose would return a full copy
        return ImageOps.exif_transpose(img)
    except Exception as exc:  # a corrupt EXIF block should not reject the picture
        log.warning("ignoring unreadable EXIF orientation: %s", exc)
        return img


def _border_is_bright(a: np.ndarray) -> bool:
    """True when most of the outer ring (≈10% wide) of a [0, 1] image is above 0.5."""
    h, w = a.shape
    r = max(1, round(0.1 * min(h, w)))
    ring = np.ones((h, w), dtype=bool)
    ring[r : h - r, r : w - r] = False
    return bool((a[ring] > 0.5).mean() > 0.5)


def tensor_to_image(x: torch.Tensor) -> Image.Image:
    """Turn a (1, C, H, W), (C, H, W) or (H, W) tensor into a PIL 'L'/'RGB' image.

    Values are clamped to [0, 1] (NaN becomes 0) and rounded to 8 bits, for
    display or download.

    Args:
        x: image data in [0, 1], 1 or 3 channels.

    Returns:
        An 8-bit 'L' (one channel) or 'RGB' image.

    Raises:
        ValueError: a batch of more than one image or another shape.
    """
    t = x.detach().to("cpu", torch.float32)
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(
                f"expected a batch of one image, got shape {tuple(x.shape)}"
            )
        t = t[0]
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"expected (1|3, H, W) image data, got shape {tuple(x.shape)}")
    t = torch.nan_to_num(t, nan=0.0).clamp(0.0, 1.0)
    a = (t * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if a.shape[2] == 1:
        return Image.fromarray(a[:, :, 0], "L")
    return Image.fromarray(a, "RGB")
