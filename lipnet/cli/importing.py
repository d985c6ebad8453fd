"""The `import` command: a deel-torchlip or plain torch network as a model folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_commands(sub: Any) -> None:
    """Add `import` to the command line.

    Args:
        sub: the sub-parsers of `python -m lipnet` (`add_subparsers()`).
    """
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


def _import(args: argparse.Namespace) -> int:
    from ..convert import ConversionError
    from ..torch_import import import_folder

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
