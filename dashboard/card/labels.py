"""The model card's words: a label for each key of the card, a value as text.

Pure text, no Streamlit: `flatten` turns a nested card entry into rows of
("section → key", value) that `dashboard.card.tables.table` shows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from lipnet import ood
from lipnet.attacks import METHOD_LABELS

# Human labels for the keys of the card's sections; a key not listed here is
# shown with its underscores as spaces.
LABELS = {
    # attacks (lipnet.attacks.measure)
    "n": "Test images measured",
    "methods": "Attack methods",
    "median_ratio_rd": "Median found distance / certified radius (no pixel box)",
    "within_1.1_rd": "Found within 1.1 × the radius (no pixel box)",
    "found_rd": "A flip found (no pixel box)",
    "median_ratio_box": "Median found distance / certified radius (pixels in [0, 1])",
    "within_1.1_box": "Found within 1.1 × the radius (pixels in [0, 1])",
    "found_box": "A flip found (pixels in [0, 1])",
    "median_smallest_l2_box": "Median smallest flip found (L2, pixels in [0, 1])",
    "note": "Note",
    # training
    "train_time_s": "Training time",
    "machine": "Machine",
    "name": "Name",
    "summary": "Summary",
    "task": "Task",
    "seed": "Random seed",
    "val_fraction": "Validation fraction",
    "image_size": "Image size (pixels)",
    # CelebA's own column name ("Mustache"): shown as the dataset spells it.
    "attribute": "CelebA attribute (column name)",
    "attack_n": "Images for the attack measurement",
    "arch": "Architecture",
    "kind": "Kind",
    "stem": "Invertible down-sampling stem",
    "channels": "Conv channels",
    "widths": "Dense widths",
    "activation": "Activation",
    "head": "Head",
    "loss": "Loss",
    "alpha": "alpha (hinge weight)",
    "min_margin": "Margin",
    "optimizer": "Optimizer",
    "lr": "Learning rate",
    "lr_end": "Final learning rate",
    "batch_size": "Batch size",
    "epochs": "Epochs",
    "augment": "Augmentation",
    "shift": "Random shift (pixels)",
    "flip": "Horizontal flip",
    # data
    "dataset": "Dataset",
    "source": "Source",
    "license": "License",
    "split": "Split",
    "counts": "Counts",
    "train": "train",
    "val": "validation",
    "test": "test",
    "images": "images",
    "positives": "positives",
    "test_ids_sha256": "Test image ids (sha256)",
    # ood (lipnet.ood.summary)
    "method": "Method",
    "quantile": "Calibration quantile (test images)",
    "threshold": "Score threshold",
    "flagged_test_share": "Test images flagged",
    "n_train": "Training images used",
    "n_test": "Test images used",
    # training history
    "epoch": "epoch",
    "train_accuracy": "train accuracy",
    "val_accuracy": "validation accuracy",
}
SHARES = {  # values in [0, 1] shown as percentages
    "within_1.1_rd",
    "found_rd",
    "within_1.1_box",
    "found_box",
    "quantile",
    "flagged_test_share",
    "val_fraction",
}
MAX_ROWS = 200  # an uploaded card may hold any JSON: show a bounded table
MAX_TEXT = 600


MARKDOWN = re.compile(r"([\\`*_{}\[\]<>#|~$])")
CERTIFIED_AT = re.compile(r"(train|val)_certified_(.+)")
OOD_METHODS = {
    ood.METHOD: "distance to the nearest class mean (diagonal Mahalanobis), "
    "on the model's features and on pixel statistics",
}


def literal(text: str) -> str:
    """Text shown as it is: st.table renders Markdown in its cells.

    Args:
        text: any text.

    Returns:
        The text with Markdown's special characters escaped.

    >>> print(literal("a_b*"))
    a\\_b\\*
    """
    return MARKDOWN.sub(r"\\\1", text)


def label(key: Any) -> str:
    """A card key as a human label (`LABELS`, or the key with spaces).

    Args:
        key: a key of the card.

    Returns:
        The label, as literal text.
    """
    key = str(key)
    if key in LABELS:
        return LABELS[key]
    if m := CERTIFIED_AT.fullmatch(key):
        split = "train" if m[1] == "train" else "validation"
        return literal(f"{split}: certified at ε = {m[2]}")
    return literal(key.replace("_", " "))


def show(value: Any, key: str = "") -> str:
    """One value as text: shares as %, numbers rounded, lists joined.

    Args:
        value: a card value (any JSON value).
        key: its key, which decides shares and method names.

    Returns:
        The value as literal text ("—" for None), at most MAX_TEXT characters.
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if key in SHARES and 0 <= value <= 1:
            return f"{value:.1%}"
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        if key == "methods":
            value = [
                METHOD_LABELS.get(m, m) if isinstance(m, str) else m for m in value
            ]
        return ", ".join(show(v) for v in value)
    text = OOD_METHODS.get(value, value) if key == "method" else value
    text = str(text)
    return literal(text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…")


def flatten(entry: Any, path: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Rows ("section → key", value) of a nested card entry: dicts are walked,
    lists of scalars joined, lists of objects numbered.

    Args:
        entry: a card entry (any JSON value).
        path: the keys above it.

    Returns:
        Up to MAX_ROWS + 1 rows (one more tells `table` to say it cut).
    """
    rows: list[tuple[str, str]] = []
    key = path[-1] if path else ""
    if isinstance(entry, Mapping):
        for k, v in entry.items():
            rows += flatten(v, (*path, str(k)))
    elif isinstance(entry, list | tuple) and any(
        isinstance(v, Mapping | list | tuple) for v in entry
    ):
        for i, v in enumerate(entry, start=1):
            rows += flatten(v, (*path, f"#{i}"))
    else:
        name = " → ".join(label(p) for p in path) or "value"
        rows.append((name, show(entry, key)))
    return rows[: MAX_ROWS + 1]
