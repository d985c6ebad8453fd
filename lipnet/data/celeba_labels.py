"""CelebA's labels: the attribute file, parsed and memoised, and the index of
the images present on disk with their 0/1 labels."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .paths import PathLike, data_dir

CELEBA_ATTRIBUTE_COUNT = 40


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

    Args:
        path: the attribute file.

    Returns:
        (image names, the 40 attribute names, an int8 (N, 40) matrix of ±1).

    Raises:
        ValueError: a malformed file (the message names the line).
    """
    path = Path(path)
    st = path.stat()
    names, attrs, matrix = _read_attributes_cached(
        str(path.resolve()), st.st_size, st.st_mtime_ns
    )
    return list(names), list(attrs), matrix.copy()


def attribute_rows(
    root: PathLike | None, names: Sequence[str]
) -> tuple[list[str], np.ndarray]:
    """The 40 attribute names and the int8 (n, 40) rows (1 / -1) of the images
    `names`, from the ``celeba`` folder's attribute file (read once, cached)."""
    root = Path(root) if root is not None else data_dir() / "celeba"
    attr_path = root / "list_attr_celeba.txt"
    st = attr_path.stat()
    all_names, attrs, matrix = _read_attributes_cached(
        str(attr_path.resolve()), st.st_size, st.st_mtime_ns
    )
    row = {name: k for k, name in enumerate(all_names)}
    rows = np.array([row[name] for name in names], dtype=np.int64)
    return list(attrs), matrix[rows].copy()


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
    images present in any of ``image_folders`` (an id in two: the first wins).

    Args:
        root: the CelebA folder (None: `data_dir() / "celeba"`).
        attributes: attribute names of the attribute file.
        image_folders: folder names under `root`, searched in order.

    Returns:
        The paths, the ids (sorted) and the labels, row by row.

    Raises:
        ValueError: an unknown attribute, no attribute, a folder name that is a
            path, or no listed image present.
        FileNotFoundError: a folder that does not exist.
    """
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
