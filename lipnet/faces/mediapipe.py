"""MediaPipe's face models (BlazeFace, Face Mesh, Iris) on the LiteRT runtime.

The four ``.tflite`` files in ``assets/faces`` are Google's MediaPipe models
(Apache-2.0), run by ``ai-edge-litert``'s interpreter on one CPU thread. This
module only turns pixels into landmarks; :mod:`lipnet.faces` maps them to the
face models' framing. Coordinates are continuous image coordinates: pixel
``(i, j)`` covers ``[i, i + 1) x [j, j + 1)`` (PIL's convention).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "faces"
MIN_SCORE = 0.5  # BlazeFace detection threshold (MediaPipe's)
NMS_IOU = 0.3  # boxes overlapping more are one face (MediaPipe's)
TILE_FROM = 1000  # photos this large are also searched in half-size tiles
MIN_PRESENCE = 0.1  # Face Mesh's own "is this a face" score (a logo: 0.0)
LEFT_EYE = (33, 133)  # mesh corners of the eye on the image's left
RIGHT_EYE = (362, 263)  # and of the eye on the image's right
MOUTH = (61, 291)  # mouth corners, image left then right
NOSE_TIP = 1

_lock = threading.Lock()  # one interpreter call at a time (not thread-safe)


class FaceModelError(RuntimeError):
    """The face models or their runtime are missing or broken."""


@dataclass
class Detection:
    """One BlazeFace detection in image pixels: box (x0, y0, x1, y1), score,
    and six keypoints (eye on the image's left, other eye, nose tip, mouth,
    left and right ear tragion)."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray  # (6, 2)


@cache
def _interpreter(name: str) -> Any:  # an ai_edge_litert Interpreter
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:  # pragma: no cover - a broken install
        raise FaceModelError(
            "face alignment needs the ai-edge-litert package "
            "(pip install -r requirements.txt)"
        ) from exc
    path = ASSETS / f"{name}.tflite"
    if not path.is_file():
        raise FaceModelError(f"face model file {path} is missing")
    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    return it


def _run(name: str, x: np.ndarray) -> list[np.ndarray]:
    """Run one model on one input (H, W, 3) float32; outputs in model order."""
    with _lock:
        it = _interpreter(name)
        it.set_tensor(it.get_input_details()[0]["index"], x[None].astype(np.float32))
        it.invoke()
        return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def roi_tensor(
    img: Image.Image, centre: np.ndarray, side: float, theta: float, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sample the square of ``side`` pixels centred at ``centre``, turned by
    ``theta`` radians, as an (n, n, 3) array in [0, 1]; returns it with the
    2x3 map from tensor pixels to image pixels. Outside the image is black."""
    c, s = math.cos(theta) * side / n, math.sin(theta) * side / n
    m = np.array(
        [
            [c, -s, centre[0] - (c - s) * n / 2],
            [s, c, centre[1] - (s + c) * n / 2],
        ]
    )
    k = max(1, int(side // (2 * n)))  # area-average first: no aliasing
    src, origin = img, np.zeros(2)
    if k > 1:  # only the window's bounding box, then reduced
        half = side * (abs(math.cos(theta)) + abs(math.sin(theta))) / 2 + k
        x0, y0 = (math.floor(v - half) for v in centre)
        x1, y1 = (math.ceil(v + half) for v in centre)
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, img.width), min(y1, img.height)
        if x1 - x0 >= k and y1 - y0 >= k:
            src, origin = img.crop((x0, y0, x1, y1)).reduce(k), np.array([x0, y0])
        else:
            src = img.reduce(k)
    local = m.copy()
    local[:, 2] -= origin
    coeffs = tuple((local / k).ravel())
    out = src.transform((n, n), Image.Transform.AFFINE, coeffs, Image.BILINEAR)
    return np.asarray(out, dtype=np.float32) / 255.0, m


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine map to (K, 2) points."""
    return pts @ m[:, :2].T + m[:, 2]


@cache
def _anchors(n: int, strides: tuple[int, ...], per_cell: tuple[int, ...]) -> np.ndarray:
    """SSD anchor centres (normalised) as MediaPipe's ssd_anchors_calculator."""
    out = []
    for stride, reps in zip(strides, per_cell, strict=True):
        g = n // stride
        ys, xs = np.mgrid[0:g, 0:g]
        centres = np.stack([(xs.ravel() + 0.5) / g, (ys.ravel() + 0.5) / g], 1)
        out.append(np.repeat(centres, reps, axis=0))
    return np.concatenate(out).astype(np.float64)


DETECTORS = {  # name: (input side, strides, anchors per cell)
    "face_detection_short_range": (128, (8, 16), (2, 6)),
    "face_detection_full_range": (192, (4,), (1,)),
}


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo, hi = np.maximum(a[:2], b[:, :2]), np.minimum(a[2:], b[:, 2:])
    inter = np.clip(hi - lo, 0, None).prod(1)
    area = (a[2:] - a[:2]).prod() + (b[:, 2:] - b[:, :2]).prod(1)
    return inter / np.maximum(area - inter, 1e-12)


def _weighted_nms(rows: np.ndarray, scores: np.ndarray) -> list[Detection]:
    """MediaPipe's weighted non-maximum suppression: overlapping detections
    are averaged, weighted by score. ``rows``: (K, 16) box + keypoints."""
    order = np.argsort(-scores)
    rows, scores = rows[order], scores[order]
    out: list[Detection] = []
    alive = np.ones(len(rows), dtype=bool)
    for i in range(len(rows)):
        if not alive[i]:
            continue
        group = alive & (_iou(rows[i, :4], rows[:, :4]) > NMS_IOU)
        group[i] = True
        w = scores[group][:, None]
        mean = (rows[group] * w).sum(0) / w.sum()
        alive &= ~group
        out.append(Detection(mean[:4], float(scores[i]), mean[4:].reshape(6, 2)))
    return out


def _detect_in(
    img: Image.Image, centre: np.ndarray, side: float, models: tuple[str, ...]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Raw detections (K, 16) and scores in the square window ``side`` at
    ``centre`` (the whole image, letterboxed, or one tile)."""
    rows, scores = [], []
    for name in models:
        n, strides, per_cell = DETECTORS[name]
        x, m = roi_tensor(img, centre, side, 0.0, n)
        raw_boxes, raw_scores = _run(name, x * 2.0 - 1.0)
        raw = raw_boxes[0].reshape(-1, 8, 2) / n
        anchors = _anchors(n, strides, per_cell)
        raw[:, 0] += anchors
        raw[:, 2:] += anchors[:, None]
        score = 1 / (1 + np.exp(-np.clip(raw_scores[0, :, 0], -80, 80)))
        keep = (score > MIN_SCORE) & (raw[:, 1] > 0).all(1)
        if not keep.any():
            continue
        r = raw[keep]
        centre_, size = r[:, 0], r[:, 1]
        corners = [centre_ - size / 2, centre_ + size / 2]
        pts = np.concatenate([*corners, *r[:, 2:].transpose(1, 0, 2)], 1)
        rows.append(apply(m, pts.reshape(-1, 2) * n).reshape(len(r), 16))
        scores.append(score[keep])
    return rows, scores


def detect(img: Image.Image) -> list[Detection]:
    """BlazeFace on an RGB image: the short- and full-range models on the
    whole image, and the full-range model on half-size overlapping tiles of
    an image of TILE_FROM pixels or more (a group photo's small faces);
    overlapping detections merged."""
    w, h = img.size
    side = float(max(w, h))
    rows, scores = _detect_in(img, np.array([w / 2, h / 2]), side, tuple(DETECTORS))
    if side >= TILE_FROM:
        tile = side / 2
        for cx in np.linspace(
            tile / 2,
            max(w - tile / 2, tile / 2),
            max(1, math.ceil((w - tile) / (tile / 2)) + 1),
        ):
            for cy in np.linspace(
                tile / 2,
                max(h - tile / 2, tile / 2),
                max(1, math.ceil((h - tile) / (tile / 2)) + 1),
            ):
                r, sc = _detect_in(
                    img, np.array([cx, cy]), tile, ("face_detection_full_range",)
                )
                rows += r
                scores += sc
    if not rows:
        return []
    return _weighted_nms(np.concatenate(rows), np.concatenate(scores))


def mesh(img: Image.Image, det: Detection) -> tuple[np.ndarray, float]:
    """Face Mesh: 468 landmarks (image pixels) and the presence score, from a
    BlazeFace detection (MediaPipe's ROI: the box's long side times 1.5,
    turned so the eyes are level)."""
    eye_a, eye_b = det.keypoints[0], det.keypoints[1]
    theta = math.atan2(eye_b[1] - eye_a[1], eye_b[0] - eye_a[0])
    centre = (det.box[:2] + det.box[2:]) / 2
    side = float(max(det.box[2:] - det.box[:2])) * 1.5
    x, m = roi_tensor(img, centre, side, theta, 192)
    raw, flag = _run("face_landmark", x)
    marks = apply(m, raw.reshape(468, 3)[:, :2])
    presence = float(1 / (1 + math.exp(-float(np.clip(flag.ravel()[-1], -80, 80)))))
    return marks, presence


def iris_centre(
    img: Image.Image, marks: np.ndarray, corners: tuple[int, int]
) -> np.ndarray:
    """Iris centre (image pixels) of one eye from its two mesh corners (the
    Iris model's ROI: 2.3 times the corner distance, eye level; the eye on
    the image's right is mirrored, as the model expects a left eye)."""
    a, b = marks[corners[0]], marks[corners[1]]
    theta = math.atan2(b[1] - a[1], b[0] - a[0])
    side = max(float(np.hypot(*(b - a))) * 2.3, 1.0)
    flip = corners == RIGHT_EYE
    x, m = roi_tensor(img, (a + b) / 2, side, theta, 64)
    if flip:
        x = x[:, ::-1]
    _, iris = _run("iris_landmark", np.ascontiguousarray(x))
    p = iris.reshape(5, 3)[0, :2].copy()
    if flip:
        p[0] = 64 - p[0]
    return apply(m, p[None])[0]
