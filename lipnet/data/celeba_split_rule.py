"""CelebA's deterministic split: train/val/test, stratified by label, and the
sentence a model card states it in."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SPLITS: tuple[str, str, str] = ("train", "val", "test")
SPLIT_RULE = (
    "Stratified by label: for each label value, its image ids are sorted, shuffled "
    "with numpy.random.default_rng(seed).permutation (a fresh generator per label) "
    "and cut into consecutive train/val/test parts of round(n*f_train), "
    "round(n*f_val) and the remaining ids; each split's ids are then sorted."
)
"""One-sentence description of :func:`celeba_split`, for model cards."""


def describe_split(
    seed: int = 0, fractions: Sequence[float] = (0.7, 0.15, 0.15)
) -> str:
    """Return :data:`SPLIT_RULE` with the actual seed and fractions filled in.

    Args:
        seed: the split's seed.
        fractions: train, val and test shares.

    Returns:
        The sentence for a model card.
    """
    ft, fv, fs = (float(f) for f in fractions)
    return f"{SPLIT_RULE} Here seed={seed}, train/val/test = {ft:g}/{fv:g}/{fs:g}."


def celeba_split(
    ids: Sequence[str],
    labels: np.ndarray,
    seed: int = 0,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
) -> dict[str, list[str]]:
    """Split ``ids`` into train/val/test, deterministic and stratified by ``labels``.

    See :data:`SPLIT_RULE`. The result depends only on the set of (id, label)
    pairs, the seed and the fractions, not on the order of ``ids``.

    Args:
        ids: unique image ids.
        labels: one label per id.
        seed: the permutation's seed.
        fractions: train, val and test shares (summing to 1).

    Returns:
        {"train", "val", "test"} → sorted ids.

    Raises:
        ValueError: mismatched labels, bad fractions or repeated ids.
    """
    labels = np.asarray(labels)
    if labels.shape != (len(ids),):
        raise ValueError(f"labels shape {labels.shape} does not match {len(ids)} ids")
    if len(fractions) != 3 or any(f < 0 for f in fractions):
        raise ValueError(f"fractions must be 3 non-negative numbers, got {fractions}")
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must sum to 1, got {fractions}")
    if len(set(ids)) != len(ids):
        raise ValueError("ids must be unique")
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for value in np.unique(labels):
        members = sorted(
            str(i) for i, lab in zip(ids, labels, strict=True) if lab == value
        )
        order = np.random.default_rng(seed).permutation(len(members))
        shuffled = [members[k] for k in order]
        n = len(shuffled)
        n_train = round(n * fractions[0])
        n_val = min(round(n * fractions[1]), n - n_train)
        out["train"] += shuffled[:n_train]
        out["val"] += shuffled[n_train : n_train + n_val]
        out["test"] += shuffled[n_train + n_val :]
    return {s: sorted(v) for s, v in out.items()}
