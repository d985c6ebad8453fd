"""Training checkpoints: written atomically, read without unpickling code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (a stop mid-write leaves the previous one).

    Args:
        path: the checkpoint file; its folder is made if missing.
        state: tensors and plain values (what `torch.save` writes).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `fit`, without unpickling code.

    Args:
        path: a file written by `save_checkpoint`.

    Returns:
        The saved state, its tensors on the CPU.
    """
    return torch.load(path, map_location="cpu", weights_only=True)


def time_before(checkpoint: str | Path | None, resume: bool) -> float:
    """Training seconds spent before a resume (0 for a fresh run).

    Args:
        checkpoint: the run's checkpoint file, or None.
        resume: whether the run resumes from it.

    Returns:
        The "train_time_s" the checkpoint records, or 0.0.
    """
    if not resume or checkpoint is None or not Path(checkpoint).is_file():
        return 0.0
    return float(load_checkpoint(Path(checkpoint)).get("train_time_s", 0.0))
