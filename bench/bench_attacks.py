"""Minimal-L2 attack strength and speed: lipnet vs foolbox, and certificate tightness.

Run: python bench/bench_attacks.py [--n 500] [--models mnist08-hkr ...]
For each shipped model, on the same first N test images: the median smallest
L2 perturbation found and the time taken by lipnet's FMN and by foolbox's
FMN, DDN and Carlini-Wagner (dev requirement only), with ratios to the best
reference; for certified models also the tightness (median found distance /
certified radius, in R^d and inside the pixel box).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import foolbox as fb
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lipnet import zoo
from lipnet.attacks import counterfactual
from lipnet.attacks.measure import tightness
from lipnet.io import load


class TwoLogits(nn.Module):
    """foolbox wants one score per class: a binary logit f becomes (−f, f)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return torch.cat([-out, out], dim=1) if out.shape[-1] == 1 else out


def references(steps: int) -> dict[str, fb.attacks.Attack]:
    return {
        "foolbox FMN": fb.attacks.L2FMNAttack(steps=steps),
        "foolbox DDN": fb.attacks.DDNAttack(steps=steps),
        "foolbox CW": fb.attacks.L2CarliniWagnerAttack(
            steps=steps, binary_search_steps=5, stepsize=0.05
        ),
    }


def median_found(dist: torch.Tensor) -> float:
    """Median of the distances, counting failures as infinite."""
    return float(dist.median())


def run_model(name: str, n: int, steps: int) -> dict:
    model = load(zoo.list_models()[name])
    x, y = zoo.test_images(model.spec, n)
    wrapped = TwoLogits(model).eval()
    with torch.no_grad():
        pred = wrapped(x).argmax(1)
    keep = pred == y
    x, pred = x[keep], pred[keep]
    rows = {}
    t = time.perf_counter()
    r = counterfactual(model, x, "fmn", steps=steps, keep_trajectory=False)
    rows["lipnet FMN"] = {
        "median_l2": median_found(torch.where(r.success, r.l2, torch.inf)),
        "success": float(r.success.float().mean()),
        "time_s": time.perf_counter() - t,
    }
    fmodel = fb.PyTorchModel(wrapped, bounds=(0, 1))
    criterion = fb.criteria.Misclassification(pred)
    for ref, attack in references(steps).items():
        t = time.perf_counter()
        _, clipped, success = attack(fmodel, x, criterion, epsilons=None)
        elapsed = time.perf_counter() - t
        dist = (clipped - x).flatten(1).norm(dim=1)
        rows[ref] = {
            "median_l2": median_found(torch.where(success, dist, torch.inf)),
            "success": float(success.float().mean()),
            "time_s": elapsed,
        }
    best = min(
        (v for k, v in rows.items() if k.startswith("foolbox")),
        key=lambda v: v["median_l2"],
    )
    rows["lipnet FMN"]["distance_ratio_to_best"] = (
        rows["lipnet FMN"]["median_l2"] / best["median_l2"]
    )
    rows["lipnet FMN"]["time_ratio_to_best"] = (
        rows["lipnet FMN"]["time_s"] / best["time_s"]
    )
    report = {"n": int(keep.sum()), "steps": steps, "attacks": rows}
    if model.head != "none":
        report["tightness"] = tightness(model, x, y[keep])
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument(
        "--json", type=Path, default=None, help="also write results here"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    results = {}
    for name in args.models or list(zoo.list_models()):
        results[name] = run_model(name, args.n, args.steps)
        rep = results[name]
        print(f"\n## {name} ({rep['n']} correct test images, {args.steps} steps)")
        print(f"  {'attack':14s} {'median L2':>10s} {'success':>8s} {'time':>8s}")
        for k, v in rep["attacks"].items():
            print(
                f"  {k:14s} {v['median_l2']:10.4f} {v['success']:8.3f}"
                f" {v['time_s']:7.1f}s"
            )
        a = rep["attacks"]["lipnet FMN"]
        print(
            f"  lipnet FMN vs best foolbox: "
            f"distance ×{a['distance_ratio_to_best']:.3f}, "
            f"time ×{a['time_ratio_to_best']:.3f}"
        )
        if "tightness" in rep:
            t = rep["tightness"]
            print(
                f"  tightness: median found/radius {t['median_ratio_rd']:.4f} in R^d, "
                f"{t['median_ratio_box']:.4f} in the box"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
