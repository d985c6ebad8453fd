"""Where lipnet's data lives: the data directory and the cache for derived arrays.

Data files are never part of the project: they are found through :func:`data_dir`
(argument, ``LIPNET_DATA`` or ``../shared/data`` next to the project), and derived
arrays are cached under :func:`cache_dir` (``LIPNET_CACHE`` or ``~/.cache/lipnet``),
outside the repo.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PathLike", "cache_dir", "data_dir"]

PathLike = str | os.PathLike[str]

# The project root: the folder holding the ``lipnet`` package.
_PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


def data_dir(path: PathLike | None = None) -> Path:
    """Return the data directory: ``path``, ``$LIPNET_DATA`` or ``../shared/data``.

    The default is resolved relative to the project root (the folder holding the
    ``lipnet`` package), so it works from any working directory. Raises
    ``FileNotFoundError`` when the chosen directory does not exist.
    """
    if path is not None:
        chosen, origin = Path(path).expanduser(), "the path argument"
    elif os.environ.get("LIPNET_DATA"):
        chosen, origin = Path(os.environ["LIPNET_DATA"]).expanduser(), "LIPNET_DATA"
    else:
        default = _PROJECT_ROOT.parent / "shared" / "data"
        if default.is_dir():
            return default
        raise FileNotFoundError(
            f"no data directory found: {default} does not exist. Set the environment "
            "variable LIPNET_DATA to the folder holding mnist/ and celeba/ "
            "(e.g. LIPNET_DATA=../shared/data) or pass the path explicitly."
        )
    if not chosen.is_dir():
        raise FileNotFoundError(
            f"data directory {chosen} (from {origin}) does not exist; set LIPNET_DATA "
            "to the folder holding mnist/ and celeba/."
        )
    return chosen.resolve()


def cache_dir() -> Path:
    """Return the cache for derived arrays: ``$LIPNET_CACHE`` or ``~/.cache/lipnet``.

    It is not created here; writers create it on demand.
    """
    env = os.environ.get("LIPNET_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "lipnet"
