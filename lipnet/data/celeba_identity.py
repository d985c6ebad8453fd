"""CelebA split by identity, with many attributes at once.

CelebA's own partitions keep every person in one split; so does this one, so
that a test number is about people the model never saw. `load_celeba_faces`
returns uint8 pixels (51,460 faces at 64 px are 630 MB as bytes, 2.5 GB as
float32) and an (N, A) 0/1 label matrix for the requested attributes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .celeba import (
    EVERY_FOLDER,
    SPLITS,
    _celeba_pixels,
    _check_size,
    _decode_square,
    celeba_index,
)
from .celeba_labels import attribute_rows
from .paths import PathLike, data_dir

__all__ = [
    "IDENTITY_SPLIT_RULE",
    "identity_example_attributes",
    "identity_example_count",
    "identity_examples",
    "identity_split",
    "load_celeba_faces",
    "read_identities",
]

IDENTITY_SPLIT_RULE = (
    "By identity (CelebA's identity_CelebA.txt): the sorted identities present are "
    "shuffled with numpy.random.default_rng(seed).permutation and taken in that "
    "order into train until it holds round(N*f_train) images, then into "
    "validation until it holds round(N*f_val), the rest into test; no person is "
    "in two splits."
)


def read_identities(path: PathLike) -> dict[str, int]:
    """Parse ``identity_CelebA.txt`` (``NNNNNN.jpg <id>`` per line) into a dict.

    Raises ValueError naming the first malformed line. Memoised per process.
    """
    path = Path(path)
    st = path.stat()
    return dict(_identities_cached(str(path.resolve()), st.st_size, st.st_mtime_ns))


@functools.lru_cache(maxsize=2)
def _identities_cached(
    path: str, size: int, mtime_ns: int
) -> tuple[tuple[str, int], ...]:
    pairs = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise ValueError(f"{path}, line {lineno}: expected '<image> <identity>'")
        pairs.append((parts[0], int(parts[1])))
    return tuple(pairs)


def identity_split(
    ids: Sequence[str],
    identity_of: dict[str, int],
    seed: int = 0,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
) -> dict[str, list[str]]:
    """Split image ``ids`` into train/val/test with no identity in two splits.

    See :data:`IDENTITY_SPLIT_RULE`. Raises ValueError for an id without an
    identity.
    """
    missing = [i for i in ids if i not in identity_of]
    if missing:
        raise ValueError(f"no identity for image {missing[0]!r}")
    people: dict[int, list[str]] = {}
    for i in sorted(ids):
        people.setdefault(identity_of[i], []).append(i)
    order = sorted(people)
    shuffled = [order[k] for k in np.random.default_rng(seed).permutation(len(order))]
    n = len(ids)
    targets = (round(n * fractions[0]), round(n * fractions[1]))
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    current = 0
    for person in shuffled:
        while current < 2 and len(out[SPLITS[current]]) >= targets[current]:
            current += 1
        out[SPLITS[current]] += people[person]
    return {s: sorted(v) for s, v in out.items()}


def load_celeba_faces(
    root: PathLike | None = None,
    attributes: Sequence[str] = ("Mustache",),
    image_size: int = 64,
    seed: int = 0,
    *,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    image_folders: str | Sequence[str] = EVERY_FOLDER,
) -> dict[str, dict[str, Any]]:
    """The faces present on disk, split by identity, with several attributes.

    Returns ``{"train"|"val"|"test": {"images", "labels", "ids"}}``: uint8
    images (N, 3, S, S) (divide by 255 per batch), int64 labels (N, A) with
    1 = attribute present, in the order of ``attributes``, and the file names.
    Pixels are decoded once and cached like :func:`load_celeba`'s.
    """
    _check_size(image_size)
    root = Path(root) if root is not None else data_dir() / "celeba"
    paths, ids, labels = celeba_index(root, list(attributes), image_folders)
    identities = read_identities(root / "identity_CelebA.txt")
    pixels = _celeba_pixels(paths, image_size)
    position = {n: k for k, n in enumerate(ids)}
    out: dict[str, dict[str, Any]] = {}
    for split, names in identity_split(ids, identities, seed, fractions).items():
        idx = np.array([position[n] for n in names], dtype=np.int64)
        out[split] = {
            "images": torch.from_numpy(pixels[idx]).permute(0, 3, 1, 2).contiguous(),
            "labels": torch.from_numpy(labels[idx]),
            "ids": names,
        }
    return out


def _gallery(
    root: PathLike | None,
    attributes: Sequence[str],
    attribute: str,
    seed: int,
    split: str,
    n: int | None,
    image_folders: str | Sequence[str],
) -> tuple[list[Path], list[str], list[int]]:
    """(paths, names, 0/1 labels of `attribute`) of the first `n` faces of one
    identity split, with and without the attribute alternating."""
    if attribute not in attributes:
        raise ValueError(f"unknown attribute {attribute!r}; the model has {attributes}")
    root = Path(root) if root is not None else data_dir() / "celeba"
    paths, ids, labels = celeba_index(root, list(attributes), image_folders)
    identities = read_identities(root / "identity_CelebA.txt")
    chosen = set(identity_split(ids, identities, seed)[split])
    column = list(attributes).index(attribute)
    pos = [k for k, i in enumerate(ids) if i in chosen and labels[k, column]]
    neg = [k for k, i in enumerate(ids) if i in chosen and not labels[k, column]]
    mixed = [k for pair in zip(pos, neg, strict=False) for k in pair][:n]
    return (
        [paths[k] for k in mixed],
        [ids[k] for k in mixed],
        [int(labels[k, column]) for k in mixed],
    )


def identity_examples(
    root: PathLike | None,
    attributes: Sequence[str],
    attribute: str,
    image_size: int = 64,
    seed: int = 0,
    n: int | None = 64,
    *,
    split: str = "test",
    image_folders: str | Sequence[str] = EVERY_FOLDER,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The first `n` faces of one identity split for one attribute of a
    multi-attribute model, decoded on their own (for a gallery).

    Args:
        root: the ``celeba`` folder (default: the data directory's).
        attributes: the model's attributes (they fix the faces present and the split).
        attribute: the one whose presence alternates in the list.
        n: how many faces at most (None: all; the list stops when the
            rarer class runs out).

    Returns:
        (x float (n, 3, S, S) in [0, 1], y 0/1 labels of `attribute`, file names).
    """
    _check_size(image_size)
    paths, names, labels = _gallery(
        root, attributes, attribute, seed, split, n, image_folders
    )
    pixels = np.stack([_decode_square(p, image_size) for p in paths])
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(), torch.tensor(labels), names


def identity_example_count(
    root: PathLike | None,
    attributes: Sequence[str],
    attribute: str,
    seed: int = 0,
    *,
    split: str = "test",
    image_folders: str | Sequence[str] = EVERY_FOLDER,
) -> int:
    """How many faces :func:`identity_examples` can return at most (twice the
    rarer class of the split). Decodes no image."""
    return len(
        _gallery(root, attributes, attribute, seed, split, None, image_folders)[1]
    )


def identity_example_attributes(
    root: PathLike | None,
    attributes: Sequence[str],
    attribute: str,
    seed: int = 0,
    n: int | None = 64,
    *,
    split: str = "test",
    image_folders: str | Sequence[str] = EVERY_FOLDER,
) -> tuple[list[str], list[str], np.ndarray]:
    """The 40 attribute rows of exactly the faces :func:`identity_examples`
    returns: (names, the 40 attribute names, int8 (n, 40) of 1 / -1)."""
    _, names, _ = _gallery(root, attributes, attribute, seed, split, n, image_folders)
    attrs, rows = attribute_rows(root, names)
    return names, attrs, rows
