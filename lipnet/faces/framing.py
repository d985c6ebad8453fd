"""The face models' framing: where four landmarks sit in a training crop.

A crop's coordinates are *unit* coordinates: (0, 0) is its top-left corner
and (1, 1) its bottom-right, whatever its size. The framing is a template of
four landmark positions (the two iris centres, then the two mouth corners,
each pair from the image's left) measured as medians over training faces,
plus a small linear correction learned on the same faces: CelebA's crops are
not a pure function of these four points, and the correction predicts the
rest of the crop's similarity transform from the shape of the landmarks.
Both live in ``assets/faces/framing.json`` (numbers only, no image).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

FRAMING_FILE = Path(__file__).resolve().parents[2] / "assets" / "faces" / "framing.json"
POINTS = ("eye_left", "eye_right", "mouth_left", "mouth_right")
RIDGES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)  # ridge penalties tried (per face)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, shift; no
    reflection) taking points ``src`` to ``dst`` (Umeyama 1991).

    Args:
        src: (K, 2) points, K >= 2, not all equal.
        dst: (K, 2) points.

    Returns:
        A 2x3 matrix ``m`` with ``dst ≈ src @ m[:, :2].T + m[:, 2]``.
    """
    src, dst = np.asarray(src, float), np.asarray(dst, float)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(
            f"need two (K, 2) arrays with K >= 2, got {src.shape}, {dst.shape}"
        )
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("landmarks must be finite")
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    var = (s**2).sum(1).mean()
    if var <= 1e-12:
        raise ValueError("source points coincide: no transform fits them")
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    e = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    r = u @ e @ vt
    k = float((sig * np.diag(e)).sum() / var)
    return np.hstack([k * r, (md - k * r @ ms)[:, None]])


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 2x3 affine map ``a ∘ b`` (apply ``b``, then ``a``)."""
    return (np.vstack([a, [0, 0, 1]]) @ np.vstack([b, [0, 0, 1]]))[:2]


def invert(m: np.ndarray) -> np.ndarray:
    """The inverse of an invertible 2x3 affine map.

    Raises:
        ValueError: when the map is singular.
    """
    lin = np.asarray(m, float)[:, :2]
    det = float(np.linalg.det(lin))
    if not np.isfinite(det) or abs(det) < 1e-12:
        raise ValueError("the transform is singular")
    inv = np.linalg.inv(lin)
    return np.hstack([inv, -(inv @ np.asarray(m, float)[:, 2])[:, None]])


@dataclass(frozen=True)
class Framing:
    """Template (4, 2) in unit crop coordinates, correction (9, 4): the
    residual shape (8 numbers) and 1 map to (scale - 1, rotation, shift x,
    shift y) of the crop-to-crop correction."""

    template: np.ndarray
    correction: np.ndarray

    def crop_to_photo(self, points: np.ndarray) -> np.ndarray:
        """The 2x3 map from unit crop coordinates to the photo, for the four
        landmarks ``points`` (4, 2) in photo pixels."""
        s = similarity(self.template, points)
        q = points @ invert(s)[:, :2].T + invert(s)[:, 2]
        a, b, tx, ty = np.append((q - self.template).ravel(), 1.0) @ self.correction
        c = np.array([[1 + a, -b, tx], [b, 1 + a, ty]])
        return compose(s, c)


def fit(points: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> Framing:
    """Learn the framing from faces whose true crop is known.

    Args:
        points: per face, the four landmarks (4, 2) in image pixels.
        truths: per face, the true 2x3 map from unit crop coordinates to the
            same image.

    Returns:
        The template (median landmark positions in the crops) and the ridge
        correction from the residual landmark shape to the true crop.
    """
    if len(points) != len(truths) or len(points) < 10:
        raise ValueError("need at least 10 faces, with one truth each")
    unit = np.stack(
        [
            p @ invert(t)[:, :2].T + invert(t)[:, 2]
            for p, t in zip(points, truths, strict=True)
        ]
    )
    template = np.median(unit, axis=0)
    x, y = [], []
    for p, t in zip(points, truths, strict=True):
        s = similarity(template, p)
        q = p @ invert(s)[:, :2].T + invert(s)[:, 2]
        c = compose(invert(s), t)  # the crop-to-crop correction wanted
        x.append(np.append((q - template).ravel(), 1.0))
        y.append(
            [(c[0, 0] + c[1, 1]) / 2 - 1, (c[1, 0] - c[0, 1]) / 2, c[0, 2], c[1, 2]]
        )
    xa, ya = np.array(x), np.array(y)
    cut = len(xa) * 4 // 5  # the last fifth chooses the ridge penalty
    best = min(
        RIDGES, key=lambda r: _ridge_error(xa[:cut], ya[:cut], xa[cut:], ya[cut:], r)
    )
    return Framing(template, _ridge(xa, ya, best))


def _ridge(x: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    penalty = ridge * len(x) * np.diag([1.0] * (x.shape[1] - 1) + [0.0])
    return np.linalg.solve(x.T @ x + penalty, x.T @ y)


def _ridge_error(
    x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, ridge: float
) -> float:
    return float(((xv @ _ridge(x, y, ridge) - yv) ** 2).sum(1).mean())


def save(framing: Framing, path: Path, **info: object) -> None:
    """Write a framing (and free-form provenance ``info``) as JSON."""
    doc = {
        "points": list(POINTS),
        "template": np.round(framing.template, 6).tolist(),
        "correction": np.round(framing.correction, 6).tolist(),
        **info,
    }
    path.write_text(json.dumps(doc, indent=1) + "\n")


@cache
def load(path: Path = FRAMING_FILE) -> Framing:
    """Read and check a framing file (shapes, finite numbers)."""
    try:
        doc = json.loads(Path(path).read_text())
        template = np.array(doc["template"], dtype=float)
        correction = np.array(doc["correction"], dtype=float)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read the face framing {path}: {exc}") from exc
    if template.shape != (4, 2) or correction.shape != (9, 4):
        raise ValueError(f"{path}: template must be 4x2 and correction 9x4")
    if not (np.isfinite(template).all() and np.isfinite(correction).all()):
        raise ValueError(f"{path}: numbers must be finite")
    return Framing(template, correction)
