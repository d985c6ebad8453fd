"""Command line: `python -m lipnet train|eval|card|report|bounds|ood|import …`.

See --help.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _train(args: argparse.Namespace) -> int:
    import torch

    from . import distributed as dist
    from .train import train

    device = dist.init_from_env(args.device)
    # Every core for one process; torchrun's workers keep their share.
    if args.threads or dist.world() == 1:
        torch.set_num_threads(args.threads or os.cpu_count() or 1)

    config = json.loads(Path(args.config).read_text())
    if args.epochs is not None:
        config.setdefault("optimizer", {})["epochs"] = args.epochs
    out = args.out or Path("runs") / config.get("name", Path(args.config).stem)
    command = "python -m lipnet train " + " ".join(
        shlex.quote(a) for a in [args.config, "--out", str(out)]
    )
    try:
        _, card = train(
            config,
            out,
            args.data,
            progress=not args.quiet,
            command=command,
            device=None if device.type == "cpu" else device,
            checkpoint=args.checkpoint or out.with_name(out.name + ".ckpt"),
            resume=args.resume,
        )
    finally:
        dist.cleanup()
    if dist.is_main() and card:
        print(json.dumps({"out": str(out), "test": card["metrics"]["test"]}, indent=2))
    return 0


def _train_attributes(args: argparse.Namespace) -> int:
    import torch

    from .train_attributes import train

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    config = json.loads(Path(args.config).read_text())
    if args.epochs is not None:
        config.setdefault("optimizer", {})["epochs"] = args.epochs
    command = "python -m lipnet train-attributes " + " ".join(
        shlex.quote(a) for a in [args.config, "--out", str(args.out)]
    )
    train(
        config,
        args.out,
        args.data,
        resume=args.resume,
        command=command,
        stop_after=args.stop_after,
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .evaluate import compare_to_card, recompute_metrics

    metrics = recompute_metrics(args.model, args.data, n=args.n)
    print(json.dumps(metrics, indent=2))
    problems = compare_to_card(args.model, metrics, tolerance=args.tolerance)
    for p in problems:
        print(f"MISMATCH: {p}", file=sys.stderr)
    return 1 if problems else 0


def _card(args: argparse.Namespace) -> int:
    from .evaluate import refresh_card

    card = refresh_card(args.model, args.data, n_attack=args.n_attack)
    print(
        json.dumps(
            {k: card[k] for k in ("metrics", "lipschitz", "attacks") if k in card},
            indent=2,
        )
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from . import distributed as dist

    device = dist.init_from_env(args.device)
    try:
        return _report_on(args, device)
    finally:
        dist.cleanup()


def _report_on(args: argparse.Namespace, device: Any) -> int:
    """The report on this rank's share of the test images; rank 0 writes it.

    The images go in batches of --batch-size, each rank takes a contiguous
    run of batches, and each batch seeds the RNG (PGD's random starts) from
    --seed and its first index, so any number of processes gives the rows
    one process gives.
    """
    import torch
    from tqdm import tqdm

    from . import distributed as dist
    from .io import load
    from .report import iter_report, slice_membership, write_report, write_row_arrays
    from .units import eps_units
    from .zoo import test_attributes, test_images

    model = load(args.model)
    model.to(device)
    x, y = test_images(model.spec, args.n, args.data)
    config = model.spec["card"]["training"]["config"]
    if len(x) < args.n and dist.is_main():
        why = (
            " (faces alternate with and without the attribute, so they end "
            "with the rarer kind)"
            if config["task"] == "celeba"
            else ""
        )
        print(
            f"only {len(x)} test images for this task in the data folder{why}; "
            "add images there (see LIPNET_DATA) for more",
            file=sys.stderr,
        )
    membership = slice_membership(
        y,
        model.spec["classes"],
        test_attributes(model.spec, args.n, args.data),
        skip=[config.get("attribute", "")],
    )
    size = args.batch_size
    mine = dist.shard(-(-len(x) // size), dist.rank(), dist.world())
    share = min(len(x), mine.stop * size) - min(len(x), mine.start * size)
    rows = []
    quiet = args.quiet or not dist.is_main()
    with tqdm(total=share, desc="report", disable=quiet) as bar:
        for b in mine:
            start = b * size
            torch.manual_seed(args.seed + start)
            for batch in iter_report(
                model,
                x[start : start + size].to(device),
                y[start : start + size].to(device),
                eps_grid=args.eps,
                batch_size=size,
                keep_counterfactuals=args.arrays,
            ):
                for row in batch:
                    row.index += start
                rows += batch
                bar.update(len(batch))
    rows = dist.gather_rows(rows)
    if not dist.is_main():
        return 0
    summary = write_report(rows, args.out, eps_grid=args.eps, membership=membership)
    if args.arrays:
        write_row_arrays(rows, x, args.out)
    shape = model.spec["input_shape"]
    curve = [{**p, **eps_units(p["eps"], shape)} for p in summary.get("curve", [])]
    out = {"n": summary["n"], "clean_accuracy": summary.get("clean_accuracy")}
    print(json.dumps({**out, "curve": curve}, indent=2))
    return 0


def _ood(args: argparse.Namespace) -> int:
    from .io import load, update_card
    from .ood import calibrate, calibration_problem, summary
    from .train import load_task

    model = load(args.model)
    config = model.spec.get("card", {}).get("training", {}).get("config")
    if not config:
        print(f"{args.model} has no training config in its card", file=sys.stderr)
        return 1
    data = load_task(config, args.data)
    entry = calibrate(
        model,
        data.x_train,
        data.y_train,
        data.x_test,
        quantile=args.quantile,
        n_train=args.n_train,
    )
    reloaded = update_card(args.model, ood=entry)
    problem = calibration_problem(reloaded.spec["card"].get("ood"), reloaded)
    if problem:
        print(f"the written calibration does not load: {problem}", file=sys.stderr)
        return 1
    print(json.dumps(summary(entry), indent=2))
    return 0


def _bounds(args: argparse.Namespace) -> int:
    from .io import load, update_card
    from .train import lipschitz_report
    from .zoo import test_images

    model = load(args.model)
    x, _ = test_images(model.spec, 64, args.data)
    report = lipschitz_report(model, x)
    update_card(args.model, lipschitz=report)
    print(json.dumps(report, indent=2))
    return 0


def _import(args: argparse.Namespace) -> int:
    from .convert import ConversionError
    from .torch_import import import_folder

    try:
        folder, model = import_folder(args.arch, args.state, args.out, args.name)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "out": str(folder),
                "head": model.head,
                "classes": model.classes,
                "lipschitz_constant": model.lipschitz_constant,
                "lipschitz_source": model.spec["lipschitz_source"],
                "layers": [type(m).__name__ for m in model],
            },
            indent=2,
        )
    )
    return 0


REPORT_EPS_TEXT = "0.25,0.5,1,1.5,2,3"  # lipnet.report.REPORT_EPS


def _eps_list(text: str) -> tuple[float, ...]:
    """ε values for --eps: "0.5,36/255" → (0.5, 0.1411…), sorted, distinct."""
    from .units import parse_eps

    try:
        values = sorted({parse_eps(v) for v in text.split(",") if v.strip()})
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if not values or values[0] <= 0 or len(values) > 50:
        raise argparse.ArgumentTypeError("give 1 to 50 values of ε > 0")
    return tuple(values)


_DEVICE = {
    "choices": ("cpu", "cuda", "auto"),
    "default": "auto",
    "help": "where to compute (auto: a GPU if there is one); under torchrun "
    "each process takes its own GPU (LOCAL_RANK) or the CPU",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen command."""
    parser = argparse.ArgumentParser(prog="python -m lipnet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model from a JSON config")
    t.add_argument("config", help="JSON training config (see configs/)")
    t.add_argument("--out", type=Path, help="model folder to write")
    t.add_argument("--data", help="data directory (default: $LIPNET_DATA)")
    t.add_argument("--epochs", type=int, help="override the config's epochs")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("--device", **_DEVICE)
    t.add_argument(
        "--checkpoint",
        type=Path,
        help="checkpoint written after every epoch (default: OUT.ckpt beside --out)",
    )
    t.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint if present"
    )
    t.add_argument(
        "--threads", type=int, help="CPU threads (default: every core, one process)"
    )
    t.set_defaults(run=_train)
    a = sub.add_parser(
        "train-attributes",
        help="train one face model for many CelebA attributes (split by identity)",
    )
    a.add_argument("config", help="JSON config with 'attributes' (see configs/)")
    a.add_argument("--out", type=Path, required=True, help="model folder to write")
    a.add_argument("--data", help="data directory (default: $LIPNET_DATA)")
    a.add_argument("--epochs", type=int, help="override the config's epochs")
    a.add_argument("--threads", type=int, help="torch threads (default: every core)")
    a.add_argument(
        "--resume",
        action="store_true",
        help="go on from OUT.ckpt after its last finished epoch",
    )
    a.add_argument(
        "--stop-after",
        type=int,
        help="stop after this epoch (checkpoint and log kept; --resume goes on)",
    )
    a.set_defaults(run=_train_attributes)
    e = sub.add_parser("eval", help="recompute a model card's metrics from the data")
    e.add_argument("model", help="model folder")
    e.add_argument("--data", help="data directory (default: $LIPNET_DATA)")
    e.add_argument("--n", type=int, help="evaluate on the first N test images only")
    e.add_argument(
        "--tolerance", type=float, default=0.02, help="allowed metric difference"
    )
    e.set_defaults(run=_eval)
    c = sub.add_parser("card", help="recompute a model's measurements into its card")
    c.add_argument("model", help="model folder")
    c.add_argument("--data", help="data directory (default: $LIPNET_DATA)")
    c.add_argument("--n-attack", type=int, default=500, help="test images attacked")
    c.set_defaults(run=_card)
    r = sub.add_parser(
        "report",
        help="robustness report on test images: CSV, slices.csv, figures",
    )
    r.add_argument("model", help="model folder")
    r.add_argument(
        "--n",
        "--images",
        dest="n",
        type=int,
        default=1000,
        help="number of test images (under torchrun write --images: torchrun "
        "itself takes --n for one of its own options)",
    )
    r.add_argument("--out", type=Path, required=True, help="output folder")
    r.add_argument("--data", help="data directory (default: $LIPNET_DATA)")
    r.add_argument(
        "--eps",
        type=_eps_list,
        default=REPORT_EPS_TEXT,
        help="the L2 ε of the curve, comma-separated, in [0, 1] pixel units "
        "(0.5) or 8-bit units (36/255); the output gives each in both, and "
        f"the per-pixel RMS in 0-255 levels (default {REPORT_EPS_TEXT})",
    )
    r.add_argument("--batch-size", type=int, default=100)
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--device", **_DEVICE)
    r.add_argument(
        "--seed", type=int, default=0, help="seed of the attacks' random starts"
    )
    r.add_argument(
        "--arrays",
        action="store_true",
        help="also write each image's δ and counterfactual: rows/NNNNNN_delta.npy, "
        "rows/NNNNNN_counterfactual.npy",
    )
    r.set_defaults(run=_report)
    b = sub.add_parser(
        "bounds", help="re-measure the Lipschitz bounds into a model's card"
    )
    b.add_argument(
        "model", help="model folder (its spec.json and CARD.md are rewritten)"
    )
    b.add_argument("--data", help="data directory (default: $LIPNET_DATA)")
    b.set_defaults(run=_bounds)
    o = sub.add_parser(
        "ood", help="calibrate the out-of-distribution hint into a model's card"
    )
    o.add_argument(
        "model", help="model folder (its spec.json and CARD.md are rewritten)"
    )
    o.add_argument("--data", help="data directory (default: $LIPNET_DATA)")
    o.add_argument(
        "--n-train", type=int, default=5000, help="training images for the class means"
    )
    o.add_argument(
        "--quantile", type=float, default=0.99, help="share of test images not flagged"
    )
    o.set_defaults(run=_ood)
    m = sub.add_parser(
        "import",
        help="a deel-torchlip or plain torch state_dict as a model folder "
        "(Lipschitz constant measured)",
    )
    m.add_argument("arch", help="JSON architecture (see lipnet/torch_import.py)")
    m.add_argument("state", help="state_dict file, read with weights_only=True")
    m.add_argument("--out", type=Path, required=True, help="model folder to write")
    m.add_argument("--name", help="the model's name (default: the folder's)")
    m.set_defaults(run=_import)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
