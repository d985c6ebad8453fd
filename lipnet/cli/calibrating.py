"""Commands that measure into a model's card: `bounds` and the `ood` hint."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_commands(sub: Any) -> None:
    """Add `bounds` and `ood` to the command line.

    Args:
        sub: the sub-parsers of `python -m lipnet` (`add_subparsers()`).
    """
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


def _ood(args: argparse.Namespace) -> int:
    from ..attributes import MULTILABEL
    from ..io import load, update_card
    from ..ood import calibrate, calibration_problem, summary
    from ..train import load_task

    model = load(args.model)
    config = model.spec.get("card", {}).get("training", {}).get("config")
    if not config:
        print(f"{args.model} has no training config in its card", file=sys.stderr)
        return 1
    if getattr(model, "task", None) == MULTILABEL:
        return _ood_per_attribute(args, model, config)
    data = load_task(config, args.data)
    entry = calibrate(
        model,
        data.x_train,
        data.y_train,
        data.x_test,
        quantile=args.quantile,
        n_train=args.n_train,
    )
    problem = calibration_problem(entry, model)
    if problem:  # checked before writing: a card never holds an entry that fails
        print(f"the calibration does not fit the model: {problem}", file=sys.stderr)
        return 1
    update_card(args.model, ood=entry)
    print(json.dumps(summary(entry), indent=2))
    return 0


def _ood_per_attribute(args: argparse.Namespace, model: Any, config: dict) -> int:
    """`ood` for a multi-attribute model: one calibration per attribute, on the
    faces of its identity split, into the card's PER_ATTRIBUTE entry."""
    import torch

    from ..attributes import calibrate_attributes
    from ..io import update_card
    from ..ood import PER_ATTRIBUTE, summary
    from ..train_attributes import load_faces

    faces = load_faces(config, args.data)
    train, test = faces["train"], faces["test"]
    gen = torch.Generator().manual_seed(0)
    keep = torch.randperm(len(train["images"]), generator=gen)[: args.n_train]
    try:
        entries = calibrate_attributes(
            model,
            train["images"][keep].float().div(255.0),
            train["labels"][keep],
            test["images"].float().div(255.0),
            quantile=args.quantile,
        )
    except ValueError as e:  # checked before writing, as for one decision
        print(f"the calibration does not fit the model: {e}", file=sys.stderr)
        return 1
    update_card(args.model, **{PER_ATTRIBUTE: entries})
    print(json.dumps({k: summary(v) for k, v in entries.items()}, indent=2))
    return 0


def _bounds(args: argparse.Namespace) -> int:
    from ..attributes import MULTILABEL
    from ..io import load, update_card
    from ..train import lipschitz_report
    from ..zoo import test_images

    model = load(args.model)
    spec = model.spec
    if getattr(model, "task", None) == MULTILABEL:  # any attribute's faces
        spec = {**spec, "attribute": model.classes[0]}
    x, _ = test_images(spec, 64, args.data)
    report = lipschitz_report(model, x)
    update_card(args.model, lipschitz=report)
    print(json.dumps(report, indent=2))
    return 0
