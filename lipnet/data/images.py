"""User images (dashboard uploads): safe loading, preprocessing and display."""

from __future__ import annotations

import io
import logging
import os
import re
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import (
    ExifTags,
    Image,
    ImageOps,
    JpegImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
)

from .paths import PathLike

__all__ = [
    "ALLOWED_FORMATS",
    "MAX_BLOCKS",
    "MAX_BYTES",
    "MAX_JPEG_SCANS",
    "MAX_PIXELS",
    "MAX_PYTHON_DECODED_PIXELS",
    "ImageError",
    "grace_hopper",
    "image_to_tensor",
    "load_image",
    "tensor_to_image",
]

log = logging.getLogger(__name__)

MAX_PIXELS = 16_000_000
"""Largest image (width × height) accepted by :func:`load_image`."""
MAX_BYTES = 50 * 1024 * 1024
MAX_PIXELS_PER_BYTE = 1_000
"""Pixels per byte of file above which a large image is refused undecoded
(photos and scans compress to well under 300; a flat PNG reaches ~400)."""
RATIO_FROM_PIXELS = 1_000_000
"""Images up to a megapixel are cheap to decode whatever their ratio."""
"""Largest encoded input accepted by :func:`load_image`."""
MAX_BLOCKS = 100_000
"""Most PNG chunks, JPEG segments (and stray bytes) before the first scan, GIF
blocks before the first frame, or values of one numeric TIFF tag (such as strip
offsets) :func:`load_image` accepts. Pillow handles each one in Python while
*opening* a file, before its size is known: 50 MB of tiny blocks would take up
to half a minute and gigabytes."""
MAX_JPEG_SCANS = 100
"""Most JPEG scans (SOS markers) accepted; encoders write at most a few dozen.
Each progressive scan passes over the whole image, so thousands of tiny scans
would decode for minutes. libtiff uses the same limit for JPEG in TIFF."""
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


class ImageError(ValueError):
    """A user image was rejected: not an image, corrupt, too large, or a bad spec."""


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


def _check_pixels(size: tuple[int, int]) -> None:
    w, h = size
    if w * h > MAX_PIXELS:
        raise ImageError(
            f"image is too large: {w}×{h} = {w * h / 1e6:.1f} megapixels, "
            f"the limit is {MAX_PIXELS / 1e6:g} megapixels ({MAX_PIXELS} pixels)"
        )
    if w < 1 or h < 1:
        raise ImageError(f"image has an empty size {w}×{h}")


def _check_ratio(size: tuple[int, int], nbytes: int, kind: str | None) -> None:
    """Refuse a tiny file that claims millions of pixels (e.g. a 678-byte
    16-megapixel lossless WebP): decoding it costs ~250 MB for nothing a
    camera or a scanner makes."""
    pixels = size[0] * size[1]
    if pixels > RATIO_FROM_PIXELS and pixels > MAX_PIXELS_PER_BYTE * nbytes:
        raise ImageError(
            f"this {kind or 'image'} file claims {size[0]}×{size[1]} pixels in only "
            f"{nbytes:,} bytes ({pixels / nbytes:,.0f} pixels per byte, over the "
            f"limit of {MAX_PIXELS_PER_BYTE:,}): a decompression bomb, not a photo"
        )


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


_FILL_BYTES = re.compile(rb"\xff+")
_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    **dict.fromkeys(TiffImagePlugin.PREFIXES, "TIFF"),
}
"""Leading bytes of some formats, to tell a damaged header from a non-image."""


def _png_blocks(data: bytes) -> int:
    """Number of PNG chunks up to IEND (counting stops past MAX_BLOCKS)."""
    pos, count = 8, 0
    while pos + 8 <= len(data) and count <= MAX_BLOCKS:
        count += 1
        if data[pos + 4 : pos + 8] == b"IEND":
            break
        pos += 12 + int.from_bytes(data[pos : pos + 4], "big")
    return count


def _jpeg_blocks(data: bytes) -> int:
    """Steps of Pillow's JPEG header parser before the first scan: one per segment
    and one per stray or fill byte (counting stops past MAX_BLOCKS)."""
    pos, count = 2, 0
    while count <= MAX_BLOCKS:
        ff = data.find(b"\xff", pos)
        if ff < 0:
            break
        end = _FILL_BYTES.match(data, ff).end()  # type: ignore[union-attr]
        count += end - pos
        if end >= len(data):
            break
        marker, pos = 0xFF00 | data[end], end + 1
        if marker == 0xFFDA:  # start of scan: libjpeg takes over
            break
        if marker == 0xFF00:  # an escaped 0xFF, skipped
            continue
        entry = JpegImagePlugin.MARKER.get(marker)
        if entry is None:  # Pillow stops here with an error
            break
        if entry[2] is not None:  # a segment with a length; Pillow skips the rest
            pos += int.from_bytes(data[pos : pos + 2], "big")
    return count


def _gif_blocks(data: bytes) -> int:
    """Blocks and stray bytes before the first GIF frame (counting stops past
    MAX_BLOCKS); Pillow decodes the frame itself in C."""
    if len(data) < 13:
        return 0
    pos, count = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0), 0
    while pos < len(data) and count <= MAX_BLOCKS:
        count += 1
        byte, pos = data[pos], pos + 1
        if byte in b",;":  # the first frame, or the end
            break
        if byte == 0x21:  # an extension: a label, then sub-blocks up to an empty one
            pos += 1
            while pos < len(data) and data[pos] and count <= MAX_BLOCKS:
                count += 1
                pos += 1 + data[pos]
            pos += 1
    return count


def _tiff_blocks(data: bytes) -> int:
    """Entries of the first TIFF directory, or the most values of one numeric tag
    in it if more (Pillow expands those into Python tuples)."""
    order = ">" if data[:2] == b"MM" else "<"
    big = data[2] == 43  # BigTIFF, as Pillow tells it
    most = 0
    try:
        if big:
            (ifd,) = struct.unpack_from(order + "Q", data, 8)
            (most,) = struct.unpack_from(order + "Q", data, ifd)
            head, entry = ifd + 8, struct.Struct(order + "HHQ8x")
        else:
            (ifd,) = struct.unpack_from(order + "L", data, 4)
            (most,) = struct.unpack_from(order + "H", data, ifd)
            head, entry = ifd + 2, struct.Struct(order + "HHL4x")
        for i in range(min(most, MAX_BLOCKS + 1)):
            _, kind, count = entry.unpack_from(data, head + i * entry.size)
            if kind not in (1, 2, 7):  # BYTE, ASCII and UNDEFINED stay bytes
                most = max(most, count)
    except struct.error:  # truncated: Pillow reports it
        pass
    return most


def _check_blocks(data: bytes) -> None:
    """Reject files that Pillow would take seconds and gigabytes merely to open
    (see :data:`MAX_BLOCKS`) and JPEGs with over :data:`MAX_JPEG_SCANS` scans."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        kind, blocks = "PNG chunks", _png_blocks(data)
    elif data.startswith(b"\xff\xd8\xff"):
        scans = data.count(b"\xff\xda")  # SOS markers; metadata can only add some
        if scans > MAX_JPEG_SCANS:
            raise ImageError(
                f"the JPEG has {scans} scans, the limit is {MAX_JPEG_SCANS}: "
                "so many progressive scans would take minutes to decode"
            )
        kind, blocks = "JPEG header segments or stray bytes", _jpeg_blocks(data)
    elif data[:6] in (b"GIF87a", b"GIF89a"):
        kind, blocks = "GIF blocks before the first frame", _gif_blocks(data)
    elif data[:4] in TiffImagePlugin.PREFIXES:
        kind, blocks = "TIFF tags or values in one TIFF tag", _tiff_blocks(data)
    else:
        return
    if blocks > MAX_BLOCKS:
        raise ImageError(
            f"the file has over {MAX_BLOCKS:,} {kind}, the limit: "
            "such a file would take minutes and gigabytes to open"
        )


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


def tensor_to_image(x: torch.Tensor) -> Image.Image:
    """Turn a (1, C, H, W), (C, H, W) or (H, W) tensor into a PIL 'L'/'RGB' image.

    Values are clamped to [0, 1] (NaN becomes 0) and rounded to 8 bits, for
    display or download.
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


def grace_hopper() -> Image.Image:
    """Return matplotlib's public-domain portrait of Grace Hopper as an RGB image."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as f:  # type: ignore[union-attr]
            img = Image.open(f)
            img.load()
            return img.convert("RGB")
    with Image.open(path) as img:
        return img.convert("RGB")


# Head and shoulders of the 512x600 portrait, framed like a CelebA photo.
GRACE_HOPPER_FACE_BOX = (100, 0, 412, 312)


def grace_hopper_face() -> Image.Image:
    """Grace Hopper's face, cropped square and framed like the CelebA images
    the face models were trained on (the full portrait shows her uniform)."""
    return grace_hopper().crop(GRACE_HOPPER_FACE_BOX)


def rendered_digit(digit: int, size: int = 28) -> Image.Image:
    """A digit drawn with Pillow's bundled font, white on black like MNIST.

    A built-in example that needs no dataset: it is rendered, not taken
    from MNIST, so the dashboard shows a digit model at work anywhere.
    """
    from PIL import ImageDraw, ImageFont

    if not 0 <= int(digit) <= 9:
        raise ValueError(f"digit must be 0..9, got {digit!r}")
    img = Image.new("L", (size, size), 0)
    font = ImageFont.load_default(size=round(size * 0.86))
    ImageDraw.Draw(img).text(
        (size / 2, size / 2),
        str(int(digit)),
        fill=255,
        font=font,
        anchor="mm",
        stroke_width=max(1, size // 28),
        stroke_fill=255,
    )
    return img
