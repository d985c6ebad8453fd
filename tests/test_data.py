"""Tests for lipnet.data: MNIST IDX files and download, CelebA subset, user images.

They read the shared data through ``data_dir()`` (``LIPNET_DATA`` or
``../shared/data``) and never copy it into the project; temporary copies go to
pytest's tmp_path and derived arrays to a temporary cache directory.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import shutil
import socket
import struct
import threading
import time
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lipnet import data
from lipnet.data import ImageError

MNIST_NAMES = list(data.MNIST_FILES)
T10K = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
MNIST_SPEC = {"input_shape": [1, 28, 28]}
RGB_SPEC = {"input_shape": [3, 64, 64]}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared data directory, resolved the way the library resolves it."""
    return data.data_dir()


@pytest.fixture(scope="session")
def mnist_dir(shared: Path) -> Path:
    return shared / "mnist"


@pytest.fixture(scope="module")
def celeba_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private LIPNET_CACHE for this module, so tests never touch ~/.cache."""
    path = tmp_path_factory.mktemp("lipnet-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIPNET_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def attributes(shared: Path) -> tuple[list[str], list[str], np.ndarray]:
    return data.read_celeba_attributes(shared / "celeba" / "list_attr_celeba.txt")


@pytest.fixture(scope="module")
def joined(
    shared: Path, attributes: tuple[list[str], list[str], np.ndarray]
) -> tuple[list[str], np.ndarray]:
    """(ids, Mustache 0/1 labels) of the attribute rows whose image exists."""
    names, attrs, matrix = attributes
    present = {p.name for p in (shared / "celeba" / "img_celeba_128").iterdir()}
    rows = [i for i, n in enumerate(names) if n in present]
    ids = [names[i] for i in rows]
    labels = (matrix[rows, attrs.index("Mustache")] == 1).astype(np.int64)
    return ids, labels


@pytest.fixture(scope="module")
def celeba16(celeba_cache: Path, shared: Path) -> dict:
    """The shared CelebA subset at 16 px (decoded once per module, then cached)."""
    start = time.perf_counter()
    out = data.load_celeba(shared / "celeba", image_size=16)
    out["_seconds"] = time.perf_counter() - start
    return out


# --------------------------------------------------------------------------------------
# Directories
# --------------------------------------------------------------------------------------


def test_data_dir_explicit_env_and_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shared: Path
) -> None:
    assert data.data_dir(tmp_path) == tmp_path.resolve()
    monkeypatch.setenv("LIPNET_DATA", str(tmp_path))
    assert data.data_dir() == tmp_path.resolve()
    assert data.data_dir(shared) == shared.resolve()  # argument beats env
    monkeypatch.delenv("LIPNET_DATA")
    default = (
        Path(data.__file__).resolve().parent.parent.parent.parent / "shared" / "data"
    )
    assert data.data_dir() == default
    assert (data.data_dir() / "mnist").is_dir()


def test_data_dir_missing_tells_to_set_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LIPNET_DATA", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="LIPNET_DATA"):
        data.data_dir()
    monkeypatch.delenv("LIPNET_DATA")
    monkeypatch.setattr(data.paths, "_PROJECT_ROOT", tmp_path / "project")
    with pytest.raises(FileNotFoundError, match="LIPNET_DATA"):
        data.data_dir()
    with pytest.raises(FileNotFoundError):
        data.data_dir(tmp_path / "missing")


def test_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIPNET_CACHE", str(tmp_path / "c"))
    assert data.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("LIPNET_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.cache_dir() == tmp_path / ".cache" / "lipnet"


# --------------------------------------------------------------------------------------
# MNIST: IDX reader and loader
# --------------------------------------------------------------------------------------


def test_read_idx_shared_files(mnist_dir: Path) -> None:
    for prefix in ("train", "t10k"):
        images = data.read_idx(mnist_dir / f"{prefix}-images-idx3-ubyte.gz")
        labels = data.read_idx(mnist_dir / f"{prefix}-labels-idx1-ubyte.gz")
        assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (10_000,) and labels.dtype == np.uint8
        assert set(np.unique(labels)) == set(range(10))
        assert images.max() == 255 and images.min() == 0


def test_t10k_files_are_the_official_ones(mnist_dir: Path) -> None:
    for name in T10K:
        assert md5(mnist_dir / name) == data.MNIST_FILES[name]
    assert data.MNIST_FILES["t10k-images-idx3-ubyte.gz"] == (
        "9fb629c4189551a2d022fa330f9573f3"
    )
    assert data.MNIST_FILES["t10k-labels-idx1-ubyte.gz"] == (
        "ec29112dd5afa0611ce80d1b7f02629c"
    )


def test_load_mnist_and_binary_counts(mnist_dir: Path) -> None:
    counts = {"train": (1001, 944), "test": (980, 974)}
    for split, (zeros, eights) in counts.items():
        x, y = data.load_mnist(split=split)  # default root: data_dir()/"mnist"
        assert x.shape == (10_000, 1, 28, 28) and x.dtype == torch.float32
        assert y.shape == (10_000,) and y.dtype == torch.int64
        assert float(x.min()) == 0.0 and float(x.max()) == 1.0
        xb, yb = data.mnist_binary(x, y, classes=(0, 8))
        assert int((yb == 0).sum()) == zeros and int((yb == 1).sum()) == eights
        assert len(xb) == zeros + eights and yb.dtype == torch.int64
        assert torch.equal(xb[yb == 1], x[y == 8])
    xt, yt = data.load_mnist(mnist_dir, "t10k")
    assert len(xt) == 10_000
    with pytest.raises(ValueError, match="split"):
        data.load_mnist(mnist_dir, "validation")
    with pytest.raises(ValueError, match="differ"):
        data.mnist_binary(xt, yt, classes=(3, 3))


def test_gzip_and_raw_read_the_same(mnist_dir: Path, tmp_path: Path) -> None:
    for name in T10K:
        raw = tmp_path / name.removesuffix(".gz")
        raw.write_bytes(gzip.decompress((mnist_dir / name).read_bytes()))
    np.testing.assert_array_equal(
        data.read_idx(tmp_path / "t10k-labels-idx1-ubyte"),
        data.read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz"),
    )
    # Detection is by magic bytes, not by name: a gzip file without .gz suffix.
    odd = tmp_path / "labels.bin"
    shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", odd)
    assert data.read_idx(odd).shape == (10_000,)
    x_raw, y_raw = data.load_mnist(tmp_path, "test")  # uncompressed names
    x_gz, y_gz = data.load_mnist(mnist_dir, "test")
    assert torch.equal(x_raw, x_gz) and torch.equal(y_raw, y_gz)
    # The "t10k-images.idx3-ubyte" spelling of some distributions also works.
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).rename(tmp_path / name.replace("-idx", ".idx"))
    assert torch.equal(data.load_mnist(tmp_path, "test")[1], y_gz)
    with pytest.raises(FileNotFoundError, match="download_mnist"):
        data.load_mnist(tmp_path, "train")


def test_load_mnist_full_size_files(mnist_dir: Path, tmp_path: Path) -> None:
    """60,000-image files like the official ones (shared 10k tiled six times)."""
    for kind in ("images-idx3", "labels-idx1"):
        payload = gzip.decompress((mnist_dir / f"train-{kind}-ubyte.gz").read_bytes())
        header_len = 16 if kind.startswith("images") else 8
        header = bytearray(payload[:header_len])
        header[4:8] = struct.pack(">I", 60_000)
        body = payload[header_len:] * 6
        (tmp_path / f"train-{kind}-ubyte").write_bytes(bytes(header) + body)
    x, y = data.load_mnist(tmp_path, "train")
    assert x.shape == (60_000, 1, 28, 28) and y.shape == (60_000,)
    assert torch.equal(x[:10_000], x[50_000:])


def write_idx(path: Path, arr: np.ndarray, code: int) -> None:
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(header + arr.astype(arr.dtype.newbyteorder(">")).tobytes())


def test_read_idx_general_dtype_codes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cases = {
        0x08: rng.integers(0, 256, (3, 4), dtype=np.uint8),
        0x09: rng.integers(-128, 128, (5,), dtype=np.int8),
        0x0B: rng.integers(-30000, 30000, (2, 3, 4), dtype=np.int16),
        0x0C: rng.integers(-(2**31), 2**31, (7, 2), dtype=np.int32),
        0x0D: rng.standard_normal((4, 4)).astype(np.float32),
        0x0E: rng.standard_normal((2, 2, 2, 2)).astype(np.float64),
    }
    for code, arr in cases.items():
        path = tmp_path / f"a{code}.idx"
        write_idx(path, arr, code)
        got = data.read_idx(path)
        assert got.dtype == arr.dtype and got.dtype.isnative
        np.testing.assert_array_equal(got, arr)
        path.with_suffix(".gz").write_bytes(gzip.compress(path.read_bytes()))
        np.testing.assert_array_equal(data.read_idx(path.with_suffix(".gz")), arr)


def test_truncated_and_foreign_idx_files(mnist_dir: Path, tmp_path: Path) -> None:
    gz = (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    raw = gzip.decompress(gz)
    bad = {
        "short-payload": (raw[:-10], "truncated"),
        "short-header": (raw[:6], "truncated IDX header"),
        "tiny": (raw[:3], "not an IDX"),
        "empty": (b"", "not an IDX"),
        "trailing": (raw + b"\0", "trailing"),
        "gz-cut": (gz[: len(gz) // 2], "truncated"),
        "gz-corrupt": (gz[:20] + bytes(50) + gz[70:], "corrupt|truncated"),
        "png": (b"\x89PNG\r\n\x1a\n" + bytes(100), "not an IDX"),
        "text": (b"hello, this is not MNIST\n" * 10, "not an IDX"),
        "bad-code": (bytes([0, 0, 0x07, 1]) + raw[4:], "not an IDX"),
        "zero-dims": (bytes([0, 0, 0x08, 0]), "0 dimensions"),
        "huge": (bytes([0, 0, 0x08, 2]) + struct.pack(">II", 2**31, 2**31), "size"),
    }
    for name, (payload, pattern) in bad.items():
        path = tmp_path / name
        path.write_bytes(payload)
        with pytest.raises(ValueError, match=pattern) as info:
            data.read_idx(path)
        assert name in str(info.value), info.value  # the message names the file
    with pytest.raises(FileNotFoundError):
        data.read_idx(tmp_path / "does-not-exist")


def test_load_mnist_rejects_inconsistent_files(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8), 8)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((6,), np.uint8), 8)
    with pytest.raises(ValueError, match=r"5 images but .* 6 labels"):
        data.load_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full((5,), 12, np.uint8), 8)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        data.load_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 784), np.uint8), 8)
    with pytest.raises(ValueError, match="N, H, W"):
        data.load_mnist(tmp_path)


# --------------------------------------------------------------------------------------
# MNIST download over a real loopback HTTP server
# --------------------------------------------------------------------------------------


class Mirror:
    """A real HTTP server on 127.0.0.1 serving good/ (real files) and bad/ (corrupt)."""

    def __init__(self, root: Path) -> None:
        self.requests: list[tuple[str, int]] = []
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                mirror.requests.append((self.path, int(code)))

            def log_message(self, format: str, *args: object) -> None:
                pass

        handler = functools.partial(Handler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def mirror(
    tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path
) -> Iterator[Mirror]:
    root = tmp_path_factory.mktemp("mirror")
    (root / "good").mkdir()
    (root / "bad").mkdir()
    for name in MNIST_NAMES:
        shutil.copy(mnist_dir / name, root / "good" / name)
        (root / "bad" / name).write_bytes(b"not the file you wanted " + name.encode())
    server = Mirror(root)
    yield server
    server.close()


@pytest.fixture(scope="module")
def shared_md5s(mnist_dir: Path) -> dict[str, str]:
    return {name: md5(mnist_dir / name) for name in MNIST_NAMES}


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def test_download_success_and_skip_present(
    mirror: Mirror, shared_md5s: dict[str, str], tmp_path: Path
) -> None:
    dest = tmp_path / "mnist"
    got = data.download_mnist(dest, [mirror.base + "good/"], shared_md5s, timeout=10)
    assert got == dest
    assert sorted(p.name for p in dest.iterdir()) == sorted(MNIST_NAMES)
    for name in MNIST_NAMES:
        assert md5(dest / name) == shared_md5s[name]
    x, y = data.load_mnist(dest, "train")
    assert x.shape == (10_000, 1, 28, 28) and len(y) == 10_000
    # Present files with the right md5 are not fetched again (dead mirror is fine).
    before = len(mirror.requests)
    data.download_mnist(dest, [closed_port_url()], shared_md5s, timeout=2)
    assert len(mirror.requests) == before


def test_download_checks_official_t10k_md5(mirror: Mirror, tmp_path: Path) -> None:
    official = {name: data.MNIST_FILES[name] for name in T10K}
    dest = data.download_mnist(tmp_path, [mirror.base + "good"], official, timeout=10)
    for name in T10K:
        assert md5(dest / name) == data.MNIST_FILES[name]


def test_download_falls_back_to_next_mirror(
    mirror: Mirror, shared_md5s: dict[str, str], tmp_path: Path
) -> None:
    files = {name: shared_md5s[name] for name in T10K}
    start = len(mirror.requests)
    mirrors = [mirror.base + "missing/", mirror.base + "good/"]
    data.download_mnist(tmp_path / "a", mirrors, files, timeout=10)
    log = mirror.requests[start:]
    assert ("/missing/t10k-images-idx3-ubyte.gz", 404) in log
    assert ("/good/t10k-images-idx3-ubyte.gz", 200) in log
    # Corrupt content on the first mirror, a refused connection: both skipped.
    mirrors = [closed_port_url(), mirror.base + "bad/", mirror.base + "good/"]
    dest = data.download_mnist(tmp_path / "b", mirrors, files, timeout=10)
    assert {n: md5(dest / n) for n in T10K} == files
    assert sorted(p.name for p in dest.iterdir()) == sorted(T10K)
    # An existing file with the wrong content is replaced.
    (dest / T10K[1]).write_bytes(b"stale")
    data.download_mnist(dest, [mirror.base + "good/"], files, timeout=10)
    assert md5(dest / T10K[1]) == files[T10K[1]]


def test_download_wrong_checksum_fails_cleanly(mirror: Mirror, tmp_path: Path) -> None:
    name = "t10k-labels-idx1-ubyte.gz"
    wrong = "0123456789abcdef0123456789abcdef"
    dest = tmp_path / "dl"
    mirrors = [mirror.base + "good/", mirror.base + "bad/"]
    with pytest.raises(data.DownloadError) as info:
        data.download_mnist(dest, mirrors, {name: wrong}, timeout=10)
    msg = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert name in msg and wrong in msg
    assert data.MNIST_FILES[name] in msg  # the md5 actually received from good/
    assert hashlib.md5(b"not the file you wanted " + name.encode()).hexdigest() in msg
    assert list(dest.iterdir()) == []  # no partial or temporary file left behind
    with pytest.raises(data.DownloadError, match="http"):
        data.download_mnist(dest, ["file:///etc/"], {name: wrong})
    assert list(dest.iterdir()) == []


# --------------------------------------------------------------------------------------
# CelebA
# --------------------------------------------------------------------------------------


def test_celeba_attribute_file(
    attributes: tuple[list[str], list[str], np.ndarray],
) -> None:
    names, attrs, matrix = attributes
    assert len(names) == 202_599 and names[0] == "000001.jpg"
    assert names[-1] == "202599.jpg"
    assert len(attrs) == 40 and "Mustache" in attrs and attrs[0] == "5_o_Clock_Shadow"
    assert matrix.shape == (202_599, 40) and matrix.dtype == np.int8
    assert set(np.unique(matrix)) == {-1, 1}
    assert int((matrix[:, attrs.index("Mustache")] == 1).sum()) == 8_417


def test_celeba_attribute_file_format_errors(tmp_path: Path) -> None:
    header = " ".join(f"A{i}" for i in range(40))
    row = " ".join(["1", "-1"] * 20)
    cases = {
        "count": (f"lots\n{header}\n001.jpg {row}\n", "line 1"),
        "names": ("1\nA B C\n001.jpg " + row + "\n", "line 2: expected 40"),
        "short-row": (f"2\n{header}\n001.jpg {row}\n002.jpg 1 1\n", "line 4"),
        "bad-value": (f"1\n{header}\n001.jpg {row[:-2]} 0\n", "line 3: .*1 or -1"),
        "row-count": (f"3\n{header}\n001.jpg {row}\n002.jpg {row}\n", "3 rows"),
        "empty": ("", "too short"),
    }
    for name, (text, pattern) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ValueError, match=pattern):
            data.read_celeba_attributes(path)
    ok = tmp_path / "ok.txt"
    ok.write_text(f"2\r\n{header} \r\n001.jpg  {row}\r\n002.jpg {row}\r\n")
    names, attrs, matrix = data.read_celeba_attributes(ok)
    assert names == ["001.jpg", "002.jpg"] and len(attrs) == 40
    assert matrix[0, :2].tolist() == [1, -1]


def test_celeba_join_counts(joined: tuple[list[str], np.ndarray]) -> None:
    ids, labels = joined
    assert len(ids) == 15_000
    assert int(labels.sum()) == 520
    assert min(ids) >= "182638.jpg" and max(ids) <= "202599.jpg"


def test_celeba_split_is_deterministic_and_stratified(
    joined: tuple[list[str], np.ndarray],
) -> None:
    ids, labels = joined
    a = data.celeba_split(ids, labels, seed=0)
    b = data.celeba_split(ids, labels, seed=0)
    c = data.celeba_split(ids, labels, seed=1)
    assert a == b
    assert a["train"] != c["train"] and a["test"] != c["test"]
    assert [len(a[s]) for s in ("train", "val", "test")] == [10_500, 2_250, 2_250]
    sets = [set(a[s]) for s in ("train", "val", "test")]
    assert sum(len(s) for s in sets) == len(set.union(*sets)) == len(ids)  # disjoint
    assert set.union(*sets) == set(ids)  # cover
    label_of = dict(zip(ids, labels, strict=True))
    overall = labels.mean()
    for split in ("train", "val", "test"):
        frac = np.mean([label_of[i] for i in a[split]])
        assert abs(frac - overall) < 0.01, (split, frac, overall)
    # Input order does not matter, only the (id, label) pairs.
    perm = np.random.default_rng(5).permutation(len(ids))
    shuffled = data.celeba_split([ids[i] for i in perm], labels[perm], seed=0)
    assert shuffled == a
    assert "seed" in data.SPLIT_RULE and "sorted" in data.SPLIT_RULE
    assert "seed=3" in data.describe_split(3)
    with pytest.raises(ValueError, match="sum to 1"):
        data.celeba_split(ids, labels, fractions=(0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="match"):
        data.celeba_split(ids, labels[:-1])


def test_load_celeba_small(
    celeba16: dict, joined: tuple[list[str], np.ndarray], shared: Path
) -> None:
    ids, labels = joined
    expected = data.celeba_split(ids, labels, seed=0)
    total, positives = 0, 0
    for split in ("train", "val", "test"):
        part = celeba16[split]
        x, y = part["images"], part["labels"]
        assert part["ids"] == expected[split]
        assert x.shape == (len(part["ids"]), 3, 16, 16) and x.dtype == torch.float32
        assert y.shape == (len(part["ids"]),) and y.dtype == torch.int64
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert set(y.unique().tolist()) == {0, 1}
        total += len(y)
        positives += int(y.sum())
    assert (total, positives) == (15_000, 520)
    # Pixels match a direct Pillow decode (128 px -> BOX resize to 16 px).
    name = celeba16["val"]["ids"][7]
    with Image.open(shared / "celeba" / "img_celeba_128" / name) as im:
        ref = np.asarray(im.convert("RGB").resize((16, 16), Image.Resampling.BOX))
    got = (celeba16["val"]["images"][7].permute(1, 2, 0) * 255).round().byte().numpy()
    np.testing.assert_array_equal(got, ref)


def test_load_celeba_second_call_uses_cache(
    celeba16: dict, celeba_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = list((celeba_cache / "celeba").glob("*.npy"))
    assert len(cached) == 1 and "16px" in cached[0].name
    repo = Path(data.__file__).resolve().parent.parent.parent
    assert repo not in cached[0].resolve().parents  # the cache lives outside the repo

    def no_decoding(*args: object) -> np.ndarray:
        raise AssertionError("JPEG decoding on a cached call")

    monkeypatch.setattr(data.celeba, "_decode_square", no_decoding)
    start = time.perf_counter()
    again = data.load_celeba(image_size=16)
    seconds = time.perf_counter() - start
    for split in ("train", "val", "test"):
        assert torch.equal(again[split]["images"], celeba16[split]["images"])
        assert again[split]["ids"] == celeba16[split]["ids"]
    assert seconds < max(celeba16["_seconds"], 1.0)
    other = data.load_celeba(attribute="Eyeglasses", image_size=16, seed=1)
    assert sum(len(p["ids"]) for p in other.values()) == 15_000
    with pytest.raises(ValueError, match=r"'Moustache'.*Eyeglasses.*Mustache"):
        data.load_celeba(attribute="Moustache", image_size=16)


def test_load_celeba_joins_existing_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A synthetic tree: 12 rows listed, 8 images present (one not square)."""
    monkeypatch.setenv("LIPNET_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "celeba"
    (root / "img_celeba_128").mkdir(parents=True)
    header = " ".join(["Mustache", *(f"A{i}" for i in range(39))])
    rows = []
    for i in range(12):
        value = "1" if i % 3 == 0 else "-1"
        rows.append(f"{i:06d}.jpg {value} " + " ".join(["-1"] * 39))
        if i < 8:
            size = (40, 32) if i == 5 else (32, 32)
            Image.new("RGB", size, (20 * i, 100, 200)).save(
                root / "img_celeba_128" / f"{i:06d}.jpg", quality=95
            )
    (root / "list_attr_celeba.txt").write_text(f"12\n{header}\n" + "\n".join(rows))
    out = data.load_celeba(root, image_size=8, fractions=(0.5, 0.25, 0.25))
    ids = sorted(i for part in out.values() for i in part["ids"])
    assert ids == [f"{i:06d}.jpg" for i in range(8)]
    labels = {
        i: int(y)
        for p in out.values()
        for i, y in zip(p["ids"], p["labels"], strict=True)
    }
    assert labels == {f"{i:06d}.jpg": int(i % 3 == 0) for i in range(8)}
    assert out["train"]["images"].shape[1:] == (3, 8, 8)
    # Adding an image changes the file list hash: a new cache entry, 9 images.
    Image.new("RGB", (32, 32)).save(root / "img_celeba_128" / "000008.jpg")
    again = data.load_celeba(root, image_size=8, fractions=(0.5, 0.25, 0.25))
    assert sum(len(p["ids"]) for p in again.values()) == 9
    assert len(list((tmp_path / "cache" / "celeba").glob("*.npy"))) == 2
    with pytest.raises(ValueError, match="image_size"):
        data.load_celeba(root, image_size=0)


def test_load_celeba_reads_several_folders_of_any_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two folders (square 32 px and 89×109 aligned faces): one stratified split
    over both, each image centre-cropped; the first folder alone is unchanged."""
    monkeypatch.setenv("LIPNET_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "celeba"
    header = " ".join(["Mustache", *(f"A{i}" for i in range(39))])
    rows = []
    for folder, ids, size in (
        ("img_celeba_128", range(0, 10), (32, 32)),
        ("img_align_celeba_89", range(10, 20), (89, 109)),
    ):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in ids:
            im = Image.new("RGB", size, (0, 0, 0))
            # A bright centre square: the crop must keep it centred.
            side = min(size)
            left, top = (size[0] - side) // 2, (size[1] - side) // 2
            im.paste((200, 200, 200), (left, top, left + side, top + side))
            im.save(root / folder / f"{i:06d}.jpg", quality=95)
    for i in range(20):
        value = "1" if i % 4 == 0 else "-1"
        rows.append(f"{i:06d}.jpg {value} " + " ".join(["-1"] * 39))
    (root / "list_attr_celeba.txt").write_text(f"20\n{header}\n" + "\n".join(rows))
    both = ["img_celeba_128", "img_align_celeba_89"]
    fr = (0.5, 0.25, 0.25)
    out = data.load_celeba(root, image_size=8, fractions=fr, image_folders=both)
    ids = sorted(i for part in out.values() for i in part["ids"])
    assert ids == [f"{i:06d}.jpg" for i in range(20)]
    # Stratified: 5 positives and 15 negatives split 0.5/0.25/0.25 per label.
    assert [int(out[s]["labels"].sum()) for s in ("train", "val", "test")] == [2, 1, 2]
    # Every face is the bright square after the centre crop, whatever its folder.
    images = torch.cat([p["images"] for p in out.values()])
    assert float(images.min()) > 0.6
    first = data.load_celeba(root, image_size=8, fractions=fr)
    assert sorted(i for p in first.values() for i in p["ids"]) == ids[:10]
    again = data.load_celeba(root, image_size=8, fractions=fr, image_folders=both)
    assert again["test"]["ids"] == out["test"]["ids"]
    for bad in (["../x"], [], ["img_celeba_128", "/etc"]):
        with pytest.raises(ValueError, match="folder"):
            data.load_celeba(root, image_size=8, image_folders=bad)


# --------------------------------------------------------------------------------------
# User images
# --------------------------------------------------------------------------------------


def encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def bilevel_png(
    width: int, height: int, with_data: bool = True, noise: bool = False
) -> bytes:
    """A 1-bit PNG of any size, built by hand: black ones compress to kB, noisy
    ones (seeded random bits) stay about a bit per pixel."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    if with_data:
        comp = zlib.compressobj(9)
        rng = np.random.default_rng(0)
        packed = (width + 7) // 8
        rows = (
            b"\x00" + (rng.bytes(packed) if noise else bytes(packed))
            for _ in range(height)
        )
        idat = b"".join(comp.compress(row) for row in rows) + comp.flush()
        out += png_chunk(b"IDAT", idat)
    else:
        out += png_chunk(b"IDAT", zlib.compress(bytes(64)))
    return out + png_chunk(b"IEND", b"")


@pytest.fixture
def pil_state() -> Iterator[None]:
    """Check that load_image leaves Pillow's globals and warning filters alone."""
    max_pixels = Image.MAX_IMAGE_PIXELS
    filters = list(warnings.filters)
    yield
    assert max_pixels == Image.MAX_IMAGE_PIXELS
    assert warnings.filters == filters


def test_bad_inputs_raise_image_error(pil_state: None, tmp_path: Path) -> None:
    photo = Image.effect_mandelbrot((96, 64), (-2, -1, 1, 1), 50).convert("RGB")
    jpeg = encode(photo, "JPEG", quality=90)
    png = encode(photo, "PNG")
    idat = png.index(b"IDAT")
    corrupt_png = png[: idat + 20] + bytes(16) + png[idat + 36 :]  # bad CRC/zlib
    cases = {
        "non-image": (b"this is certainly not an image\n" * 20, "not a recognised"),
        "truncated-jpeg": (jpeg[: len(jpeg) // 2], "truncated|corrupt"),
        "truncated-png": (png[: len(png) // 2], "truncated|corrupt"),
        "corrupt-png": (corrupt_png, "truncated|corrupt"),
        "header-only-png": (png[:40], "truncated|corrupt|not a recognised"),
        "empty": (b"", "empty"),
        "pcx-not-allowed": (encode(photo, "PCX"), "not a recognised"),
    }
    for name, (payload, pattern) in cases.items():
        with pytest.raises(ImageError, match=pattern):
            data.load_image(payload, RGB_SPEC)
        path = tmp_path / name
        path.write_bytes(payload)
        with pytest.raises(ImageError, match=pattern):
            data.load_image(path, MNIST_SPEC)
    with pytest.raises(ImageError, match="empty"):
        data.load_image(io.BytesIO(b""), MNIST_SPEC)
    with pytest.raises(ImageError, match="cannot read"):
        data.load_image(tmp_path / "missing.png", MNIST_SPEC)
    with pytest.raises(ImageError, match="unsupported image source"):
        data.load_image(12345, MNIST_SPEC)  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="binary"):
        data.load_image(io.StringIO("text"), MNIST_SPEC)  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bombs_and_huge_images(pil_state: None) -> None:
    # Header claims 100,000 x 100,000 = 10 gigapixels: Pillow's own bomb check.
    with pytest.raises(ImageError, match=r"decompression bomb|too large"):
        data.load_image(bilevel_png(100_000, 100_000, with_data=False), MNIST_SPEC)
    # 10,000 x 10,000 1-bit PNG (a complete file of ~20 kB): warning range of
    # Pillow, rejected before decoding.
    bomb = bilevel_png(10_000, 10_000)
    assert len(bomb) < 100_000
    with pytest.raises(ImageError, match="10000×10000"):
        data.load_image(bomb, MNIST_SPEC)
    with warnings.catch_warnings():  # an app that turns Pillow's warning to error
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageError, match="decompression bomb"):
            data.load_image(bomb, MNIST_SPEC)
    # A genuine 50-megapixel image: under Pillow's limit, over ours.
    fifty = bilevel_png(8000, 6250)
    with Image.open(io.BytesIO(fifty)) as im:
        assert im.size == (8000, 6250)
    start = time.perf_counter()
    with pytest.raises(ImageError) as info:
        data.load_image(fifty, RGB_SPEC)
    assert time.perf_counter() - start < 1.0  # rejected from the header, no decode
    msg = str(info.value)
    assert "8000×6250" in msg and "50.0 megapixels" in msg and "16" in msg
    # A 16-megapixel image is at the limit and is accepted; one more row is not.
    x = data.load_image(bilevel_png(4000, 4000, noise=True), MNIST_SPEC, invert=False)
    assert x.shape == (1, 1, 28, 28) and 0.3 < float(x.mean()) < 0.7
    with pytest.raises(ImageError, match="4000×4001"):
        data.load_image(bilevel_png(4000, 4001, noise=True), MNIST_SPEC)
    # The same size in 2 kB (all black) is a bomb by its pixels per byte.
    with pytest.raises(ImageError, match="pixels per byte"):
        data.load_image(bilevel_png(4000, 4000), MNIST_SPEC)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's TIFF/EXIF notices
def test_fuzzed_images_only_raise_image_error() -> None:
    """Random byte damage to valid files: a tensor or an ImageError, nothing else."""
    rng = np.random.default_rng(1)
    base = Image.effect_mandelbrot((48, 40), (-2, -1, 1, 1), 40)
    payloads = [
        encode(base.convert("RGB"), "JPEG", quality=85),
        encode(base.convert("RGBA"), "PNG"),
        encode(base.convert("P"), "GIF"),
        encode(base, "TIFF"),
        encode(base.convert("RGB"), "BMP"),
        encode(base.convert("RGB"), "WEBP"),
    ]
    outcomes = {"ok": 0, "rejected": 0}  # damage outside pixel data may decode
    for payload in payloads:
        for _ in range(40):
            buf = np.frombuffer(payload, np.uint8).copy()
            pos = rng.integers(0, len(buf), size=int(rng.integers(1, 9)))
            buf[pos] = rng.integers(0, 256, size=len(pos), dtype=np.uint8)
            if rng.random() < 0.3:
                buf = buf[: int(rng.integers(1, len(buf)))]
            try:
                x = data.load_image(buf.tobytes(), RGB_SPEC)
            except ImageError:
                outcomes["rejected"] += 1
            else:
                assert x.shape == (1, 3, 64, 64)
                assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
                outcomes["ok"] += 1
    assert outcomes["rejected"] > 0 and outcomes["ok"] > 0


def test_size_limits_are_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    payload = encode(Image.new("L", (20, 20)), "PNG")
    monkeypatch.setattr(data.images, "MAX_BYTES", len(payload) - 1)
    with pytest.raises(ImageError, match="MB"):
        data.load_image(payload, MNIST_SPEC)
    path = tmp_path / "a.png"
    path.write_bytes(payload)
    with pytest.raises(ImageError, match="MB"):
        data.load_image(path, MNIST_SPEC)
    with pytest.raises(ImageError, match="MB"):
        data.load_image(io.BytesIO(payload), MNIST_SPEC)
    monkeypatch.setattr(data.images, "MAX_BYTES", 50 * 1024 * 1024)
    monkeypatch.setattr(data.images, "MAX_PIXELS", 399)
    with pytest.raises(ImageError, match="20×20"):
        data.load_image(payload, MNIST_SPEC)
    with pytest.raises(ImageError, match="20×20"):
        data.image_to_tensor(Image.new("L", (20, 20)), MNIST_SPEC)


def test_wrong_spec(pil_state: None) -> None:
    payload = encode(Image.new("RGB", (8, 8)), "PNG")
    bad_specs = [
        {},
        {"shape": [1, 28, 28]},
        {"input_shape": [2, 28, 28]},
        {"input_shape": [1, 28]},
        {"input_shape": [1, 28.0, 28]},
        {"input_shape": [1, 0, 28]},
        {"input_shape": [True, 28, 28]},
        {"input_shape": "1,28,28"},
        {"input_shape": None},
        None,
        [1, 28, 28],
    ]
    for spec in bad_specs:
        with pytest.raises(ImageError, match=r"spec|input_shape"):
            data.load_image(payload, spec)  # type: ignore[arg-type]
        with pytest.raises(ImageError):
            data.image_to_tensor(Image.new("RGB", (8, 8)), spec)  # type: ignore[arg-type]
    assert issubclass(ImageError, ValueError)
    ok = data.load_image(payload, {"input_shape": torch.Size([3, 4, 5])})
    assert ok.shape == (1, 3, 4, 5)


def test_rgba_png_composited_over_white() -> None:
    a = np.zeros((32, 32, 4), np.uint8)
    a[:, :16] = (0, 0, 0, 255)  # left: opaque black
    a[:, 16:] = (255, 0, 0, 0)  # right: fully transparent red
    x = data.load_image(
        encode(Image.fromarray(a, "RGBA"), "PNG"), {"input_shape": [3, 32, 32]}
    )
    assert x.shape == (1, 3, 32, 32) and x.dtype == torch.float32
    assert float(x[..., :, :14].max()) < 0.02
    assert float(x[..., :, 18:].min()) > 0.98  # white, not red
    la = Image.fromarray(a[:, :, [0, 3]], "LA")
    g = data.load_image(encode(la, "PNG"), {"input_shape": [1, 32, 32]}, invert=False)
    assert float(g[..., 18:].min()) > 0.98 and float(g[..., :14].max()) < 0.02


def test_palette_gif_and_transparency() -> None:
    img = Image.new("P", (30, 30), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (0, 15, 30, 30))  # bottom half: palette entry 1 (blue)
    x = data.load_image(encode(img, "GIF"), {"input_shape": [3, 30, 30]})
    top = x[0, :, 2:12].mean(dim=(1, 2))
    bottom = x[0, :, 18:28].mean(dim=(1, 2))
    assert torch.allclose(top, torch.tensor([1.0, 0.0, 0.0]), atol=0.02)
    assert torch.allclose(bottom, torch.tensor([0.0, 0.0, 1.0]), atol=0.02)
    # GIF transparency (index 1 transparent): transparent part becomes white.
    y = data.load_image(
        encode(img, "GIF", transparency=1), {"input_shape": [3, 30, 30]}
    )
    assert float(y[0, :, 18:28].min()) > 0.98


def test_cmyk_jpeg() -> None:
    img = Image.new("CMYK", (40, 40), (0, 255, 255, 0))  # pure red in CMYK
    payload = encode(img, "JPEG", quality=95)
    with Image.open(io.BytesIO(payload)) as im:
        assert im.mode == "CMYK"
    x = data.load_image(payload, {"input_shape": [3, 16, 16]})
    r, g, b = x[0].mean(dim=(1, 2)).tolist()
    assert r > 0.9 and g < 0.1 and b < 0.1


def test_16bit_and_float_grayscale() -> None:
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))
    payload = encode(Image.fromarray(ramp), "PNG")
    with Image.open(io.BytesIO(payload)) as im:
        assert im.mode.startswith("I")
    spec = {"input_shape": [1, 64, 64]}
    x = data.load_image(payload, spec, invert=False)
    np.testing.assert_allclose(x[0, 0].numpy(), ramp / 65535.0, atol=1 / 255 + 1e-6)
    rgb = data.load_image(payload, {"input_shape": [3, 8, 8]})
    assert rgb.shape == (1, 3, 8, 8) and torch.equal(rgb[:, 0], rgb[:, 2])
    f = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (32, 1))
    y = data.load_image(encode(Image.fromarray(f, "F"), "TIFF"), spec, invert=False)
    assert float(y[0, 0, :, :4].mean()) < 0.1 and float(y[0, 0, :, -4:].mean()) > 0.9
    bits = Image.new("1", (16, 16), 0)
    bits.paste(1, (0, 0, 8, 16))
    z = data.load_image(encode(bits, "BMP"), {"input_shape": [1, 16, 16]}, invert=False)
    assert float(z[0, 0, :, :7].min()) == 1.0 and float(z[0, 0, :, 9:].max()) == 0.0


def test_exif_orientation_is_applied() -> None:
    stored = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 tall
    stored[:, :20] = 255  # left half white, right half black
    img = Image.fromarray(stored, "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise for display
    payload = encode(img, "JPEG", quality=95, exif=exif.tobytes())
    # Displayed upright it is 20 wide and 40 tall, white on top.
    x = data.load_image(payload, {"input_shape": [3, 40, 20]})
    assert x.shape == (1, 3, 40, 20)
    assert float(x[0, :, :16].mean()) > 0.95 and float(x[0, :, 24:].mean()) < 0.05
    plain = data.load_image(
        encode(img, "JPEG", quality=95), {"input_shape": [3, 20, 40]}
    )
    assert float(plain[0, :, :, :16].mean()) > 0.95  # no EXIF: left stays white


def test_grayscale_vs_rgb_spec_and_center_crop() -> None:
    a = np.zeros((50, 100, 3), np.uint8)  # 100 wide: red | green | blue bands
    a[:, :25] = (255, 0, 0)
    a[:, 25:75] = (0, 255, 0)
    a[:, 75:] = (0, 0, 255)
    payload = encode(Image.fromarray(a), "PNG")
    rgb = data.load_image(payload, {"input_shape": [3, 10, 10]})
    assert rgb.shape == (1, 3, 10, 10)
    # Cropped to the central square: only green remains.
    assert torch.allclose(
        rgb[0].mean(dim=(1, 2)), torch.tensor([0.0, 1.0, 0.0]), atol=0.02
    )
    gray = data.load_image(payload, {"input_shape": [1, 10, 10]}, invert=False)
    assert gray.shape == (1, 1, 10, 10)
    assert abs(float(gray.mean()) - 0.587) < 0.01  # ITU-R 601 luma of pure green
    wide = data.load_image(payload, {"input_shape": [3, 5, 20]})  # 4:1, crop rows
    assert wide.shape == (1, 3, 5, 20) and float(wide[0, 0, :, 0].mean()) > 0.9


def test_output_range_shape_and_sources(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    payload = encode(Image.fromarray(noise), "PNG")
    path = tmp_path / "noise.png"
    path.write_bytes(payload)
    buf = io.BytesIO(payload)
    buf.read()  # already consumed, as a Streamlit UploadedFile may be on a rerun
    outs = [
        data.load_image(payload, RGB_SPEC),
        data.load_image(bytearray(payload), RGB_SPEC),
        data.load_image(str(path), RGB_SPEC),
        data.load_image(path, RGB_SPEC),
        data.load_image(buf, RGB_SPEC),
    ]
    with open(path, "rb") as f:
        outs.append(data.load_image(f, RGB_SPEC))
    for x in outs:
        assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float32
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert torch.equal(x, outs[0])
    big = Image.effect_mandelbrot((3000, 2000), (-2, -1, 1, 1), 30).convert("RGB")
    x = data.load_image(encode(big, "JPEG", quality=80), RGB_SPEC)  # draft path
    assert x.shape == (1, 3, 64, 64) and float(x.std()) > 0.05


def test_auto_invert_for_grayscale_models(mnist_dir: Path) -> None:
    drawing = Image.new("L", (280, 280), 255)  # white paper...
    drawing.paste(0, (120, 40, 160, 240))  # ...with a dark vertical stroke
    payload = encode(drawing, "PNG")
    x = data.load_image(payload, MNIST_SPEC)  # auto: border bright -> inverted
    assert float(x[0, 0, :, :5].max()) < 0.01  # background now black
    assert float(x[0, 0, 10:18, 13:15].min()) > 0.99  # stroke now white
    kept = data.load_image(payload, MNIST_SPEC, invert=False)
    assert torch.allclose(kept, 1 - x, atol=1e-6)
    rgb = data.load_image(payload, {"input_shape": [3, 28, 28]})  # never auto for RGB
    assert float(rgb[0, :, :, :5].min()) > 0.99
    forced = data.load_image(payload, {"input_shape": [3, 28, 28]}, invert=True)
    assert float(forced[0, :, :, :5].max()) < 0.01
    # A real MNIST digit (white on black) round-trips unchanged, not inverted.
    digits, _ = data.load_mnist(mnist_dir, "test")
    img = data.tensor_to_image(digits[0])
    back = data.load_image(encode(img, "PNG"), MNIST_SPEC)
    assert torch.allclose(back, digits[:1], atol=0.5 / 255)


def test_tensor_to_image() -> None:
    x = torch.tensor([[[-1.0, 0.5], [2.0, float("nan")]]])
    img = data.tensor_to_image(x)
    assert img.mode == "L" and img.size == (2, 2)
    assert np.asarray(img).tolist() == [[0, 128], [255, 0]]
    rgb = data.tensor_to_image(torch.rand(1, 3, 5, 7))
    assert rgb.mode == "RGB" and rgb.size == (7, 5)
    assert data.tensor_to_image(torch.zeros(4, 6)).size == (6, 4)
    y = torch.rand(1, 3, 9, 9, requires_grad=True)
    back = data.image_to_tensor(data.tensor_to_image(y * 1), {"input_shape": [3, 9, 9]})
    assert torch.allclose(back, y.detach(), atol=0.5 / 255 + 1e-6)
    with pytest.raises(ValueError):
        data.tensor_to_image(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError):
        data.tensor_to_image(torch.zeros(2, 4, 4))


def test_grace_hopper() -> None:
    img = data.grace_hopper()
    assert isinstance(img, Image.Image) and img.mode == "RGB"
    assert img.size == (512, 600)
    x = data.image_to_tensor(img, RGB_SPEC)
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0 and float(x.std()) > 0.1
    from_bytes = data.load_image(encode(img, "PNG"), RGB_SPEC)
    assert torch.allclose(from_bytes, x, atol=1e-6)


def test_rendered_digits_need_no_dataset():
    from lipnet.data import rendered_digit

    img = rendered_digit(8)
    assert img.size == (28, 28) and img.mode == "L"
    a = np.asarray(img)
    assert a[0].max() == 0 and a.max() == 255  # white ink, black border, like MNIST
    with pytest.raises(ValueError, match="digit"):
        rendered_digit(12)
