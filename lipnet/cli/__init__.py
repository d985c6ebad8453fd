"""The command line's commands, one module per group.

Each group module has `add_commands(sub)`, which adds its sub-commands to
the parser of `python -m lipnet` (`lipnet.__main__`) and sets each one's
`run`. A new command goes in the group it belongs to, or in a new module
listed in `GROUPS`.
"""

from __future__ import annotations

from . import calibrating, evaluating, importing, reporting, training

GROUPS = (training, evaluating, reporting, calibrating, importing)
"""The command groups, in the order `--help` lists their commands."""
