"""Crafted user images for lipnet.data.load_image: valid-but-odd ones and hostile ones.

Every image is made here, in memory, with Pillow, numpy or by hand (no data
files). Valid-odd images must give a finite float tensor in [0, 1] of the model's
shape; hostile ones an ImageError that says why, quickly. Cases that could take
much memory (huge headers, bombs) run in a subprocess, one forked child each, so
that their peak RSS growth can be measured and asserted.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin, features

from lipnet import data
from lipnet.data import ImageError

SPECS = {"gray28": [1, 28, 28], "rgb64": [3, 64, 64]}
SECONDS = 2.0
"""Time limit for rejecting a hostile image (and loading a small valid one)."""
LARGE_SECONDS = 5.0
"""Time limit for loading a valid image at the 16-megapixel limit."""
RSS_MB = 300
"""Limit on the peak RSS growth of one load_image call in the subprocess."""

pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning",  # Pillow's notices on corrupt EXIF and TIFF tags
    "ignore::PIL.Image.DecompressionBombWarning",
)


class Case(NamedTuple):
    build: Callable[[], bytes]
    error: str | None = None
    """Regex the ImageError message must match; None for a valid image."""
    heavy: bool = False
    """Run in a forked child of a subprocess, with its peak RSS measured."""
    suffix: str | None = None
    """Pass the bytes as a file with this name suffix instead of as bytes."""
    no_pillow_limit: bool = False
    """Run with Pillow's global bomb limit off: load_image must not rely on it."""


# --------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------


def encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def photo(size: tuple[int, int] = (48, 40), mode: str = "RGB") -> Image.Image:
    return Image.effect_mandelbrot(size, (-2, -1, 1, 1), 40).convert(mode)


def chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def zeros_zlib(size: int) -> bytes:
    """A zlib stream of ``size`` zero bytes, made at once by repeating one
    fully flushed deflate block of 1 MiB (so 700 MB take 0.1 s, not 3 s)."""
    mib, zeros = 1 << 20, bytes(1 << 20)
    count, rest = divmod(size, mib)
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    adler = 1
    for _ in range(count):
        adler = zlib.adler32(zeros, adler)
    body = (block.compress(zeros) + block.flush(zlib.Z_FULL_FLUSH)) * count
    body += tail.compress(zeros[:rest]) + tail.flush()
    return b"\x78\xda" + body + struct.pack(">I", zlib.adler32(zeros[:rest], adler))


def png(
    width: int,
    height: int,
    depth: int = 8,
    color: int = 0,
    rows: bytes | None = None,
    extra: bytes = b"",
    header_only: bool = False,
) -> bytes:
    """A PNG built by hand; ``rows`` are the filtered scanlines (zeros if None).

    ``header_only``: the IDAT holds 64 bytes, whatever the size says.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    size = (1 + (width * channels * depth + 7) // 8) * height
    if header_only:
        idat = zlib.compress(bytes(64))
    else:
        idat = zlib.compress(rows) if rows is not None else zeros_zlib(size)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + extra
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def png16(channels: int) -> bytes:
    """An 8×8 16-bit PNG (gray, gray+alpha or RGB), which Pillow cannot write."""
    rng = np.random.default_rng(channels)
    a = rng.integers(0, 65536, (8, 8 * channels), dtype=np.uint16).astype(">u2")
    rows = b"".join(b"\0" + row.tobytes() for row in a)
    return png(8, 8, 16, {1: 0, 2: 4, 3: 2}[channels], rows)


def ztxt_bomb() -> bytes:
    """A zTXt text chunk that inflates to 200 MB."""
    return png(8, 8, extra=chunk(b"zTXt", b"comment\0\0" + zeros_zlib(200 << 20)))


def exif(*entries: tuple[int, int, int, bytes], next_ifd: int = 0) -> bytes:
    """An 'Exif' block: a little-endian TIFF header and one IFD at offset 8."""
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")
        for tag, kind, count, value in entries
    )
    return b"Exif\0\0II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", next_ifd)


def orientation(value: int) -> tuple[int, int, int, bytes]:
    return (0x0112, 3, 1, struct.pack("<H", value))


BAD_EXIF = {
    "truncated-ifd": b"Exif\0\0MM\0*\0\0\0\x08\0\x05\x01\x12\0\x03",
    "offset-beyond": b"Exif\0\0II*\0" + struct.pack("<I", 0x7FFFFFF0),
    "ifd-loop": exif(orientation(6), next_ifd=8),  # the next IFD is this one
    "orientation-ascii": exif((0x0112, 2, 4, b"six\0")),
    "orientation-9": exif(orientation(9)),
    "count-beyond": exif((0x010F, 2, 0x7FFFFFFF, struct.pack("<I", 26))),
}
"""Malformed EXIF blocks; EXIF is optional, so they must not reject the image."""


def exif_jpeg(block: bytes) -> bytes:
    return encode(photo(), "JPEG", quality=90, exif=block)


def jpeg_with(insert: bytes) -> bytes:
    """A small JPEG with ``insert`` placed after its first (APP0) segment."""
    jpeg = encode(photo(), "JPEG", quality=80)
    end = 4 + int.from_bytes(jpeg[4:6], "big")
    return jpeg[:end] + insert + jpeg[end:]


def jpeg_sof_size(width: int, height: int) -> bytes:
    jpeg = bytearray(encode(photo((16, 16)), "JPEG"))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(jpeg)


def jpeg_scan_bomb() -> bytes:
    """A progressive JPEG whose last, tiny scan is repeated 1000 times."""
    jpeg = encode(Image.new("L", (2000, 2000), 128), "JPEG", progressive=True)
    last = jpeg[jpeg.rindex(b"\xff\xda") : -2]
    return jpeg[:-2] + last * 1000 + b"\xff\xd9"


def tiff(tags: list[tuple[int, int, list[int]]], pixels: bytes) -> bytes:
    """A little-endian TIFF, built by hand: pixels at offset 8, then one IFD."""
    codes = {3: "H", 4: "I"}
    ifd = 8 + len(pixels) + len(pixels) % 2
    extra_at = ifd + 2 + 12 * len(tags) + 4
    entries, extra = b"", b""
    for tag, kind, values in sorted(tags):
        raw = struct.pack(f"<{len(values)}{codes[kind]}", *values)
        if len(raw) <= 4:
            field = raw.ljust(4, b"\0")
        else:
            field = struct.pack("<I", extra_at + len(extra))
            extra += raw + bytes(len(raw) % 2)
        entries += struct.pack("<HHI", tag, kind, len(values)) + field
    head = b"II*\0" + struct.pack("<I", ifd) + pixels + bytes(len(pixels) % 2)
    return head + struct.pack("<H", len(tags)) + entries + bytes(4) + extra


def gray_tiff(
    width: int,
    height: int,
    strips: int = 1,
    extra: dict[int, tuple[int, list[int]]] | None = None,
) -> bytes:
    """An 8-bit gray TIFF; its ``strips`` strips all point at the same pixels,
    ``extra`` adds or replaces tags ({tag: (type, values)})."""
    rows = -(-height // strips)
    pixels = bytes(min(width * rows, 1 << 16))  # short for absurd sizes
    fields: dict[int, tuple[int, list[int]]] = {
        256: (4, [width]),
        257: (4, [height]),
        258: (3, [8]),
        259: (3, [1]),
        262: (3, [1]),
        273: (4 if strips == 1 else 3, [8] * strips),
        277: (3, [1]),
        278: (4, [rows]),
        279: (4 if strips == 1 else 3, [len(pixels)] * strips),
    }
    fields.update(extra or {})
    return tiff([(tag, kind, v) for tag, (kind, v) in fields.items()], pixels)


def bigtiff_entry_count() -> bytes:
    entry = struct.pack("<HHQQ", 256, 3, 1, 8)
    return b"II+\0" + struct.pack("<HHQQ", 8, 0, 16, 2**40) + entry * 4 + bytes(8)


LZW_ONE_PIXEL = b"\x02\x02\x44\x01\x00"
"""GIF image data for one pixel of colour 0: clear, 0, end (3-bit codes)."""


def gif(
    screen: tuple[int, int],
    frames: int = 1,
    frame_size: tuple[int, int] = (1, 1),
    before: bytes = b"",
    version: bytes = b"GIF89a",
) -> bytes:
    """A GIF built by hand: a 2-colour palette, then ``frames`` 1-pixel frames."""
    head = (
        version
        + struct.pack("<HHBBB", *screen, 0x80, 1, 0)
        + b"\x00\x00\x00\xff\xff\xff"
    )
    frame = b"," + struct.pack("<HHHHB", 0, 0, *frame_size, 0) + LZW_ONE_PIXEL
    return head + before + frame * frames + b";"


def webp_canvas(width: int, height: int) -> bytes:
    """An animated WEBP of two 16×16 frames whose canvas claims another size."""
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    webp = bytearray(encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]))
    assert webp[12:16] == b"VP8X"
    webp[24:30] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return bytes(webp)


def bmp_rle8(width: int, height: int) -> bytes:
    """An 8-bit RLE BMP (decoded by Pillow in Python): runs of 255 pixels."""
    runs = [min(255, width - x) for x in range(0, width, 255)]
    row = b"".join(bytes([n, 7]) for n in runs) + b"\0\0"
    pixels = row * height + b"\0\1"
    header = struct.pack(
        "<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 0, 0, 256, 0
    )
    offset = 14 + 40 + 1024
    file_header = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return file_header + header + bytes(range(256)) * 4 + pixels


def patched(payload: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(payload)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def lying_ico() -> bytes:
    """The security review's ICO: a 16×16 entry for a 13000×13000 RGBA PNG."""
    body = png(13_000, 13_000, 8, 6)
    entry = struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(body), 22)
    return struct.pack("<HHH", 0, 1, 1) + entry + body


def small_lying_ico() -> bytes:
    """An ICO with a 16×16 entry for a 64×64 PNG."""
    body = encode(Image.new("RGBA", (64, 64), (0, 0, 0, 255)), "PNG")
    entry = struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(body), 22)
    return struct.pack("<HHH", 0, 1, 1) + entry + body


def animated(fmt: str, n: int = 3, **kwargs: object) -> bytes:
    frames = [photo((24, 20)).rotate(30 * i) for i in range(n)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], **kwargs)


def avif() -> bytes:
    if not features.check("avif"):
        pytest.skip("Pillow built without AVIF")
    return encode(photo(), "AVIF", quality=60)


def float_tiff(values: np.ndarray) -> bytes:
    return encode(Image.fromarray(values.astype(np.float32), "F"), "TIFF")


def extreme_floats() -> np.ndarray:
    a = np.linspace(-3e38, 3e38, 24 * 32, dtype=np.float32).reshape(24, 32)
    a[0, :4] = [np.nan, np.inf, -np.inf, np.nan]
    return a


def nan_floats() -> np.ndarray:
    a = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (24, 1))
    a[::3, ::2] = np.nan
    return a


def int32_tiff() -> bytes:
    a = np.arange(-500_000, 500_000, 1250, dtype=np.int32)[:768].reshape(24, 32)
    return encode(Image.fromarray(a, "I"), "TIFF")


def palette_png_trns() -> bytes:
    img = photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(img, "PNG", transparency=3)


def palette_gif_trns() -> bytes:
    img = photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    return encode(img, "GIF", transparency=0)


def multipage_tiff() -> bytes:
    first, second = photo((8, 8)), photo((300, 300), "L")
    return encode(first, "TIFF", save_all=True, append_images=[second])


def mpo() -> bytes:
    return encode(
        photo((32, 24)), "MPO", save_all=True, append_images=[photo((64, 48))]
    )


def random_bytes() -> bytes:
    return np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()


# --------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------

NOT_IMAGE = "not a recognised image"
BROKEN = "truncated|corrupt|could not open"
RATIO = r"pixels per byte.*decompression bomb"
TOO_BIG = "too large|decompression bomb"
BLOCKS = r"over 100,000 .*(chunks|segments|blocks|TIFF tags)"

VALID: dict[str, Case] = {
    "png-1x1-gray": Case(lambda: png(1, 1)),
    "png-1x1-rgba-transparent": Case(lambda: encode(Image.new("RGBA", (1, 1)), "PNG")),
    "png-1x4000-tall-strip": Case(lambda: png(1, 4000)),
    "png-4000x1-wide-strip": Case(lambda: png(4000, 1, 8, 2)),
    "png-16bit-gray": Case(lambda: png16(1)),
    "png-16bit-gray-alpha": Case(lambda: png16(2)),
    "png-16bit-rgb": Case(lambda: png16(3)),
    "png-2bit-gray": Case(lambda: png(9, 7, 2, 0, b"\0\xe4\x1b\xff" * 7)),
    "png-palette-trns": Case(palette_png_trns),
    "png-1bit-palette": Case(lambda: encode(photo().convert("1").convert("P"), "PNG")),
    "png-la": Case(lambda: encode(photo(mode="LA"), "PNG")),
    "png-animated-apng": Case(lambda: animated("PNG")),
    "png-malformed-exif-chunk": Case(
        lambda: png(8, 8, extra=chunk(b"eXIf", BAD_EXIF["ifd-loop"][6:]))
    ),
    "png-as-.jpg-file": Case(lambda: encode(photo(), "PNG"), suffix=".jpg"),
    "jpeg-1x1": Case(lambda: encode(Image.new("RGB", (1, 1), "red"), "JPEG")),
    "jpeg-cmyk": Case(lambda: encode(photo(mode="CMYK"), "JPEG")),
    "jpeg-grayscale-progressive": Case(
        lambda: encode(photo(mode="L"), "JPEG", progressive=True)
    ),
    "jpeg-exif-orientation-8": Case(lambda: exif_jpeg(exif(orientation(8)))),
    **{
        f"jpeg-exif-{kind}": Case(lambda block=block: exif_jpeg(block))
        for kind, block in BAD_EXIF.items()
    },
    "jpeg-as-.gif-file": Case(lambda: encode(photo(), "JPEG"), suffix=".gif"),
    "mpo-frames-of-two-sizes": Case(mpo),
    "gif-87a-1x1": Case(lambda: gif((1, 1), version=b"GIF87a")),
    "gif-1000-frames": Case(lambda: gif((16, 16), frames=1000)),
    "gif-palette-transparency": Case(palette_gif_trns),
    "tiff-float-nan": Case(lambda: float_tiff(nan_floats())),
    "tiff-float-all-nan": Case(lambda: float_tiff(np.full((8, 8), np.nan))),
    "tiff-float-extremes-inf": Case(lambda: float_tiff(extreme_floats())),
    "tiff-int32-negative": Case(int32_tiff),
    "tiff-cmyk-lzw": Case(
        lambda: encode(photo(mode="CMYK"), "TIFF", compression="tiff_lzw")
    ),
    "tiff-1bit": Case(lambda: encode(photo(mode="1"), "TIFF")),
    "tiff-multipage-first-small": Case(multipage_tiff),
    "tiff-hand-made-1x1": Case(lambda: gray_tiff(1, 1)),
    "webp-lossless-rgba": Case(
        lambda: encode(photo(mode="RGBA"), "WEBP", lossless=True)
    ),
    "webp-animated": Case(lambda: animated("WEBP")),
    "avif-rgb": Case(avif),
    "bmp-1x1": Case(lambda: encode(Image.new("RGB", (1, 1), "blue"), "BMP")),
    "bmp-1bit": Case(lambda: encode(photo(mode="1"), "BMP")),
    "bmp-rle8-small": Case(lambda: bmp_rle8(300, 200)),
    "bmp-top-down": Case(lambda: patched(encode(photo(), "BMP"), 22, "<i", -40)),
    "tga-rle-rgba": Case(
        lambda: encode(photo(mode="RGBA"), "TGA", compression="tga_rle")
    ),
    # At the pixel limit: a few kilobytes that decode to 16 megapixels.
    "png-16mp-rgba-at-limit": Case(lambda: png(4000, 4000, 8, 6), heavy=True),
    "png-16mp-16bit-at-limit": Case(lambda: png(4000, 4000, 16, 0), heavy=True),
}

HOSTILE: dict[str, Case] = {
    "empty-bytes": Case(lambda: b"", "empty"),
    "zero-byte-file": Case(lambda: b"", "empty", suffix=".png"),
    "text-file": Case(
        lambda: b"hello\nthis is a note\n" * 10, NOT_IMAGE, suffix=".txt"
    ),
    "text-named-.png": Case(
        lambda: b"not really a PNG\n" * 10, NOT_IMAGE, suffix=".png"
    ),
    "html": Case(
        lambda: b"<!DOCTYPE html><html><body><img src=x></body></html>", NOT_IMAGE
    ),
    "svg": Case(
        lambda: (
            b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9">'
            b'<rect width="9" height="9"/></svg>'
        ),
        NOT_IMAGE,
        suffix=".svg",
    ),
    "pdf-header": Case(
        lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", NOT_IMAGE
    ),
    "eps-header": Case(
        lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
        NOT_IMAGE,
    ),
    "eps-dos-binary-header": Case(
        lambda: b"\xc5\xd0\xd3\xc6" + struct.pack("<6I", 30, 10, 0, 0, 0, 0) + b"%!PS",
        NOT_IMAGE,
    ),
    "gzip": Case(lambda: zlib.compress(b"x" * 100), NOT_IMAGE),
    "zip": Case(lambda: b"PK\x03\x04" + bytes(60), NOT_IMAGE),
    "random-bytes": Case(random_bytes, NOT_IMAGE),
    "pcx-not-allowed": Case(lambda: encode(photo(), "PCX"), NOT_IMAGE),
    "ico-not-allowed": Case(lambda: encode(photo((16, 16)), "ICO"), NOT_IMAGE),
    "qoi-not-allowed": Case(lambda: encode(photo(), "QOI"), NOT_IMAGE),
    "ppm-not-allowed": Case(lambda: encode(photo(), "PPM"), NOT_IMAGE),
    "png-truncated": Case(lambda: encode(photo(), "PNG")[:300], BROKEN),
    "png-header-only": Case(lambda: png(8, 8)[:33], BROKEN),
    "png-bad-crc": Case(lambda: patched(png(8, 8), 29, ">I", 0), BROKEN),
    "png-zero-width": Case(lambda: png(0, 8), BROKEN + "|empty size"),
    "png-bad-bit-depth": Case(lambda: png(8, 8, 3, 0), BROKEN),
    "png-20mp-wide-header": Case(
        lambda: png(20_000_000, 1, 1, header_only=True), TOO_BIG
    ),
    "jpeg-soi-only": Case(lambda: b"\xff\xd8\xff", BROKEN),
    "jpeg-truncated": Case(lambda: encode(photo((200, 200)), "JPEG")[:900], BROKEN),
    "jpeg-sof-65500x65500": Case(lambda: jpeg_sof_size(65_500, 65_500), TOO_BIG),
    "gif-truncated": Case(lambda: encode(photo(), "GIF")[:200], BROKEN),
    "gif-no-frame": Case(lambda: gif((8, 8), frames=0), BROKEN),
    "tiff-truncated": Case(lambda: encode(photo(), "TIFF")[:500], BROKEN),
    "tiff-strip-beyond-file": Case(
        lambda: gray_tiff(8, 8, extra={273: (4, [10**6])}), BROKEN
    ),
    "tiff-zero-width": Case(lambda: gray_tiff(0, 8), BROKEN + "|empty size"),
    "webp-truncated": Case(lambda: encode(photo(), "WEBP")[:60], BROKEN),
    "bmp-truncated": Case(lambda: encode(photo(), "BMP")[:100], BROKEN),
    "bmp-bad-bit-depth": Case(
        lambda: patched(encode(photo(), "BMP"), 28, "<H", 7), BROKEN
    ),
    "ico-16x16-entry-64x64-png": Case(small_lying_ico, NOT_IMAGE),
    # Big headers and bombs: measured in a subprocess.
    "ico-16x16-entry-13000x13000-png": Case(lying_ico, NOT_IMAGE, heavy=True),
    "png-ihdr-100000x100000": Case(
        lambda: png(100_000, 100_000, 1, header_only=True), TOO_BIG, heavy=True
    ),
    "png-ihdr-100000x100000-pillow-limit-off": Case(
        lambda: png(100_000, 100_000, 1, header_only=True),
        TOO_BIG,
        True,
        no_pillow_limit=True,
    ),
    "png-bilevel-10000x10000-bomb": Case(lambda: png(10_000, 10_000, 1), TOO_BIG, True),
    # 2 KB claiming 16 MP: refused by its pixels per byte before decoding.
    "png-rgba-4000x4000-truncated": Case(
        lambda: png(4000, 4000, 8, 6)[:2000] + chunk(b"IEND", b""), RATIO, True
    ),
    "png-150k-unknown-chunks": Case(
        lambda: png(8, 8, extra=chunk(b"teSt", b"") * 150_000), BLOCKS, True
    ),
    "png-ztxt-200mb-bomb": Case(ztxt_bomb, BROKEN, True),
    "jpeg-sof-65500x65500-pillow-limit-off": Case(
        lambda: jpeg_sof_size(65_500, 65_500), TOO_BIG, True, no_pillow_limit=True
    ),
    "jpeg-1000-scans-2000x2000": Case(jpeg_scan_bomb, "scans", True),
    "jpeg-150k-app-segments": Case(
        lambda: jpeg_with(b"\xff\xe5\0\x02" * 150_000), BLOCKS, True
    ),
    "jpeg-150k-stray-bytes": Case(lambda: jpeg_with(bytes(150_000)), BLOCKS, True),
    "jpeg-150k-fill-bytes": Case(lambda: jpeg_with(b"\xff" * 150_000), BLOCKS, True),
    "gif-screen-65535x65535-pillow-limit-off": Case(
        lambda: gif((65_535, 65_535)), TOO_BIG, True, no_pillow_limit=True
    ),
    "gif-frame-60000x60000-in-1x1-screen": Case(
        lambda: gif((1, 1), frame_size=(60_000, 60_000)), TOO_BIG, True
    ),
    "gif-comment-150k-sub-blocks": Case(
        lambda: gif((8, 8), before=b"!\xfe" + b"\x01a" * 150_000 + b"\0"), BLOCKS, True
    ),
    "gif-150k-stray-bytes": Case(
        lambda: gif((8, 8), before=bytes(150_000)), BLOCKS, True
    ),
    "tiff-2^31x2^31-pillow-limit-off": Case(
        lambda: gray_tiff(2**31, 2**31), TOO_BIG, True, no_pillow_limit=True
    ),
    "tiff-150k-strips": Case(
        lambda: gray_tiff(1, 150_000, strips=150_000), BLOCKS, True
    ),
    "tiff-bits-per-sample-200k-values": Case(
        lambda: gray_tiff(8, 8, extra={258: (3, [8] * 200_000)}), BLOCKS, True
    ),
    "bigtiff-2^40-entries": Case(bigtiff_entry_count, BLOCKS, True),
    "webp-canvas-16384x16384-pillow-limit-off": Case(
        lambda: webp_canvas(16_384, 16_384), TOO_BIG, True, no_pillow_limit=True
    ),
    "bmp-30000x30000-pillow-limit-off": Case(
        lambda: patched(encode(photo(), "BMP"), 18, "<ii", 30_000, 30_000),
        TOO_BIG,
        True,
        no_pillow_limit=True,
    ),
    "bmp-rle8-2000x2000-python-decoder": Case(
        lambda: bmp_rle8(2000, 2000), "Python", True
    ),
    "tga-65535x65535": Case(
        lambda: patched(encode(photo(), "TGA"), 12, "<HH", 65_535, 65_535),
        TOO_BIG,
        True,
    ),
}

CASES = {**VALID, **HOSTILE}


def source(case: Case, payload: bytes, tmp_path: Path) -> bytes | Path:
    if case.suffix is None:
        return payload
    path = tmp_path / f"upload{case.suffix}"
    path.write_bytes(payload)
    return path


def check_tensor(x: torch.Tensor, shape: list[int]) -> None:
    assert x.shape == (1, *shape) and x.dtype == torch.float32
    assert bool(torch.isfinite(x).all())
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def light(cases: dict[str, Case]) -> list[str]:
    return [name for name, case in cases.items() if not case.heavy]


def heavy_runs() -> list[tuple[str, str]]:
    return [
        (name, spec)
        for name, case in CASES.items()
        if case.heavy
        for spec in (SPECS if case.error is None else ["rgb64"])
    ]


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


def test_enough_crafted_images() -> None:
    assert len(CASES) >= 50 and len(VALID) >= 20 and len(HOSTILE) >= 20
    assert not VALID.keys() & HOSTILE.keys()


@pytest.mark.parametrize("spec", list(SPECS))
@pytest.mark.parametrize("name", light(VALID))
def test_valid_odd_image_loads(name: str, spec: str, tmp_path: Path) -> None:
    case = VALID[name]
    src = source(case, case.build(), tmp_path)
    start = time.perf_counter()
    x = data.load_image(src, {"input_shape": SPECS[spec]})
    assert time.perf_counter() - start < SECONDS
    check_tensor(x, SPECS[spec])


@pytest.mark.parametrize("name", light(HOSTILE))
def test_hostile_image_is_rejected(name: str, tmp_path: Path) -> None:
    case = HOSTILE[name]
    assert case.error is not None
    src = source(case, case.build(), tmp_path)
    start = time.perf_counter()
    with pytest.raises(ImageError, match=case.error) as info:
        data.load_image(src, {"input_shape": SPECS["rgb64"]})
    assert time.perf_counter() - start < SECONDS
    assert len(str(info.value)) > 20  # a sentence that says why


def test_decoded_size_is_checked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A format whose header understates the size (as ICO's directory can) is
    caught after decoding, by load_image and by image_to_tensor."""
    real_load = PngImagePlugin.PngImageFile.load

    def growing_load(self: PngImagePlugin.PngImageFile) -> object:
        out = real_load(self)
        self.im, self._size = Image.new(self.mode, (64, 64)).im, (64, 64)
        return out

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", growing_load)
    monkeypatch.setattr(data.images, "MAX_PIXELS", 1000)
    payload = png(16, 16)
    with pytest.raises(ImageError, match="64×64"):
        data.load_image(payload, {"input_shape": SPECS["gray28"]})
    lazy = Image.open(io.BytesIO(payload))
    assert lazy.size == (16, 16)
    with pytest.raises(ImageError, match="64×64"):
        data.image_to_tensor(lazy, {"input_shape": [1, 8, 8]})


CHILD = r"""
import json, os, resource, sys, time
import test_fuzz_images as t
from PIL import Image
from lipnet.data import ImageError, load_image

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

for arg in sys.argv[1:]:
    name, spec = arg.split(":")
    case = t.CASES[name]
    try:
        payload = case.build()
    except Exception as exc:
        print(json.dumps({"name": name, "spec": spec, "outcome": repr(exc)}))
        continue
    pid = os.fork()
    if pid == 0:  # the child's peak RSS starts at its current RSS
        if case.no_pillow_limit:
            Image.MAX_IMAGE_PIXELS = None
        out = {"name": name, "spec": spec}
        before, start = peak_mb(), time.perf_counter()
        try:
            x = load_image(payload, {"input_shape": t.SPECS[spec]})
            finite = bool(x.isfinite().all())
            lo, hi = float(x.min()), float(x.max())
            out.update(outcome="ok", shape=list(x.shape), finite=finite, lo=lo, hi=hi)
        except ImageError as exc:
            out.update(outcome="ImageError", message=str(exc))
        except BaseException as exc:
            out.update(outcome=type(exc).__name__, message=str(exc))
        out.update(seconds=time.perf_counter() - start, rss_mb=peak_mb() - before)
        print(json.dumps(out), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
"""


@pytest.fixture(scope="module")
def heavy_results() -> dict[tuple[str, str], dict]:
    """Run every heavy case in one subprocess, each in a forked child."""
    if sys.platform != "linux":  # ru_maxrss units and fork semantics differ
        pytest.skip("measures each case's peak RSS the Linux way")
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests")]),
        "OMP_NUM_THREADS": "1",
    }
    args = [f"{name}:{spec}" for name, spec in heavy_runs()]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [
        json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")
    ]
    return {(row["name"], row["spec"]): row for row in rows}


@pytest.mark.parametrize(("name", "spec"), heavy_runs())
def test_heavy_case_time_and_memory(
    name: str, spec: str, heavy_results: dict[tuple[str, str], dict]
) -> None:
    case, row = CASES[name], heavy_results.get((name, spec))
    assert row is not None, f"the child for {name} reported nothing"
    assert "seconds" in row, row  # the case could not be built
    assert row["rss_mb"] < RSS_MB, row
    if case.error is None:
        assert row["outcome"] == "ok", row
        assert row["seconds"] < LARGE_SECONDS, row
        assert row["shape"] == [1, *SPECS[spec]] and row["finite"], row
        assert 0.0 <= row["lo"] <= row["hi"] <= 1.0, row
    else:
        assert row["outcome"] == "ImageError", row
        assert row["seconds"] < SECONDS, row
        assert len(row["message"]) > 20, row
        assert re.search(case.error, row["message"]), row


def test_a_tiny_file_claiming_16_megapixels_is_refused_undecoded() -> None:
    """A lossless WebP of 4,000 × 4,000 flat pixels is under a kilobyte: refused
    from its header and size, before the ~250 MB decode."""
    buf = io.BytesIO()
    Image.new("RGB", (4000, 4000), (90, 90, 90)).save(buf, "WEBP", lossless=True)
    blob = buf.getvalue()
    assert len(blob) < 5_000
    spec = {"input_shape": [1, 28, 28]}
    with pytest.raises(ImageError, match=r"pixels per byte.*decompression bomb"):
        data.load_image(blob, spec)
    # A real photo's ratio passes: Grace Hopper re-encoded at 16x the pixels.
    photo = data.grace_hopper().resize((2400, 2048))
    buf = io.BytesIO()
    photo.save(buf, "WEBP", quality=80)
    assert data.load_image(buf.getvalue(), spec).shape == (1, 1, 28, 28)
