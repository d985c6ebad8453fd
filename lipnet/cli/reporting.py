"""The `report` command: a robustness report on a model's test images."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import DEVICE

REPORT_EPS_TEXT = "0.25,0.5,1,1.5,2,3"  # lipnet.report.REPORT_EPS


def _eps_list(text: str) -> tuple[float, ...]:
    """ε values for --eps: "0.5,36/255" → (0.5, 0.1411…), sorted, distinct."""
    from ..units import parse_eps

    try:
        values = sorted({parse_eps(v) for v in text.split(",") if v.strip()})
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if not values or values[0] <= 0 or len(values) > 50:
        raise argparse.ArgumentTypeError("give 1 to 50 values of ε > 0")
    return tuple(values)


def add_commands(sub: Any) -> None:
    """Add `report` to the command line.

    Args:
        sub: the sub-parsers of `python -m lipnet` (`add_subparsers()`).
    """
    r = sub.add_parser(
        "report",
        help="robustness report on test images: CSV, slices.csv, figures",
    )
    r.add_argument("model", help="model folder")
    r.add_argument(
        "--attribute",
        help="the attribute to report on, for a multi-attribute model "
        "(celeba-hkr: Mustache, Eyeglasses, ...; see its card)",
    )
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
    r.add_argument("--device", **DEVICE)
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


def _report(args: argparse.Namespace) -> int:
    from .. import distributed as dist

    device = dist.init_from_env(args.device)
    try:
        code = _report_on(args, device)
        # As in `lipnet train`: every rank leaves the group together, after
        # rank 0 wrote the report (a rank that left early can abort gloo).
        dist.barrier()
        return code
    finally:
        dist.cleanup()


def _one_decision(model: Any, attribute: str | None) -> Any:
    """The model to report on: one attribute of a multi-attribute model
    (`lipnet.attribute`), or the model itself; ValueError saying what to pass
    otherwise."""
    from ..attributes import MULTILABEL, attribute_names
    from ..attributes import attribute as one_attribute

    if getattr(model, "task", None) != MULTILABEL:
        if attribute:
            raise ValueError(
                f"--attribute {attribute}: this model scores one decision, "
                "not several attributes; leave --attribute out"
            )
        return model
    names = attribute_names(model)
    if attribute not in names:
        given = (
            f"--attribute {attribute!r} is not one of them"
            if attribute
            else "pick one with --attribute"
        )
        raise ValueError(
            f"this model scores {len(names)} attributes ({', '.join(names)}); {given}"
        )
    return one_attribute(model, attribute)


def _report_on(args: argparse.Namespace, device: Any) -> int:
    """The report on this rank's share of the test images; rank 0 writes it.

    The images go in batches of --batch-size, each rank takes a contiguous
    run of batches, and each batch seeds the RNG (PGD's random starts) from
    --seed and its first index, so any number of processes gives the rows
    one process gives.
    """
    import torch
    from tqdm import tqdm

    from .. import distributed as dist
    from ..io import load
    from ..report import iter_report, slice_membership, write_report, write_row_arrays
    from ..units import eps_units
    from ..zoo import test_attributes, test_images

    try:
        model = _one_decision(load(args.model), args.attribute)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
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
        skip=[model.spec.get("attribute", config.get("attribute", ""))],
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
