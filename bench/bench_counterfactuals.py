"""Counterfactual quality, judged by an independent classifier (issue 12 §3).

Run: LIPNET_DATA=../shared/data python bench/bench_counterfactuals.py \
         [--models moustache eyeglasses mnist08] [--n 200] [--judge-epochs 4]

For each task, a certified model (`<task>-hkr`) and its unconstrained twin
(`<task>-baseline`) from assets/models:

1. An independent JUDGE is trained: a small unconstrained CNN of its own
   architecture and seed (never used to make counterfactuals), on the
   low-pass view (2x2 area down-sampling) of the certified model's own
   training split (class-balanced sampling for CelebA), seeded and
   deterministic, kept in memory only. Its balanced accuracy on the test
   split is printed.
2. Inputs from the model's test split: faces = men without the attribute
   (CelebA "Male" = 1, attribute 0), target = attribute present; mnist08 =
   test zeros, target = 8. Up to --n of them, in test-split order.
3. `lipnet.attacks.quality.counterfactual_quality` measures the certified
   model's counterfactuals (transport, overshoot 1 = as far past the
   boundary as the input was before it): the judge's validity, against a
   noise control and a template control of the same norms, the twin's own
   counterfactual validity (same method and overshoot), and the changes'
   specificity, luminance share, high-frequency share and mean L2 norm;
   the same measurements for the twin's changes.

Prints a markdown table per task and writes every number to --out (JSON;
tasks already there and not rerun are kept). With --update-cards, each
measured model's card gets a `counterfactual_quality` section with these
numbers (the weights are untouched).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import attribute_counterfactuals

import lipnet
from lipnet import data as D
from lipnet.attacks.equivariance import TRANSFORMS, follow_the_face
from lipnet.attacks.quality import (
    LowPass,
    counterfactual_quality,
    judge_validity,
    low_pass,
)
from lipnet.io import update_card
from lipnet.train import TaskData, accuracy, load_task

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "assets" / "models"
PAIRS: dict[str, tuple[str, str]] = {
    "moustache": ("moustache-hkr", "moustache-baseline"),
    "eyeglasses": ("eyeglasses-hkr", "eyeglasses-baseline"),
    "mnist08": ("mnist08-hkr", "mnist08-baseline"),
}
JUDGE_SEED = 1234  # the twins are trained with seed 0
FACTOR = 2  # the judge's low-pass view: 2x2 area down-sampling


def judge_net(channels: int) -> nn.Sequential:
    """The judge's CNN on the low-pass view: average pooling, no max pooling,
    a different shape from every twin (plain-dense MLP, plain-conv max-pool)."""
    return nn.Sequential(
        nn.Conv2d(channels, 24, 5, padding=2),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(24, 48, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(48, 64, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(64 * 16, 64),
        nn.ReLU(),
        nn.Linear(64, 1),
    )


def epoch_order(y: Tensor, balanced: bool, gen: torch.Generator) -> Tensor:
    """One epoch's sample order: a shuffle, or class-balanced draws."""
    if not balanced:
        return torch.randperm(len(y), generator=gen)
    weights = torch.zeros(len(y), dtype=torch.float64)
    for c in y.unique():
        mask = y == c
        weights[mask] = 1.0 / mask.sum()
    return torch.multinomial(weights, len(y), replacement=True, generator=gen)


def train_judge(
    data: TaskData,
    epochs: int,
    seed: int,
    flip: bool,
    max_train: int | None,
    batch_size: int = 64,
) -> tuple[nn.Module, dict[str, Any]]:
    """A binary judge trained on the low-pass view of the training split; the
    returned module takes full-resolution images (it down-samples itself)."""
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    x, y = data.x_train, data.y_train
    if max_train is not None and max_train < len(x):
        keep = torch.randperm(len(x), generator=gen)[:max_train]
        x, y = x[keep], y[keep]
    view = low_pass(x, FACTOR)
    torch.manual_seed(seed)
    net = judge_net(view.shape[1])
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    steps = epochs * -(-len(y) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    loss_fn = nn.BCEWithLogitsLoss()
    net.train()
    for _ in range(epochs):
        for idx in epoch_order(y, data.balanced, gen).split(batch_size):
            xb, yb = view[idx], y[idx].float()
            if flip:
                mask = torch.rand(len(idx), generator=gen) < 0.5
                xb = torch.where(mask.view(-1, 1, 1, 1), xb.flip(-1), xb)
            loss = loss_fn(net(xb)[:, 0], yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    judge = nn.Sequential(LowPass(FACTOR), net).eval()
    with torch.no_grad():
        out = torch.cat([judge(b) for b in data.x_test.split(500)])
    info = {
        "architecture": "CNN 24c5-avgpool-48c3-avgpool-64c3-gap4-fc64-1 on the "
        f"{FACTOR}x{FACTOR} area down-sampled view",
        "seed": seed,
        "epochs": epochs,
        "train_images": len(y),
        "balanced_sampling": data.balanced,
        "flip_augmentation": flip,
        "test_balanced_accuracy": round(accuracy(out, data.y_test, balanced=True), 4),
        "test_accuracy": round(accuracy(out, data.y_test), 4),
        "time_s": round(time.perf_counter() - start, 1),
    }
    return judge, info


def select_inputs(
    task: str, data: TaskData, root: Path, n: int
) -> tuple[Tensor, int, str]:
    """(inputs, target class, description) from the test split."""
    if task == "mnist08":
        keep = (data.y_test == 0).nonzero()[:, 0]
        return data.x_test[keep[:n]], 1, "test zeros -> 8"
    ids = data.provenance["test_ids"]
    names, attrs, matrix = D.read_celeba_attributes(
        root / "celeba" / "list_attr_celeba.txt"
    )
    row = {name: k for k, name in enumerate(names)}
    male = torch.tensor(
        [matrix[row[i], attrs.index("Male")] == 1 for i in ids], dtype=torch.bool
    )
    keep = (male & (data.y_test == 0)).nonzero()[:, 0]
    attribute = data.provenance.get("attribute", "?")
    return data.x_test[keep[:n]], 1, f"test men without {attribute} -> with"


def same_test_split(config: dict[str, Any], twin_config: dict[str, Any]) -> bool:
    """Whether the twin's config describes the same test split."""
    keys = ("task", "seed", "attribute", "image_size", "image_folders")
    if config.get("task") == "mnist08":  # the official test set either way
        return twin_config.get("task") == "mnist08"
    return all(config.get(k) == twin_config.get(k) for k in keys)


def fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def table(task: str, model: str, twin: str, q: dict[str, Any]) -> str:
    head = (
        "| model | validity (judge) | noise control | template control | "
        "twin's CF validity | specificity | luminance share | HF share | "
        "mean ‖δ‖ | flips |"
    )
    rows = [f"### {task}", "", head, "|" + "---|" * 10]
    for name, r, twin_v in ((model, q, q.get("twin_validity")), (twin, q["twin"], "—")):
        cells = [
            name,
            r["validity"],
            r["noise_validity"],
            r["template_validity"],
            twin_v,
            r["specificity"],
            r["luminance_share"],
            r["high_frequency_share"],
            r["mean_l2"],
            r["flip_rate"],
        ]
        rows.append("| " + " | ".join(fmt(c) for c in cells) + " |")
    rows.append("")
    rows.append(
        f"n = {q['n']} inputs ({q['n_excluded']} left out: already classified as "
        f"the target by the model or the twin); the judge calls "
        f"{q['judge_base_rate']:.3f} of the untouched inputs target already."
    )
    return "\n".join(rows)


def run_task(task: str, args: argparse.Namespace, root: Path) -> dict[str, Any] | None:
    name, twin_name = PAIRS[task]
    missing = [m for m in (name, twin_name) if not (args.models_dir / m).is_dir()]
    if missing:
        print(f"\nskipping {task}: no model folder {', '.join(missing)} yet")
        return None
    model, twin = (
        lipnet.load(args.models_dir / name),
        lipnet.load(args.models_dir / twin_name),
    )
    config = model.spec["card"]["training"]["config"]
    twin_config = twin.spec["card"]["training"]["config"]
    print(f"\n## {task}: {name} vs {twin_name}")
    if not same_test_split(config, twin_config):
        print(f"note: {twin_name}'s config names another split; using {name}'s")
    t = time.perf_counter()
    data = load_task(config, root)
    print(
        f"data: {len(data.y_train)} train / {len(data.y_test)} test images "
        f"({time.perf_counter() - t:.1f} s)"
    )
    judge, info = train_judge(
        data,
        args.judge_epochs,
        args.seed,
        flip=config["task"] == "celeba",
        max_train=args.max_train,
    )
    print(
        f"judge: balanced accuracy {info['test_balanced_accuracy']:.4f} on the test "
        f"split ({info['train_images']} train images, {info['epochs']} epochs, "
        f"{info['time_s']} s)"
    )
    x, target, what = select_inputs(task, data, root, args.n)
    t = time.perf_counter()
    q = counterfactual_quality(
        model,
        x,
        judge,
        target,
        overshoot=args.overshoot,
        method=args.method,
        twin=twin,
        seed=args.seed,
    )
    follow = follow_report(model, x, judge, target, args.overshoot)
    elapsed = time.perf_counter() - t
    print(f"inputs: {len(x)} {what}; measured in {elapsed:.1f} s\n")
    print(table(task, name, twin_name, q))
    gap = q["validity"] - q["template_validity"]
    print(f"\ntemplate gap (validity − template validity): {gap:+.3f}")
    print(
        "follow the face (cosine between the moved input's change and the moved "
        "change; judge validity on moved inputs): "
        + ", ".join(
            f"{t} {v['cosine']:.3f} / {v['validity']:.3f}" for t, v in follow.items()
        )
    )
    q = {**q, "template_gap": gap, "follow_the_face": follow}
    return {
        "model": name,
        "twin": twin_name,
        "inputs": what,
        "n_selected": len(x),
        "judge": info,
        "quality": q,
        "time_s": round(elapsed, 1),
    }


def follow_report(
    model: nn.Module, x: Tensor, judge: nn.Module, target: Any, overshoot: float
) -> dict[str, dict[str, float]]:
    """Per move (4 and 8 pixels, mirror): mean cosine and the judge's validity."""
    moves = follow_the_face(model, x, overshoot=overshoot)
    return {
        t: {
            "cosine": round(float(moves[t].mean()), 4),
            "validity": round(
                judge_validity(judge, moves[f"counterfactual:{t}"], target), 4
            ),
        }
        for t in TRANSFORMS
    }


def run_attributes(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """celeba-hkr's judged attributes (`attribute_counterfactuals`), printed."""
    name = args.celeba_model
    out = attribute_counterfactuals.run(
        args.models_dir, args.n, args.overshoot, args.seed, follow_report, name
    )
    for attribute, r in out.items():
        q = r["quality"]
        print(
            f"\n## {name}: {attribute} (judge balanced accuracy "
            f"{r['judge']['test_balanced_accuracy']:.4f}, {r['time_s']} s)"
        )
        print(table(attribute, r["model"], r["twin"], q))
        print(
            f"\ntemplate gap: {q['template_gap']:+.3f}; tightness (median found / r)"
            f" {q['tightness']['median_ratio_rd']:.3f}"
        )
        print(
            "follow the face: "
            + ", ".join(
                f"{t} {v['cosine']:.3f} / {v['validity']:.3f}"
                for t, v in q["follow_the_face"].items()
            )
        )
        if "previous" in q:
            prev = q["previous"]
            print(
                f"{prev['model']} on the same faces: validity {prev['validity']:.3f},"
                f" template {prev['template_validity']:.3f}"
            )
    if args.update_cards:
        section = attribute_counterfactuals.card_section(out, command)
        update_card(args.models_dir / name, attribute_quality=section)
        print(f"updated the card of {name}")
    return out


QUALITY_KEYS = (
    "validity",
    "noise_validity",
    "template_validity",
    "flip_rate",
    "specificity",
    "luminance_share",
    "high_frequency_share",
    "mean_l2",
)


def card_sections(result: dict[str, Any], command: str) -> dict[str, dict[str, Any]]:
    """The `counterfactual_quality` card section of the model and of its twin."""
    q, judge = result["quality"], result["judge"]
    common = {
        "inputs": f"{q['n']} {result['inputs']}",
        "method": f"{q['method']}, overshoot {q['overshoot']:g}",
        "judge": f"{judge['architecture']}, seed {judge['seed']}",
        "judge_balanced_accuracy": judge["test_balanced_accuracy"],
        "measured_by": command,
    }

    def rounded(values: dict[str, Any]) -> dict[str, Any]:
        return {k: round(float(values[k]), 4) for k in QUALITY_KEYS if k in values}

    model = {**common, **rounded(q)}
    if "twin_validity" in q:
        model["twin_validity"] = round(float(q["twin_validity"]), 4)
    twin = {**common, **rounded(q.get("twin", {}))}
    return {result["model"]: model, result["twin"]: twin}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--models",
        nargs="+",
        choices=[*PAIRS, "celeba"],
        default=[*PAIRS, "celeba"],
        help="celeba: Mustache, Eyeglasses and Smiling of celeba-hkr, with the "
        "strong judge of bench/face_judge.py",
    )
    p.add_argument("--n", type=int, default=200, help="inputs per task (at most)")
    p.add_argument("--judge-epochs", type=int, default=4)
    p.add_argument("--data", default=None, help="data folder (default LIPNET_DATA)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "counterfactuals.json")
    p.add_argument("--models-dir", type=Path, default=MODELS)
    p.add_argument("--method", default="transport", choices=["transport", "deepfool"])
    p.add_argument("--overshoot", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=JUDGE_SEED, help="judge and noise")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--max-train", type=int, default=None, help="judge training images (dry runs)"
    )
    p.add_argument(
        "--celeba-model",
        default=attribute_counterfactuals.MODEL,
        help="the multi-attribute model in --models-dir that --models celeba "
        "measures (a candidate beside the shipped twin and earlier models)",
    )
    p.add_argument(
        "--update-cards",
        action="store_true",
        help="write the numbers into each measured model's card",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    root = D.data_dir(args.data)
    results: dict[str, Any] = {}
    if args.out.is_file():
        results = json.loads(args.out.read_text())
    settings = {
        "method": args.method,
        "overshoot": args.overshoot,
        "n": args.n,
        "judge_epochs": args.judge_epochs,
        "judge_seed": args.seed,
        "max_train": args.max_train,
        "high_frequency_cutoff": "0.25 of Nyquist",
        "torch": torch.__version__,
    }
    command = "python bench/bench_counterfactuals.py " + " ".join(sys.argv[1:])
    if "celeba" in args.models:
        results["celeba"] = run_attributes(args, command)
    for task in [m for m in args.models if m != "celeba"]:
        out = run_task(task, args, root)
        if out is not None:
            results[task] = {**out, "settings": settings}
            if args.update_cards:
                for name, section in card_sections(out, command).items():
                    update_card(args.models_dir / name, counterfactual_quality=section)
                    print(f"updated the card of {name}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
