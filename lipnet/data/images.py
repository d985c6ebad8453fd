"""User images (dashboard uploads): safe loading, then a model's input tensor.

:func:`load_photo` reads and decodes an untrusted file under the size limits
here (:data:`MAX_BYTES`, :data:`MAX_PIXELS`, read when called, so a patched or
configured limit counts) and the format guards of
:mod:`~lipnet.data.image_guards`; :func:`image_to_tensor` applies the
preprocessing of :mod:`~lipnet.data.image_prep`. The built-in example images
are in :mod:`~lipnet.data.sample_images`; every name is importable from here.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .image_guards import (
    _SIGNATURES,
    MAX_BLOCKS,
    MAX_JPEG_SCANS,
    MAX_PIXELS_PER_BYTE,
    RATIO_FROM_PIXELS,
    ImageError,
    _check_blocks,
    _check_ratio,
)
from .image_prep import (
    _apply_exif_orientation,
    _border_is_bright,
    _center_crop_resize,
    _normalise_mode,
    _parse_spec,
    tensor_to_image,
)
from .paths import PathLike
from .sample_images import GRACE_HOPPER_FACE_BOX as GRACE_HOPPER_FACE_BOX
from .sample_images import grace_hopper
from .sample_images import grace_hopper_face as grace_hopper_face
from .sample_images import rendered_digit as rendered_digit

__all__ = [
    "ALLOWED_FORMATS",
    "MAX_BLOCKS",
    "MAX_BYTES",
    "MAX_JPEG_SCANS",
    "MAX_PIXELS",
    "MAX_PIXELS_PER_BYTE",
    "MAX_PYTHON_DECODED_PIXELS",
    "RATIO_FROM_PIXELS",
    "ImageError",
    "grace_hopper",
    "image_to_tensor",
    "load_image",
    "tensor_to_image",
]

MAX_PIXELS = 16_000_000
"""Largest image (width × height) accepted by :func:`load_image`."""
MAX_BYTES = 50 * 1024 * 1024
"""Largest encoded input accepted by :func:`load_image`."""
MAX_PYTHON_DECODED_PIXELS = 1_000_000
"""Largest image whose pixels Pillow decodes in Python (RLE-compressed BMP), at
roughly a megapixel a second."""
ALLOWED_FORMATS: tuple[str, ...] = (
    "PNG",
    "JPEG",
    "GIF",
    "BMP",
    "TIFF",
    "WEBP",
    "AVIF",
    "TGA",
)
"""Pillow formats :func:`load_image` opens. Left out: formats that run helpers
(EPS); ICO, which Pillow decodes while opening it, before any size check, and
whose 16×16 entry may hold a 13000×13000 PNG; PPM and QOI, which Pillow parses
or decodes in Python (a 16-megapixel QOI takes half a minute)."""


def _check_pixels(size: tuple[int, int]) -> None:
    w, h = size
    if w * h > MAX_PIXELS:
        raise ImageError(
            f"image is too large: {w}×{h} = {w * h / 1e6:.1f} megapixels, "
            f"the limit is {MAX_PIXELS / 1e6:g} megapixels ({MAX_PIXELS} pixels)"
        )
    if w < 1 or h < 1:
        raise ImageError(f"image has an empty size {w}×{h}")


def image_to_tensor(
    img: Image.Image, spec: Mapping[str, Any], invert: bool | None = None
) -> torch.Tensor:
    """Preprocess a PIL image for a model: float32 (1, C, H, W) in [0, 1].

    ``spec["input_shape"]`` is [C, H, W] with C in {1, 3}. Steps: EXIF
    orientation, conversion of any mode to grayscale or RGB (alpha composited
    over white, 16-bit and float scaled), center-crop to the H:W aspect ratio,
    LANCZOS resize. ``invert``: True/False forces inversion (1 - x); None
    inverts only grayscale (C == 1) inputs whose border is mostly bright,
    because MNIST-style models expect a white digit on black while users
    usually draw dark on white. Raises :class:`ImageError` on bad input.

    Args:
        img: a PIL image (any mode).
        spec: a model spec with "input_shape" [C, H, W].
        invert: force inversion (True/False), or None to decide by the border.

    Returns:
        A float32 tensor (1, C, H, W) in [0, 1].

    Raises:
        ImageError: a bad spec, too many pixels, or data Pillow fails on.
    """
    c, h, w = _parse_spec(spec)
    if not isinstance(img, Image.Image):
        raise ImageError(f"expected a PIL image, got {type(img).__name__}")
    _check_pixels(img.size)
    try:
        img.load()
        _check_pixels(img.size)  # the decoded size, which some formats change
        img = _apply_exif_orientation(img)
        img = _normalise_mode(img)
        img = img.convert("L" if c == 1 else "RGB")
        img = _center_crop_resize(img, h, w)
        a = np.asarray(img, dtype=np.float32) / 255.0
    except ImageError:
        raise
    except Exception as exc:  # Pillow raises many types on corrupt data
        raise ImageError(f"could not process the image: {exc}") from exc
    if a.ndim == 2:
        a = a[:, :, None]
    if invert is None:
        invert = c == 1 and _border_is_bright(a[:, :, 0])
    if invert:
        a = 1.0 - a
    x = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).unsqueeze(0)
    return x.clamp_(0.0, 1.0)


def _read_source(source: Any, max_bytes: int | None = None) -> bytes:
    """Read at most `max_bytes` (default MAX_BYTES, read at call time) from a
    path, bytes-like or binary file-like object."""
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise ImageError(
                    f"{path.name}: file is {size / 2**20:.1f} MB, "
                    f"the limit is {max_bytes / 2**20:g} MB"
                )
            with open(path, "rb") as f:
                data = f.read(max_bytes + 1)
        except OSError as exc:
            raise ImageError(
                f"cannot read image file {path}: {exc.strerror or exc}"
            ) from exc
    elif hasattr(source, "read"):
        try:
            if hasattr(source, "seekable") and source.seekable():
                source.seek(0)  # e.g. a Streamlit UploadedFile read on a previous run
            data = source.read(max_bytes + 1)
        except Exception as exc:
            raise ImageError(f"cannot read the uploaded file: {exc}") from exc
        if not isinstance(data, bytes | bytearray):
            raise ImageError("file-like source must be opened in binary mode")
        data = bytes(data)
    else:
        raise ImageError(
            f"unsupported image source {type(source).__name__}: "
            "give a path, bytes or a binary file-like object"
        )
    if not data:
        raise ImageError("the image is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageError(
            f"the image data is over the {max_bytes / 2**20:g} MB limit for uploads"
        )
    return data


def _bomb_error(exc: Exception) -> ImageError:
    return ImageError(
        f"image rejected as a possible decompression bomb ({exc}); "
        f"images may have at most {MAX_PIXELS:,} pixels"
    )


def load_image(
    source: PathLike | bytes | BinaryIO,
    spec: Mapping[str, Any],
    invert: bool | None = None,
    max_bytes: int | None = None,
) -> torch.Tensor:
    """Load a user image (path, bytes or file-like) as float32 (1, C, H, W) in [0, 1].

    The checks are :func:`load_photo`'s (and a bad ``spec``); then
    :func:`image_to_tensor`, whose ``invert`` this is.

    Args:
        source: a path, bytes or a binary file-like object.
        spec: a model spec with "input_shape" [C, H, W].
        invert: as in :func:`image_to_tensor`.
        max_bytes: the largest input accepted (None: :data:`MAX_BYTES`).

    Returns:
        A float32 tensor (1, C, H, W) in [0, 1].

    Raises:
        ImageError: the input is refused (see :func:`load_photo`).
    """
    _, h, w = _parse_spec(spec)
    with load_photo(source, max_bytes, draft_side=2 * max(h, w)) as img:
        return image_to_tensor(img, spec, invert=invert)


def load_photo(
    source: PathLike | bytes | BinaryIO,
    max_bytes: int | None = None,
    draft_side: int | None = None,
) -> Image.Image:
    """Decode and check a user image (path, bytes or file-like); the caller closes it.

    Rejects with :class:`ImageError` (a ``ValueError``): empty or > `max_bytes`
    input (the dashboard passes its server's upload limit), data Pillow cannot
    identify (only :data:`ALLOWED_FORMATS`), files with absurd header
    structures (:data:`MAX_BLOCKS`, :data:`MAX_JPEG_SCANS`), images over
    :data:`MAX_PIXELS` pixels (checked from the header before decoding and
    again after), decompression bombs, truncated or corrupt files
    (fully decoded here). Only the first frame of animations
    and multi-page files is used. Global state (Pillow's MAX_IMAGE_PIXELS,
    warning filters) is neither changed nor relied on, so it is safe in
    Streamlit's threads. A JPEG is decoded at a reduced scale (DCT scaling)
    when it is over twice ``draft_side`` (None: at full size). The image is
    returned as decoded: EXIF orientation and mode are left to the caller.

    Args:
        source: a path, bytes or a binary file-like object.
        max_bytes: the largest input accepted (None: :data:`MAX_BYTES`).
        draft_side: the side a large JPEG may be decoded down to, or None.

    Returns:
        The decoded Pillow image (open: the caller closes it).

    Raises:
        ImageError: any of the refusals above.
    """
    data = _read_source(source, max_bytes)
    _check_blocks(data)
    try:
        # Pillow's own bomb check (warning above ~89 MP, error above ~179 MP,
        # both global settings) is not relied on: MAX_PIXELS is checked below.
        # (No warnings.catch_warnings here: it is not thread-safe.)
        img = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except UnidentifiedImageError as exc:
        kind = next((f for m, f in _SIGNATURES.items() if data.startswith(m)), None)
        if kind in ALLOWED_FORMATS:
            raise ImageError(
                f"the file starts like a {kind} image, but its header is truncated "
                "or corrupt"
            ) from exc
        raise ImageError(
            f"not a recognised image (supported formats: {', '.join(ALLOWED_FORMATS)})"
        ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb_error(exc) from exc
    except Exception as exc:
        raise ImageError(f"could not open the image: {exc}") from exc
    try:
        _check_pixels(img.size)  # from the header, before any pixel is decoded
        _check_ratio(img.size, len(data), img.format)
        iw, ih = img.size
        if iw * ih > MAX_PYTHON_DECODED_PIXELS and any(
            tile[0] in Image.DECODERS for tile in img.tile
        ):
            raise ImageError(
                f"this {img.format} image ({iw}×{ih}) is compressed in a way that "
                "Pillow decodes in Python, about a megapixel a second; such images "
                f"may have at most {MAX_PYTHON_DECODED_PIXELS:,} pixels"
            )
        try:
            jpeg = img.format in ("JPEG", "MPO") and img.mode in ("L", "RGB")
            if draft_side and jpeg:
                # Decode at reduced scale (DCT scaling) when the photo is large.
                img.draft(img.mode, (draft_side, draft_side))
            img.load()  # full decode now: truncated/corrupt data fails here
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _bomb_error(exc) from exc
        except Exception as exc:
            raise ImageError(f"the image data is truncated or corrupt: {exc}") from exc
        _check_pixels(img.size)  # what was decoded, in case the header understated it
    except BaseException:
        img.close()
        raise
    return img
