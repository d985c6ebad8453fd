"""Björck (SpectralLinear) vs AOL (AOLLinear): training time and accuracy.

Run: python bench/bench_aol.py [--epochs 40]
Trains the mnist08-hkr recipe twice in this process, once per dense layer
type, and prints train time, clean and certified accuracy and the
certificate's tightness, so the cheaper AOL layer is judged on what it costs
in accuracy, not only on speed.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lipnet.train import train

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    base = json.loads((ROOT / "configs" / "mnist08-hkr.json").read_text())
    base["optimizer"]["epochs"] = args.epochs
    base["attack_n"] = 200
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, {args.epochs} epochs")
    rows = {}
    for linear in ("spectral", "aol"):
        config = copy.deepcopy(base)
        config["arch"]["linear"] = linear
        _, card = train(config, None, progress=False)
        test = card["metrics"]["test"]
        rows[linear] = {
            "train_time_s": card["training"]["train_time_s"],
            "clean": test["clean_accuracy"],
            "certified_1.58": test["certified_accuracy"]["1.58"],
            "certified_2": test["certified_accuracy"]["2"],
            "tightness_rd": card["attacks"]["median_ratio_rd"],
        }
    for name, r in rows.items():
        print(
            f"  {name:9s} train {r['train_time_s']:6.1f}s  clean {r['clean']:.4f}  "
            f"cert@1.58 {r['certified_1.58']:.4f}  cert@2 {r['certified_2']:.4f}  "
            f"tightness {r['tightness_rd']:.3f}"
        )
    ratio = rows["aol"]["train_time_s"] / rows["spectral"]["train_time_s"]
    print(f"  AOL / Björck training time: {ratio:.3f}")


if __name__ == "__main__":
    main()
