"""Make the README's Grace Hopper figure from the shipped moustache models.

Run: python docs/make_figures.py  (writes docs/grace_hopper_moustache.png)
Grace Hopper's portrait is public domain and ships with matplotlib; no CelebA
image is used.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lipnet import zoo
from lipnet.attacks import counterfactual
from lipnet.data import grace_hopper_face, image_to_tensor
from lipnet.io import load

OUT = Path(__file__).resolve().parent / "grace_hopper_moustache.png"


def main() -> None:
    models = zoo.list_models()
    hkr, base = load(models["moustache-hkr"]), load(models["moustache-baseline"])
    x = image_to_tensor(grace_hopper_face(), hkr.spec)
    rows = [
        (
            "moustache-hkr (1-Lipschitz, hKR)",
            counterfactual(hkr, x, "transport", overshoot=3.0),
        ),
        (
            "moustache-baseline (unconstrained)",
            counterfactual(base, x, "fmn", steps=200),
        ),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(9, 6.4))
    classes = hkr.spec["classes"]
    for row, (name, r) in zip(axes, rows, strict=True):
        before = classes[int(r.outputs_before[0, 0] > 0)]
        after = classes[int(r.outputs_after[0, 0] > 0)]
        row[0].imshow(r.x[0].permute(1, 2, 0).clamp(0, 1))
        row[0].set_title(f"{name}\ninput: {before}", fontsize=9)
        row[1].imshow(r.x_adv[0].permute(1, 2, 0).clamp(0, 1))
        row[1].set_title(
            f"counterfactual: {after}\n‖δ‖₂ = {float(r.l2[0]):.2f}", fontsize=9
        )
        diff = r.delta[0].sum(0)
        row[2].imshow(diff, cmap="RdBu_r", vmin=-0.5, vmax=0.5)
        row[2].set_title("difference (sum over RGB)", fontsize=9)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(OUT, dpi=120)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
