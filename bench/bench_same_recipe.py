"""Same recipe, two libraries: lipnet vs deel-torchlip trained identically.

Takes a lipnet training config (default: configs/mnist08-hkr.json), builds its
dense network once with lipnet layers and once with the deel-torchlip layers
of the same names (Flatten, SpectralLinear, FullSort, FrobeniusLinear head),
and trains both with the one loop below. That loop is `lipnet.train.fit`
without its per-epoch validation line: same data and validation split
(`load_task`), same initial seed, same batches and ±shift augmentation drawn
from the same generator, Adam with the same cosine learning-rate schedule per
step, same epochs. The loss is lipnet's `HKRLoss(alpha, m)` and
deel-torchlip's `HKRLoss(alpha, min_margin=2m)`, which are the same function
(tests/test_losses.py).

Both models are measured the same way, on the validation split (what a tuner
may look at) and on the official test set (final numbers only): clean
accuracy and certified accuracy, a sample counting as certified at ε when it
is correct and |f(x)| / L > ε, with L the rigorous upper bound of the
network's Lipschitz constant (product of the exact spectral norms of its
linear layers in float64; the sort activations are 1-Lipschitz). For lipnet
that is `lipnet.lipschitz_upper_bound`, which also covers the same layers.

    LIPNET_DATA=../shared/data python bench/bench_same_recipe.py --seeds 0 1 2

prints one markdown row per library and seed and the mean per library. Each
run uses one CPU thread (`--threads`), so the train times are comparable
within a run (not across machines).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from deel import torchlip
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import lipnet
from lipnet.certify import radius_from_outputs
from lipnet.models import build_model
from lipnet.train import (
    TaskData,
    _batches,
    _shift,
    accuracy,
    load_task,
    predict,
)

ROOT = Path(__file__).resolve().parents[1]
EPS = (0.5, 1.0, 1.58, 2.0)


def deel_model(arch: dict[str, Any], input_shape: tuple[int, ...]) -> nn.Module:
    """The config's dense network in deel-torchlip layers (default settings)."""
    if (
        arch.get("kind") != "dense"
        or arch.get("activation") != "fullsort"
        or arch.get("head") != "frobenius"
    ):
        raise SystemExit(
            "only dense / fullsort / frobenius configs are translated "
            f"to deel-torchlip, not {arch}"
        )
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for w in arch["widths"]:
        layers += [torchlip.SpectralLinear(width, w), torchlip.FullSort()]
        width = w
    layers.append(torchlip.FrobeniusLinear(width, 1))
    return torchlip.Sequential(*layers)


def fit_same(
    net: nn.Module, loss_fn: nn.Module, data: TaskData, config: dict[str, Any]
) -> float:
    """`lipnet.train.fit`'s loop (no validation line, no checkpoint); seconds."""
    opt_cfg = config.get("optimizer", {})
    epochs = int(opt_cfg.get("epochs", 10))
    batch_size = int(opt_cfg.get("batch_size", 128))
    lr = float(opt_cfg.get("lr", 1e-3))
    lr_end = float(opt_cfg.get("lr_end", lr * 0.01))
    shift = int(config.get("augment", {}).get("shift", 0))
    optimizer = torch.optim.Adam(
        net.parameters(), lr=lr, weight_decay=float(opt_cfg.get("weight_decay", 0.0))
    )
    gen = torch.Generator().manual_seed(int(config.get("seed", 0)))
    total = max(epochs * math.ceil(len(data.y_train) / batch_size), 1)
    step, start = 0, time.perf_counter()
    for _ in range(epochs):
        net.train()
        for idx in _batches(data.y_train, batch_size, data.balanced, gen):
            for group in optimizer.param_groups:
                group["lr"] = lr_end + 0.5 * (lr - lr_end) * (
                    1 + math.cos(math.pi * step / total)
                )
            out = net(_shift(data.x_train[idx], shift, gen))
            loss = loss_fn(out, data.y_train[idx].float().view(-1, 1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
    net.eval()
    return time.perf_counter() - start


def linear_bound(plain: nn.Module) -> float:
    """Product of the exact spectral norms (float64) of a plain network's Linears."""
    bound = 1.0
    for m in plain.modules():
        if isinstance(m, nn.Linear):
            w = m.weight.detach().double()
            bound *= float(torch.linalg.matrix_norm(w, ord=2))
        elif not isinstance(m, (nn.Sequential, nn.Flatten, torchlip.FullSort)):
            raise SystemExit(f"no bound for {type(m).__name__}")
    return bound * (1 + 1e-9)


def measure(net: nn.Module, x: Tensor, y: Tensor, lip: float) -> dict[str, Any]:
    out = predict(net, x)
    radius = radius_from_outputs(out, lip, "binary", y)
    return {
        "n": len(y),
        "clean": accuracy(out, y),
        "certified": {f"{e:g}": float((radius > e).float().mean()) for e in EPS},
    }


def run(library: str, config: dict[str, Any], data: TaskData) -> dict[str, Any]:
    seed = int(config.get("seed", 0))
    torch.manual_seed(seed)  # as lipnet.train.train does before building
    alpha = float(config["loss"]["alpha"])
    margin = float(config["loss"]["min_margin"])
    if library == "lipnet":
        net = build_model(config["arch"], data.input_shape, data.classes)
        loss_fn: nn.Module = lipnet.HKRLoss(alpha, margin)
    else:
        net = deel_model(config["arch"], data.input_shape)
        loss_fn = torchlip.HKRLoss(alpha, min_margin=2 * margin)
    seconds = fit_same(net, loss_fn, data, config)
    if library == "lipnet":
        evaluated, lip = net, lipnet.lipschitz_upper_bound(net, data.input_shape)
    else:
        evaluated = net.vanilla_export()
        lip = linear_bound(evaluated)
    row = {"library": library, "seed": seed, "train_s": round(seconds, 1)}
    row["lipschitz_upper"] = lip
    if len(data.y_val):
        row["val"] = measure(evaluated, data.x_val, data.y_val, lip)
    row["test"] = measure(evaluated, data.x_test, data.y_test, lip)
    return row


def pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| library | seed | val clean | val cert. @1.58 | test clean | test certified "
        "@0.5 / 1.0 / 1.58 / 2.0 | L upper bound | train time |"
    )
    lines = [head, "| " + " | ".join(["---"] * 8) + " |"]

    def line(r: dict[str, Any], seed: str) -> str:
        val = r.get("val")
        cert = " / ".join(pct(r["test"]["certified"][f"{e:g}"]) for e in EPS)
        return (
            f"| {r['library']} | {seed} | "
            f"{pct(val['clean']) if val else '—'} | "
            f"{pct(val['certified']['1.58']) if val else '—'} | "
            f"{pct(r['test']['clean'])} | {cert} | "
            f"{r['lipschitz_upper']:.6f} | {r['train_s']:.0f} s |"
        )

    for r in rows:
        lines.append(line(r, str(r["seed"])))
    for lib in dict.fromkeys(r["library"] for r in rows):
        mine = [r for r in rows if r["library"] == lib]
        if len(mine) < 2:
            continue

        def mean(get: Any, mine: list[dict[str, Any]] = mine) -> float:
            return statistics.fmean(get(r) for r in mine)

        avg: dict[str, Any] = {
            "library": f"**{lib} (mean)**",
            "lipschitz_upper": max(r["lipschitz_upper"] for r in mine),
            "train_s": mean(lambda r: r["train_s"]),
            "test": {
                "clean": mean(lambda r: r["test"]["clean"]),
                "certified": {
                    k: mean(lambda r, k=k: r["test"]["certified"][k])
                    for k in mine[0]["test"]["certified"]
                },
            },
        }
        if "val" in mine[0]:
            avg["val"] = {
                "clean": mean(lambda r: r["val"]["clean"]),
                "certified": {"1.58": mean(lambda r: r["val"]["certified"]["1.58"])},
            }
        lines.append(line(avg, f"{len(mine)} seeds"))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config", type=Path, default=ROOT / "configs" / "mnist08-hkr.json"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--libraries",
        nargs="+",
        default=["lipnet", "deel-torchlip"],
        choices=["lipnet", "deel-torchlip"],
    )
    parser.add_argument("--epochs", type=int, help="override the config's epochs")
    parser.add_argument("--data", help="data directory (default: $LIPNET_DATA)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = json.loads(args.config.read_text())
    if args.epochs is not None:
        base.setdefault("optimizer", {})["epochs"] = args.epochs
    rows = []
    for seed in args.seeds:
        config = {**base, "seed": seed}
        data = load_task(config, args.data)  # the validation split follows the seed
        for library in args.libraries:
            row = run(library, config, data)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(
        f"\n{base['name']} recipe, {base['optimizer']['epochs']} epochs, "
        f"train {len(data.y_train)} / val {len(data.y_val)} / test {len(data.y_test)} "
        f"images, {args.threads} thread(s), torch {torch.__version__}\n"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
