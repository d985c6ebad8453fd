"""Command line: `python -m lipnet train|eval|card|report|bounds|ood|import …`.

See --help.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .cli import GROUPS
from .cli.reporting import REPORT_EPS_TEXT as REPORT_EPS_TEXT
from .cli.reporting import _eps_list as _eps_list


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen command.

    Each group of commands (`lipnet.cli.GROUPS`) adds its own sub-commands.

    Args:
        argv: the arguments (None: `sys.argv[1:]`).

    Returns:
        The command's exit status.
    """
    parser = argparse.ArgumentParser(prog="python -m lipnet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_commands(sub)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
