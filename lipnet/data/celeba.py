"""CelebA subset: the attribute file, the deterministic split, cached image loading."""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .paths import PathLike, cache_dir, data_dir

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

CELEBA_ATTRIBUTE_COUNT = 40
SPLITS: tuple[str, str, str] = ("train", "val", "test")

SPLIT_RULE = (
    "Stratified by label: for each label value, its image ids are sorted, shuffled "
    "with numpy.random.default_rng(seed).permutation (a fresh generator per label) "
    "and cut into consecutive train/val/test parts of round(n*f_train), "
    "round(n*f_val) and the remaining ids; each split's ids are then sorted."
)
"""One-sentence description of :func:`celeba_split`, for model cards."""


def describe_split(
    seed: int = 0, fractions: Sequence[float] = (0.7, 0.15, 0.15)
) -> str:
    """Return :data:`SPLIT_RULE` with the actual seed and fractions filled in."""
    ft, fv, fs = (float(f) for f in fractions)
    return f"{SPLIT_RULE} Here seed={seed}, train/val/test = {ft:g}/{fv:g}/{fs:g}."


def _attr_format_error(path: Path, lines: list[bytes], count: int) -> ValueError:
    """Locate the first malformed row of an attribute file (slow path, errors only)."""
    rows = [ln for ln in lines[2:] if ln.strip()]
    for i, ln in enumerate(rows):
        parts = ln.split()
        lineno = i + 3
        if len(parts) != CELEBA_ATTRIBUTE_COUNT + 1:
            return ValueError(
                f"{path}, line {lineno}: expected an image name and "
                f"{CELEBA_ATTRIBUTE_COUNT} values, got {len(parts)} fields"
            )
        bad = [p for p in parts[1:] if p not in (b"1", b"-1")]
        if bad:
            return ValueError(
                f"{path}, line {lineno}: attribute values must be 1 or -1, "
                f"got {bad[0]!r}"
            )
    return ValueError(f"{path}: first line says {count} rows but found {len(rows)}")


def read_celeba_attributes(path: PathLike) -> tuple[list[str], list[str], np.ndarray]:
    """Parse ``list_attr_celeba.txt``: (image names, attribute names, int8 ±1 matrix).

    The format is: a line with the row count, a line with the 40 attribute
    names, then one row per image (name and 40 values of 1 or -1). Any
    deviation raises ``ValueError`` giving the line. Parsing the official
    202,599-row file takes about a second; the result is memoised per process
    (keyed by path, size and modification time) and returned as fresh copies.
    """
    path = Path(path)
    st = path.stat()
    names, attrs, matrix = _read_attributes_cached(
        str(path.resolve()), st.st_size, st.st_mtime_ns
    )
    return list(names), list(attrs), matrix.copy()


@functools.lru_cache(maxsize=4)
def _read_attributes_cached(
    path_str: str, size: int, mtime_ns: int
) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
    names, attrs, matrix = _parse_celeba_attributes(Path(path_str))
    matrix.flags.writeable = False
    return tuple(names), tuple(attrs), matrix


def _parse_celeba_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    raw = path.read_bytes()
    lines = raw.split(b"\n", 2)
    if len(lines) < 2:
        raise ValueError(f"{path}: too short for a CelebA attribute file")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise ValueError(
            f"{path}, line 1: expected the number of images, got {lines[0][:60]!r}"
        ) from None
    attr_names = [a.decode("utf-8", "replace") for a in lines[1].split()]
    if len(attr_names) != CELEBA_ATTRIBUTE_COUNT:
        raise ValueError(
            f"{path}, line 2: expected {CELEBA_ATTRIBUTE_COUNT} attribute names, "
            f"got {len(attr_names)}"
        )
    if len(set(attr_names)) != len(attr_names):
        raise ValueError(f"{path}, line 2: duplicate attribute names")
    body = lines[2] if len(lines) > 2 else b""
    tokens = body.split()
    width = CELEBA_ATTRIBUTE_COUNT + 1
    if len(tokens) != count * width:
        raise _attr_format_error(path, raw.split(b"\n"), count)
    table = np.array(tokens, dtype="S3").reshape(count, width)
    values = table[:, 1:]
    pos = values == b"1"
    if not (pos | (values == b"-1")).all():
        raise _attr_format_error(path, raw.split(b"\n"), count)
    names = [t.decode("utf-8", "replace") for t in tokens[0::width]]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicate image names")
    matrix = np.where(pos, 1, -1).astype(np.int8)
    return names, attr_names, matrix


def celeba_split(
    ids: Sequence[str],
    labels: np.ndarray,
    seed: int = 0,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
) -> dict[str, list[str]]:
    """Split ``ids`` into train/val/test, deterministic and stratified by ``labels``.

    See :data:`SPLIT_RULE`. The result depends only on the set of (id, label)
    pairs, the seed and the fractions, not on the order of ``ids``.
    """
    labels = np.asarray(labels)
    if labels.shape != (len(ids),):
        raise ValueError(f"labels shape {labels.shape} does not match {len(ids)} ids")
    if len(fractions) != 3 or any(f < 0 for f in fractions):
        raise ValueError(f"fractions must be 3 non-negative numbers, got {fractions}")
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must sum to 1, got {fractions}")
    if len(set(ids)) != len(ids):
        raise ValueError("ids must be unique")
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for value in np.unique(labels):
        members = sorted(
            str(i) for i, lab in zip(ids, labels, strict=True) if lab == value
        )
        order = np.random.default_rng(seed).permutation(len(members))
        shuffled = [members[k] for k in order]
        n = len(shuffled)
        n_train = round(n * fractions[0])
        n_val = min(round(n * fractions[1]), n - n_train)
        out["train"] += shuffled[:n_train]
        out["val"] += shuffled[n_train : n_train + n_val]
        out["test"] += shuffled[n_train + n_val :]
    return {s: sorted(v) for s, v in out.items()}


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


def _folders(image_folders: str | Sequence[str]) -> list[str]:
    """The image folder names as a list; each must be a plain name, not a path."""
    folders = [image_folders] if isinstance(image_folders, str) else list(image_folders)
    if not folders:
        raise ValueError("image_folders must name at least one folder")
    for f in folders:
        if not isinstance(f, str) or not f or Path(f).name != f or f in (".", ".."):
            raise ValueError(f"image folder {f!r} must be a plain folder name")
    return folders


def _celeba_index(
    root: PathLike | None, attribute: str, image_folders: str | Sequence[str]
) -> tuple[list[Path], list[str], np.ndarray]:
    """(image paths, their sorted ids, 0/1 labels for ``attribute``) of the images
    present in any of ``image_folders`` (an id in two folders: the first wins)."""
    paths, ids, labels = celeba_index(root, [attribute], image_folders)
    return paths, ids, labels[:, 0]


def celeba_index(
    root: PathLike | None,
    attributes: Sequence[str],
    image_folders: str | Sequence[str],
) -> tuple[list[Path], list[str], np.ndarray]:
    """(image paths, their sorted ids, (N, A) 0/1 labels of ``attributes``) of the
    images present in any of ``image_folders`` (an id in two: the first wins)."""
    root = Path(root) if root is not None else data_dir() / "celeba"
    attr_path = root / "list_attr_celeba.txt"
    st = attr_path.stat()
    names, attrs, matrix = _read_attributes_cached(
        str(attr_path.resolve()), st.st_size, st.st_mtime_ns
    )
    unknown = [a for a in attributes if a not in attrs]
    if unknown or not attributes:
        raise ValueError(
            f"unknown CelebA attribute {unknown[0] if unknown else None!r}; valid "
            f"ones: {', '.join(attrs)}"
        )
    where: dict[str, Path] = {}
    folders = _folders(image_folders)
    for name in folders:
        folder = root / name
        if not folder.is_dir():
            raise FileNotFoundError(f"CelebA image folder {folder} does not exist")
        with os.scandir(folder) as entries:
            for e in entries:
                if e.is_file():
                    where.setdefault(e.name, folder)
    keep = [i for i, n in enumerate(names) if n in where]
    if not keep:
        raise ValueError(
            f"none of the images listed in the attribute file are in "
            f"{', '.join(str(root / f) for f in folders)}"
        )
    order = sorted(keep, key=lambda i: names[i])
    columns = [list(attrs).index(a) for a in attributes]
    labels = (matrix[np.ix_(order, columns)] == 1).astype(np.int64)
    ids = [names[i] for i in order]
    return [where[n] / n for n in ids], ids, labels


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
    root = Path(root) if root is not None else data_dir() / "celeba"
    attr_path = root / "list_attr_celeba.txt"
    st = attr_path.stat()
    names, attrs, matrix = _read_attributes_cached(
        str(attr_path.resolve()), st.st_size, st.st_mtime_ns
    )
    row = {name: k for k, name in enumerate(names)}
    rows = np.array([row[name] for name in mixed], dtype=np.int64)
    return mixed, list(attrs), matrix[rows].copy()


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
