"""Fit lipnet.faces' framing (assets/faces/framing.json) on training faces.

Run: LIPNET_DATA=../shared/data nice -n 10 .venv/bin/python \
         bench/fit_face_framing.py [--n 2000] [--seed 1]

A random sample of the training faces of the shipped face model's split
(never test faces), from CelebA's official aligned crops by default
(img_align_celeba_89: the shared img_celeba_128 folder is framed otherwise,
eyes 5 px higher at 64 px and 3-4x looser; --folders picks), is drawn on
canvases with random similarity transforms (bench/face_canvas.py,
the same distribution the alignment benchmark uses, with its own seed), so
the true crop of each is known; lipnet.faces finds the four landmarks (iris
centres, mouth corners) and lipnet.faces.framing.fit learns the template
(median positions in the crop) and the linear correction. Only those 44
numbers are written; no image, crop or array of CelebA is kept.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import face_canvas as fc

import lipnet
from lipnet import data as D
from lipnet import faces
from lipnet.faces import framing

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2000, help="training faces")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--model", default="moustache-hkr")
    p.add_argument("--out", type=Path, default=framing.FRAMING_FILE)
    p.add_argument(
        "--folders",
        nargs="+",
        default=["img_align_celeba_89"],
        help="image folders whose framing to learn (default: CelebA's official "
        "aligned crops; img_celeba_128 is framed differently)",
    )
    args = p.parse_args()
    model = lipnet.load(ROOT / "assets" / "models" / args.model)
    config = model.spec["card"]["training"]["config"]
    paths, _, _ = fc.test_face_paths(
        config, D.data_dir(), 10**9, split_name="train", alternate=False
    )
    rng = np.random.default_rng(args.seed)
    # a random sample: the training folders are framed differently, and the
    # sample keeps their proportions (split order would be one folder first)
    paths = [paths[i] for i in rng.permutation(len(paths))]
    paths = [p for p in paths if p.parent.name in args.folders][: args.n]
    points, truths = [], []
    start = time.perf_counter()
    for path in paths:
        placed = fc.place(fc.face_pixels(path, fc.BASE), rng)
        found = faces.find_landmarks(placed.canvas, max_faces=1)
        if found:
            points.append(found[0][1])
            truths.append(fc.crop_from_truth(placed, 1))
    fitted = framing.fit(points, truths)
    framing.save(
        fitted,
        args.out,
        fitted_on=f"{len(points)} of {len(paths)} training faces of {args.model}'s "
        f"split from {', '.join(args.folders)}, random placements seed {args.seed}",
        command="LIPNET_DATA=../shared/data python bench/fit_face_framing.py "
        + " ".join(sys.argv[1:]),
    )
    print(
        f"fitted on {len(points)}/{len(paths)} faces in "
        f"{time.perf_counter() - start:.0f} s; template (64 px): "
        f"{np.round(fitted.template * 64, 2).tolist()}; wrote {args.out}"
    )


if __name__ == "__main__":
    main()
