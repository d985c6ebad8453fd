"""CelebA subset: cached image loading of a binary task, and small galleries.

The labels (the attribute file, the images present) are
:mod:`~lipnet.data.celeba_labels`, the deterministic split
:mod:`~lipnet.data.celeba_split_rule`; their names are importable from here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .celeba_labels import CELEBA_ATTRIBUTE_COUNT as CELEBA_ATTRIBUTE_COUNT
from .celeba_labels import _celeba_index, attribute_rows
from .celeba_labels import celeba_index as celeba_index
from .celeba_labels import read_celeba_attributes as read_celeba_attributes
from .celeba_split_rule import SPLIT_RULE as SPLIT_RULE
from .celeba_split_rule import SPLITS as SPLITS
from .celeba_split_rule import celeba_split
from .celeba_split_rule import describe_split as describe_split
from .paths import PathLike, cache_dir

__all__ = [
    "ALL_FOLDERS",
    "CELEBA_ATTRIBUTE_COUNT",
    "DEFAULT_FOLDERS",
    "SPLITS",
    "SPLIT_RULE",
    "celeba_split",
    "describe_split",
    "load_celeba",
    "read_celeba_attributes",
]

log = logging.getLogger(__name__)

_CELEBA_CACHE_VERSION = "celeba-v2"
DEFAULT_FOLDERS: tuple[str, ...] = ("img_celeba_128",)
"""The folder a config without ``image_folders`` reads (the first 15,000 faces)."""
ALL_FOLDERS: tuple[str, ...] = ("img_celeba_128", "img_align_celeba_89")
"""The first two shared folders: 25,000 faces."""
EVERY_FOLDER: tuple[str, ...] = (
    "img_celeba_128",
    "img_align_celeba_89",
    "img_align_celeba",
    "img_align_celeba_64x64_squashed",
)
"""All four shared folders: 51,460 faces."""


SQUASHED_FOLDER = "img_align_celeba_64x64_squashed"
"""The whole aligned 178 × 218 frame squashed to 64 × 64; rows 20–198 of 218
are the training framing (the shared data's README), stretched back square."""
_SQUASHED_BOX = (0.0, 64 * 20 / 218, 64.0, 64 * 198 / 218)


def _decode_square(path: Path, size: int) -> np.ndarray:
    """Decode one image, center-crop to a square, resize to ``size`` (BOX/LANCZOS).

    An image of the squashed folder is un-squashed instead: the rows of the
    training framing, resized to a square.
    """
    with Image.open(path) as im:
        im = im.convert("RGB")
        if path.parent.name == SQUASHED_FOLDER:
            return np.asarray(
                im.resize((size, size), Image.Resampling.LANCZOS, box=_SQUASHED_BOX),
                dtype=np.uint8,
            )
        w, h = im.size
        side = min(w, h)
        if (w, h) != (side, side):
            left, top = (w - side) // 2, (h - side) // 2
            im = im.crop((left, top, left + side, top + side))
        if side != size:
            method = (
                Image.Resampling.BOX
                if side % size == 0 and side > size
                else Image.Resampling.LANCZOS
            )
            im = im.resize((size, size), method)
        return np.asarray(im, dtype=np.uint8)


def _celeba_pixels(paths: list[Path], size: int) -> np.ndarray:
    """Return uint8 (N, S, S, 3) pixels for ``paths``; decoded once, cached as .npy."""
    h = hashlib.sha256()
    for p in paths:
        h.update(f"{p.parent.resolve()}/{p.name}".encode())
        h.update(b"\0" + str(p.stat().st_size).encode() + b"\n")
    key = hashlib.sha256(
        f"{_CELEBA_CACHE_VERSION}|{size}|{h.hexdigest()}".encode()
    ).hexdigest()[:24]
    stem = "+".join(sorted({p.parent.name for p in paths}))
    path = cache_dir() / "celeba" / f"{stem}-{size}px-{key}.npy"
    want = (len(paths), size, size, 3)
    if path.is_file():
        try:
            arr = np.load(path, allow_pickle=False)
            if arr.shape == want and arr.dtype == np.uint8:
                return arr
            log.warning(
                "ignoring cache %s: shape %s, expected %s", path, arr.shape, want
            )
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable cache %s: %s", path, exc)
    arr = np.empty(want, dtype=np.uint8)

    def work(i: int) -> None:
        try:
            arr[i] = _decode_square(paths[i], size)
        except (OSError, ValueError, SyntaxError) as exc:  # Pillow's decode errors
            msg = f"cannot decode CelebA image {paths[i]}: {exc}"
            raise ValueError(msg) from exc

    log.info(
        "decoding %d CelebA images at %d px (cached at %s)", len(paths), size, path
    )
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as ex:
        list(ex.map(work, range(len(paths)), chunksize=256))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return arr


def load_celeba(
    root: PathLike | None = None,
    attribute: str = "Mustache",
    image_size: int = 64,
    seed: int = 0,
    *,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    image_folders: str | Sequence[str] = DEFAULT_FOLDERS,
) -> dict[str, dict[str, Any]]:
    """Load the CelebA images present on disk as a binary task for ``attribute``.

    Returns ``{"train"|"val"|"test": {"images", "labels", "ids"}}`` with float32
    images (N, 3, S, S) in [0, 1], int64 labels (1 = attribute present) and the
    image file names. Only images that exist in one of ``root/<image_folders>``
    are used (any sizes: each is centre-cropped to a square and resized); the
    split follows :func:`celeba_split` over all of them. Decoded pixels are cached in
    :func:`cache_dir` so that later calls skip JPEG decoding.
    """
    _check_size(image_size)
    paths, ids, labels = _celeba_index(root, attribute, image_folders)
    pixels = _celeba_pixels(paths, image_size)
    position = {n: k for k, n in enumerate(ids)}
    parts = celeba_split(ids, labels, seed=seed, fractions=fractions)
    out: dict[str, dict[str, Any]] = {}
    for split, split_ids in parts.items():
        idx = np.array([position[n] for n in split_ids], dtype=np.int64)
        x = torch.from_numpy(pixels[idx]).permute(0, 3, 1, 2).float().div_(255.0)
        out[split] = {
            "images": x.contiguous(),
            "labels": torch.from_numpy(labels[idx]),
            "ids": split_ids,
        }
    return out


def _check_size(image_size: int) -> None:
    if not isinstance(image_size, int) or not 1 <= image_size <= 1024:
        raise ValueError(f"image_size must be an int in 1..1024, got {image_size!r}")


def _example_names(
    root: PathLike | None,
    attribute: str,
    seed: int,
    split: str,
    n: int | None,
    fractions: Sequence[float],
    image_folders: str | Sequence[str],
) -> tuple[list[Path], list[str], list[int]]:
    """(image paths, names, 0/1 labels) of the first ``n`` images of one split,
    positives and negatives alternating (all of them when ``n`` is None)."""
    paths, ids, labels = _celeba_index(root, attribute, image_folders)
    position = {name: k for k, name in enumerate(ids)}
    chosen = celeba_split(ids, labels, seed=seed, fractions=fractions)[split]
    pos = [i for i in chosen if labels[position[i]] == 1]
    neg = [i for i in chosen if labels[position[i]] == 0]
    mixed = [i for pair in zip(pos, neg, strict=False) for i in pair][:n]
    return (
        [paths[position[i]] for i in mixed],
        mixed,
        [int(labels[position[i]]) for i in mixed],
    )


def celeba_examples(
    root: PathLike | None = None,
    attribute: str = "Mustache",
    image_size: int = 64,
    seed: int = 0,
    split: str = "test",
    n: int = 64,
    *,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    image_folders: str | Sequence[str] = DEFAULT_FOLDERS,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The first ``n`` images of one split, decoded on their own (no full load).

    Same split and preprocessing as :func:`load_celeba`, for a gallery that
    must not decode 15,000 images. Positives and negatives alternate so a
    short gallery shows both classes; the list therefore stops when the rarer
    class runs out (:func:`celeba_example_count` says where).
    """
    _check_size(image_size)
    paths, mixed, labels = _example_names(
        root, attribute, seed, split, n, fractions, image_folders
    )
    pixels = np.stack([_decode_square(p, image_size) for p in paths])
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255.0)
    y = torch.tensor(labels)
    return x.contiguous(), y, mixed


def celeba_example_attributes(
    root: PathLike | None = None,
    attribute: str = "Mustache",
    seed: int = 0,
    split: str = "test",
    n: int = 64,
    *,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    image_folders: str | Sequence[str] = DEFAULT_FOLDERS,
) -> tuple[list[str], list[str], np.ndarray]:
    """The attribute rows of exactly the images :func:`celeba_examples` returns
    for the same arguments: (image names, the 40 attribute names, an int8
    (n, 40) matrix of 1 / -1). Decodes no image."""
    _, mixed, _ = _example_names(
        root, attribute, seed, split, n, fractions, image_folders
    )
    attrs, rows = attribute_rows(root, mixed)
    return mixed, attrs, rows


def celeba_example_count(
    root: PathLike | None = None,
    attribute: str = "Mustache",
    seed: int = 0,
    split: str = "test",
    *,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    image_folders: str | Sequence[str] = DEFAULT_FOLDERS,
) -> dict[str, int]:
    """How many images :func:`celeba_examples` can return at most (``examples``:
    twice the rarer class of the split, since positives and negatives
    alternate), with the split's ``positives`` and ``negatives``. Decodes no
    image."""
    _, ids, labels = _celeba_index(root, attribute, image_folders)
    position = {name: k for k, name in enumerate(ids)}
    chosen = celeba_split(ids, labels, seed=seed, fractions=fractions)[split]
    pos = sum(int(labels[position[i]]) for i in chosen)
    neg = len(chosen) - pos
    return {"examples": 2 * min(pos, neg), "positives": pos, "negatives": neg}
