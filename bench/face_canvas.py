"""Test faces put back into a photo: shared by bench_alignment and
bench_face_detectors.

A test face (an aligned CelebA crop of the shipped face model's test split,
decoded at 128 px from the same file the loader reads) is drawn onto a larger
canvas through a random similarity transform (scale, rotation, shift) over a
plain or noisy background. The transform is returned, so the true position of
every crop pixel in the canvas is known. Nothing is written to disk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lipnet.data.celeba import _celeba_index, _decode_square, celeba_index, celeba_split
from lipnet.data.celeba_identity import identity_split, read_identities
from lipnet.zoo import ATTRIBUTES_TASK

BASE = 128  # the face crop's side on the canvas at scale 1
CANVAS = 400  # the canvas side
MARGIN = 0.25  # mirrored context around the crop, a fraction of its side
SUPERSAMPLE = 2  # render at 2x, then area-average: an anti-aliased photo


@dataclass
class Placed:
    """A face on a canvas: ``canvas_from_crop`` maps crop pixel coordinates
    (crop of side ``BASE``, pixel centres at i + 0.5) to canvas coordinates."""

    canvas: Image.Image
    canvas_from_crop: np.ndarray  # 2x3
    scale: float
    angle_deg: float
    background: str


def test_face_paths(
    config: dict,
    root: Path,
    n: int,
    *,
    men_without: bool = False,
    split_name: str = "test",
    alternate: bool = True,
    shuffle: int | None = None,
    attribute: str | None = None,
    folders: list[str] | None = None,
) -> tuple[list[Path], list[str], list[int]]:
    """Image paths, ids and labels of one split of the model's task (the test
    split by default), in split order.

    ``men_without``: only men without the attribute (the counterfactual judge's
    inputs); otherwise positives and negatives alternate (as the dashboard's
    gallery does), so both decisions are represented; ``alternate=False``:
    the first ``n`` of the split. ``shuffle``: a seed to draw from the split
    in random order (the split is sorted by id, and ids run by folder).
    A multi-attribute model's config (task "celeba-attributes") is split by
    identity, and `attribute` names the one its labels are of. ``folders``:
    only faces from these of the config's folders (the split is still made
    over all of them, so no training face comes in).
    """
    celeba = root / "celeba"
    seed = int(config.get("seed", 0))
    every = config.get("image_folders", ["img_celeba_128"])
    if config.get("task") == ATTRIBUTES_TASK:
        attribute = attribute or "Mustache"
        paths, ids, table = celeba_index(celeba, config["attributes"], every)
        labels = table[:, list(config["attributes"]).index(attribute)]
        identities = read_identities(celeba / "identity_CelebA.txt")
        split = identity_split(ids, identities, seed)[split_name]
    else:
        attribute = config.get("attribute", "Mustache")
        paths, ids, labels = _celeba_index(celeba, attribute, every)
        split = celeba_split(ids, labels, seed=seed)[split_name]
    pos = {name: k for k, name in enumerate(ids)}
    if folders is not None:
        split = [i for i in split if paths[pos[i]].parent.name in folders]
    if shuffle is not None:
        split = [
            split[i] for i in np.random.default_rng(shuffle).permutation(len(split))
        ]
    if men_without:
        from lipnet.data.celeba import read_celeba_attributes

        names, attrs, matrix = read_celeba_attributes(celeba / "list_attr_celeba.txt")
        row = {name: k for k, name in enumerate(names)}
        male = attrs.index("Male")
        chosen = [
            i for i in split if labels[pos[i]] == 0 and matrix[row[i], male] == 1
        ][:n]
    elif not alternate:
        chosen = split[:n]
    else:
        p = [i for i in split if labels[pos[i]] == 1]
        q = [i for i in split if labels[pos[i]] == 0]
        chosen = [i for pair in zip(p, q, strict=False) for i in pair][:n]
    return (
        [paths[pos[i]] for i in chosen],
        chosen,
        [int(labels[pos[i]]) for i in chosen],
    )


def face_pixels(path: Path, size: int) -> Image.Image:
    """The face crop exactly as the loader decodes it (centre square, resized)."""
    return Image.fromarray(_decode_square(path, size))


def place(face: Image.Image, rng: np.random.Generator) -> Placed:
    """Draw ``face`` (BASE x BASE) on a CANVAS x CANVAS canvas: scale 0.6-1.5,
    rotation +-20 degrees, shift up to +-20% of the face size, background plain
    (one random colour) or noisy (per-pixel noise around a random colour)."""
    scale = float(rng.uniform(0.6, 1.5))
    angle = float(rng.uniform(-20.0, 20.0))
    shift = rng.uniform(-0.2, 0.2, size=2) * BASE * scale
    colour = rng.uniform(0, 255, size=3)
    noisy = bool(rng.random() < 0.5)
    return place_at(face, scale, angle, shift, colour, noisy, rng)


def place_at(
    face: Image.Image,
    scale: float,
    angle: float,
    shift: np.ndarray,
    colour: np.ndarray,
    noisy: bool,
    rng: np.random.Generator | None = None,
) -> Placed:
    """Draw ``face`` with its mirrored margin (MARGIN of its side on each side:
    a photo has more head and background around the crop than a hard edge)
    at ``scale`` and ``angle`` (degrees), centred at the canvas centre plus
    ``shift``, over a plain or noisy background of ``colour``."""
    m = round(MARGIN * BASE)
    padded = Image.fromarray(
        np.pad(np.asarray(face), ((m, m), (m, m), (0, 0)), "symmetric")
    )
    centre = CANVAS / 2 + np.asarray(shift, float)
    t = math.radians(angle)
    lin = scale * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    off = centre - lin @ np.array([BASE / 2, BASE / 2])
    fwd = np.hstack([lin, off[:, None]])  # crop -> canvas
    big = CANVAS * SUPERSAMPLE
    if noisy:
        rng = rng if rng is not None else np.random.default_rng(0)
        noise = rng.normal(0, 40, size=(big, big, 3))
        bg = np.clip(colour + noise, 0, 255).astype(np.uint8)
    else:
        bg = np.broadcast_to(np.asarray(colour).astype(np.uint8), (big, big, 3)).copy()
    # PIL wants the inverse map (output pixel -> input pixel) in its corner
    # convention; the padded image's pixel (u, v) is crop pixel (u - m, v - m)
    pad = np.array([[1, 0, -m], [0, 1, -m], [0, 0, 1]], float)
    fwd_big = np.diag([SUPERSAMPLE, SUPERSAMPLE, 1]) @ np.vstack([fwd, [0, 0, 1]]) @ pad
    coeffs = tuple(np.linalg.inv(fwd_big)[:2].ravel())
    rgba = padded.convert("RGBA")
    warped = rgba.transform((big, big), Image.Transform.AFFINE, coeffs, Image.BICUBIC)
    out = Image.fromarray(bg)
    out.paste(warped, (0, 0), warped)
    canvas = out.reduce(SUPERSAMPLE)
    return Placed(canvas, fwd, scale, angle, "noisy" if noisy else "plain")


def crop_from_truth(placed: Placed, size: int) -> np.ndarray:
    """2x3 map from output crop pixels (side ``size``) to canvas pixels."""
    k = BASE / size
    s = np.array([[k, 0, 0], [0, k, 0], [0, 0, 1]])
    m = np.vstack([placed.canvas_from_crop, [0, 0, 1]]) @ s
    return m[:2]


def grid_error(est: np.ndarray, truth: np.ndarray, size: int) -> float:
    """Mean distance (in output pixels of side ``size``) between where the
    estimated and the true crop maps send each output pixel centre."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    pts = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    a, b = est @ pts, truth @ pts
    scale = math.sqrt(abs(np.linalg.det(truth[:, :2])))
    return float(np.linalg.norm(a - b, axis=0).mean() / scale)
