"""Commands that train: `train` (one task from a config) and `train-attributes`."""

from __future__ import annotations

import argparse
import json
import os
import shlex
from pathlib import Path
from typing import Any

from .common import DEVICE


def add_commands(sub: Any) -> None:
    """Add `train` and `train-attributes` to the command line.

    Args:
        sub: the sub-parsers of `python -m lipnet` (`add_subparsers()`).
    """
    t = sub.add_parser("train", help="train a model from a JSON config")
    t.add_argument("config", help="JSON training config (see configs/)")
    t.add_argument("--out", type=Path, help="model folder to write")
    t.add_argument("--data", help="data directory (default: $LIPNET_DATA)")
    t.add_argument("--epochs", type=int, help="override the config's epochs")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("--device", **DEVICE)
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


def _train(args: argparse.Namespace) -> int:
    import torch

    from .. import distributed as dist
    from ..train import train

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
        # Every rank leaves the group together: a rank that left while rank 0
        # still measured the model could abort in gloo ("terminate called
        # without an active exception"). On a failure torchrun stops the rest.
        dist.barrier()
    finally:
        dist.cleanup()
    if dist.is_main() and card:
        print(json.dumps({"out": str(out), "test": card["metrics"]["test"]}, indent=2))
    return 0


def _train_attributes(args: argparse.Namespace) -> int:
    import torch

    from ..train_attributes import train

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
