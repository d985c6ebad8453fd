"""Command line: `python -m lipnet train CONFIG --out DIR` and `eval MODEL`."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path


def _train(args: argparse.Namespace) -> int:
    from .train import train

    config = json.loads(Path(args.config).read_text())
    if args.epochs is not None:
        config.setdefault("optimizer", {})["epochs"] = args.epochs
    out = args.out or Path("runs") / config.get("name", Path(args.config).stem)
    command = "python -m lipnet train " + " ".join(
        shlex.quote(a) for a in [args.config, "--out", str(out)]
    )
    _, card = train(config, out, args.data, progress=not args.quiet, command=command)
    print(json.dumps({"out": str(out), "test": card["metrics"]["test"]}, indent=2))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .evaluate import compare_to_card, recompute_metrics

    metrics = recompute_metrics(args.model, args.data, n=args.n)
    print(json.dumps(metrics, indent=2))
    problems = compare_to_card(args.model, metrics, tolerance=args.tolerance)
    for p in problems:
        print(f"MISMATCH: {p}", file=sys.stderr)
    return 1 if problems else 0


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
    t.set_defaults(run=_train)
    e = sub.add_parser("eval", help="recompute a model card's metrics from the data")
    e.add_argument("model", help="model folder")
    e.add_argument("--data", help="data directory (default: $LIPNET_DATA)")
    e.add_argument("--n", type=int, help="evaluate on the first N test images only")
    e.add_argument(
        "--tolerance", type=float, default=0.02, help="allowed metric difference"
    )
    e.set_defaults(run=_eval)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
