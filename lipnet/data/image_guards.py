"""Format guards for user images: what is refused before Pillow decodes a pixel.

Some files cost seconds and gigabytes merely to *open*: tens of thousands of
tiny PNG chunks, JPEG segments, GIF blocks or TIFF tag values, all handled in
Python while Pillow reads the header (:data:`MAX_BLOCKS`); thousands of
progressive JPEG scans (:data:`MAX_JPEG_SCANS`); a tiny file that claims
millions of pixels (:data:`MAX_PIXELS_PER_BYTE`). :func:`_check_blocks`
counts them from the raw bytes and :func:`_check_ratio` compares the header's
size with the file's, so such a file is refused with an :class:`ImageError`.
"""

from __future__ import annotations

import re
import struct

from PIL import JpegImagePlugin, TiffImagePlugin

MAX_PIXELS_PER_BYTE = 1_000
"""Pixels per byte of file above which a large image is refused undecoded
(photos and scans compress to well under 300; a flat PNG reaches ~400)."""
RATIO_FROM_PIXELS = 1_000_000
"""Images up to a megapixel are cheap to decode whatever their ratio."""
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


class ImageError(ValueError):
    """A user image was rejected: not an image, corrupt, too large, or a bad spec."""


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
