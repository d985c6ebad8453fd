"""Commands that recompute a card's test metrics from the data: `eval`, `card`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_commands(sub: Any) -> None:
    """Add `eval` and `card` to the command line.

    Args:
        sub: the sub-parsers of `python -m lipnet` (`add_subparsers()`).
    """
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


def _eval(args: argparse.Namespace) -> int:
    from ..evaluate import compare_to_card, recompute_metrics

    metrics = recompute_metrics(args.model, args.data, n=args.n)
    print(json.dumps(metrics, indent=2))
    problems = compare_to_card(args.model, metrics, tolerance=args.tolerance)
    for p in problems:
        print(f"MISMATCH: {p}", file=sys.stderr)
    return 1 if problems else 0


def _card(args: argparse.Namespace) -> int:
    from ..evaluate import refresh_card

    card = refresh_card(args.model, args.data, n_attack=args.n_attack)
    print(
        json.dumps(
            {k: card[k] for k in ("metrics", "lipschitz", "attacks") if k in card},
            indent=2,
        )
    )
    return 0
