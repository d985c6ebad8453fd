"""MNIST: reading IDX files, loading the splits as tensors, downloading the files."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import math
import os
import tempfile
import urllib.parse
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from .paths import PathLike, cache_dir, data_dir

__all__ = [
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "DownloadError",
    "download_mnist",
    "load_mnist",
    "mnist_binary",
    "read_idx",
]

log = logging.getLogger(__name__)

# IDX type code -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/).
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_MAX_BYTES = 4 << 30  # refuse headers declaring more than 4 GiB of payload
_GZIP_MAGIC = b"\x1f\x8b"

MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
"""Official MNIST file names and their md5 checksums."""

MNIST_MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]
"""Public mirrors of the official MNIST files, tried in order."""


def _read_exact(f: BinaryIO, n: int) -> bytearray:
    """Read up to ``n`` bytes (fewer only at end of stream), growing as data arrives.

    Chunked so that a header declaring a huge payload cannot make us allocate
    it before the data is actually there.
    """
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(n - len(buf), 1 << 24))
        if not chunk:
            break
        buf += chunk
    return buf


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw, detected by magic bytes) into an array.

    Validates the magic number (two zero bytes, a known type code, the number of
    dimensions), the big-endian dimensions and that the payload size matches
    exactly, so truncated or foreign files raise ``ValueError`` naming the file.
    The result has native byte order (e.g. uint8 for MNIST).
    """
    path = Path(path)
    with open(path, "rb") as raw:  # missing file: FileNotFoundError, as usual
        try:
            if raw.read(2) != _GZIP_MAGIC:
                raw.seek(0)
                return _parse_idx(raw, path)
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw) as f:
                return _parse_idx(f, path)  # type: ignore[arg-type]
        except (EOFError, OSError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt or truncated IDX data ({exc})") from exc


def _parse_idx(f: BinaryIO, path: Path) -> np.ndarray:
    header = _read_exact(f, 4)
    if len(header) < 4:
        raise ValueError(
            f"{path}: not an IDX file (shorter than the 4-byte magic number)"
        )
    if header[0] != 0 or header[1] != 0 or header[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: not an IDX file (magic number {bytes(header).hex()} is not "
            "00 00 <type code> <ndim>; expected e.g. 00000801 for labels, "
            "00000803 for images)"
        )
    dtype = _IDX_DTYPES[header[2]]
    ndim = header[3]
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    dims_raw = _read_exact(f, 4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header ({ndim} dimensions declared)")
    dims = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
    expected = math.prod(dims) * dtype.itemsize
    if expected > _IDX_MAX_BYTES:
        raise ValueError(f"{path}: IDX header declares an implausible size {dims}")
    data = _read_exact(f, expected)
    if len(data) < expected:
        raise ValueError(
            f"{path}: truncated IDX file: header declares shape {dims} "
            f"({expected} payload bytes) but only {len(data)} bytes follow"
        )
    if f.read(1):
        raise ValueError(
            f"{path}: IDX file has trailing data after the {expected} payload bytes "
            f"declared by shape {dims}"
        )
    arr = np.frombuffer(data, dtype=dtype).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=dtype.itemsize > 1)


def _mnist_file(root: Path, prefix: str, kind: str) -> Path:
    """Find ``{prefix}-{kind}`` in ``root``: gzip or raw, either common spelling."""
    idx = "idx3" if kind == "images" else "idx1"
    stems = [f"{prefix}-{kind}-{idx}-ubyte", f"{prefix}-{kind}.{idx}-ubyte"]
    candidates = [root / (s + ext) for s in stems for ext in (".gz", "")]
    for c in candidates:
        if c.is_file():
            return c
    names = ", ".join(c.name for c in candidates)
    raise FileNotFoundError(
        f"MNIST file not found in {root} (tried {names}); "
        "run lipnet.data.download_mnist() or set LIPNET_DATA"
    )


def load_mnist(
    root: PathLike | None = None, split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load an MNIST split as float32 images (N, 1, 28, 28) in [0, 1] and int64 labels.

    ``root`` is the folder with the four IDX files (default ``data_dir()/"mnist"``);
    ``split`` is ``"train"`` or ``"test"`` (``"t10k"`` also accepted). Works for
    the shared 10k training subset and for the full official 60k files.
    """
    prefix = {"train": "train", "test": "t10k", "t10k": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"unknown MNIST split {split!r}; use 'train' or 'test'")
    folder = Path(root) if root is not None else data_dir() / "mnist"
    img_path = _mnist_file(folder, prefix, "images")
    lab_path = _mnist_file(folder, prefix, "labels")
    images = read_idx(img_path)
    labels = read_idx(lab_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{img_path}: expected uint8 images of shape (N, H, W), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(
            f"{lab_path}: expected uint8 labels of shape (N,), "
            f"got {labels.dtype} {labels.shape}"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{img_path.name} has {len(images)} images but {lab_path.name} "
            f"has {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{lab_path}: labels outside 0..9 (max {labels.max()})")
    x = torch.from_numpy(images).unsqueeze(1).float().div_(255.0)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def mnist_binary(
    images: torch.Tensor, labels: torch.Tensor, classes: tuple[int, int] = (0, 8)
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep only the two ``classes``; labels become int64 0/1 (1 for ``classes[1]``)."""
    c0, c1 = classes
    if c0 == c1:
        raise ValueError(f"the two classes must differ, got {classes}")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    mask = (labels == c0) | (labels == c1)
    return images[mask], (labels[mask] == c1).to(torch.int64)


class DownloadError(RuntimeError):
    """A file could not be downloaded from any mirror (network error or bad md5)."""


def _md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch(url: str, dest: Path, expected_md5: str, timeout: float) -> None:
    """Stream ``url`` to a temp file next to ``dest``, check md5, rename atomically."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise ValueError(f"refusing to download {url!r}: only http(s) URLs are allowed")
    req = urllib.request.Request(url, headers={"User-Agent": "lipnet-dashboard"})
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.name}.", suffix=".part", dir=dest.parent
    )
    tmp = Path(tmp_name)
    try:
        h = hashlib.md5()
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(req, timeout=timeout) as r,
        ):
            for chunk in iter(lambda: r.read(1 << 16), b""):
                h.update(chunk)
                out.write(chunk)
        got = h.hexdigest()
        if got != expected_md5.lower():
            raise ValueError(f"md5 mismatch: expected {expected_md5}, got {got}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def download_mnist(
    dest: PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    files: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> Path:
    """Download the MNIST files (name -> md5 in ``files``) into ``dest`` and return it.

    Files already present with the right md5 are skipped. Each file is streamed
    to a temporary file while its md5 is computed, then renamed into place, so an
    interrupted or corrupt download never leaves a partial file. Mirrors are
    tried in order; if every mirror fails (network error or md5 mismatch) a
    :class:`DownloadError` names the file, the expected and received md5s.
    Defaults: ``cache_dir()/"mnist"``, :data:`MNIST_MIRRORS`, :data:`MNIST_FILES`.
    """
    dest = Path(dest) if dest is not None else cache_dir() / "mnist"
    mirrors = list(MNIST_MIRRORS if mirrors is None else mirrors)
    files = MNIST_FILES if files is None else files
    if not mirrors:
        raise ValueError("no mirrors given")
    dest.mkdir(parents=True, exist_ok=True)
    for name, md5 in files.items():
        target = dest / name
        if target.is_file() and _md5_file(target) == md5.lower():
            log.info("%s already present with the right md5", target)
            continue
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + urllib.parse.quote(name)
            try:
                _fetch(url, target, md5, timeout)
            except (OSError, ValueError, http.client.HTTPException) as exc:
                log.warning("download of %s failed: %s", url, exc)
                errors.append(f"{url}: {exc}")
                continue
            log.info("downloaded %s", url)
            break
        else:
            raise DownloadError(
                f"could not download {name} (expected md5 {md5}) from any mirror:\n  "
                + "\n  ".join(errors)
            )
    return dest
