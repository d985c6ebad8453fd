"""Make the README's Grace Hopper figures from the shipped face models.

Run: python docs/make_figures.py  (writes docs/grace_hopper_<attribute>.png)
Grace Hopper's portrait is public domain and ships with matplotlib; no CelebA
image is used. Each figure has three rows, every budget in its title:
the hKR model's transport counterfactual at overshoot 1 (as far past the
boundary as the input was before it), the unconstrained twin's smallest
flip (FMN, 200 steps), and the twin under PGD-L2 at the hKR change's own
size, so the two networks are compared at the same ‖δ‖ too.
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

DOCS = Path(__file__).resolve().parent
OVERSHOOT = 1.0


def figure(attribute: str) -> Path:
    """The three-row figure for the `attribute`-hkr model and its twin."""
    models = zoo.list_models()
    hkr = load(models[f"{attribute}-hkr"])
    base = load(models[f"{attribute}-baseline"])
    x = image_to_tensor(grace_hopper_face(), hkr.spec)
    ours = counterfactual(hkr, x, "transport", overshoot=OVERSHOOT)
    size = float(ours.l2[0])
    rows = [
        (
            f"{attribute}-hkr (1-Lipschitz, hKR)\ntransport, overshoot {OVERSHOOT:g}",
            ours,
        ),
        (
            f"{attribute}-baseline (unconstrained)\nsmallest flip found (FMN)",
            counterfactual(base, x, "fmn", steps=200),
        ),
        (
            f"{attribute}-baseline (unconstrained)\nPGD-L2, same ‖δ‖ = {size:.2f}",
            counterfactual(base, x, "pgd", eps=size, steps=100),
        ),
    ]
    classes = hkr.spec["classes"]
    fig, axes = plt.subplots(3, 3, figsize=(9, 9.6))
    for row, (name, r) in zip(axes, rows, strict=True):
        before = classes[int(r.outputs_before[0, 0] > 0)]
        after = classes[int(r.outputs_after[0, 0] > 0)]
        row[0].imshow(r.x[0].permute(1, 2, 0).clamp(0, 1))
        row[0].set_title(f"{name}\ninput: {before}", fontsize=8)
        row[1].imshow(r.x_adv[0].permute(1, 2, 0).clamp(0, 1))
        row[1].set_title(f"result: {after}\n‖δ‖₂ = {float(r.l2[0]):.2f}", fontsize=8)
        diff = r.delta[0].sum(0)
        scale = max(float(diff.abs().max()), 1e-6)
        row[2].imshow(diff, cmap="RdBu_r", vmin=-scale, vmax=scale)
        row[2].set_title(f"difference (sum over RGB, ±{scale:.2f})", fontsize=8)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    out = DOCS / f"grace_hopper_{attribute}.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    for attribute in ("moustache", "eyeglasses"):
        if f"{attribute}-hkr" in zoo.list_models():
            print(f"wrote {figure(attribute)}")


if __name__ == "__main__":
    main()
