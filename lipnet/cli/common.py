"""Options several commands share."""

from __future__ import annotations

DEVICE = {
    "choices": ("cpu", "cuda", "auto"),
    "default": "auto",
    "help": "where to compute (auto: a GPU if there is one); under torchrun "
    "each process takes its own GPU (LOCAL_RANK) or the CPU",
}
"""The --device option of train and report."""
