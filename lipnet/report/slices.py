"""The report's slices: accuracy per class and per CelebA attribute group.

`slice_table` gives the clean, certified and empirical (PGD) accuracy of
each slice of the test images, from the rows and a membership dict (slice
name → bool tensor over the images, see `slice_membership`): per class for
every task, and for CelebA faces per attribute, both the group with the
attribute (CelebA value 1) and its complement ("not Male"), so each group
has its reference next to it. Each slice's accuracy is over its own images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .rows import REPORT_EPS, Row

SLICE_ATTRIBUTES = (
    "Male",
    "Young",
    "Eyeglasses",
    "Smiling",
    "Pale_Skin",
    "Mustache",
    "Wearing_Hat",
)
"""CelebA attributes a face report slices by (each: the group and its complement)."""
ALL_IMAGES = "all images"


def slice_membership(
    y: Tensor,
    classes: Sequence[str],
    attributes: Mapping[str, Tensor] | None = None,
    names: Sequence[str] = SLICE_ATTRIBUTES,
    skip: Sequence[str] = (),
) -> dict[str, Tensor]:
    """Which images belong to which slice: name → bool tensor over the images.

    One slice per class ("class 8", by true label), then for each attribute of
    `names` found in `attributes` (e.g. `zoo.test_attributes`) the group with
    it ("Male") and its complement ("not Male"). `skip` leaves attributes out
    (the one a face model is trained on: its classes already split by it).

    Args:
        y: the true labels.
        classes: the class names, by label.
        attributes: CelebA attribute name → 0/1 tensor over the images.
        names: the attributes to slice by.
        skip: attributes left out.

    Returns:
        Slice name → bool tensor over the images, classes first.
    """
    out = {f"class {name}": y == k for k, name in enumerate(classes)}
    for name in names:
        if attributes and name in attributes and name not in skip:
            member = attributes[name].to(torch.bool)
            out[name] = member
            out[f"not {name}"] = ~member
    return out


def slice_table(
    rows: Sequence[Row],
    membership: Mapping[str, Tensor],
    eps_grid: Sequence[float] = REPORT_EPS,
) -> list[dict[str, Any]]:
    """Accuracy per slice of the rows done so far, "all images" first.

    Each entry: slice, n (rows in it), clean_accuracy, and for each ε of the
    grid certified_at_{ε} (correct with radius > ε; only for a certified
    model) and empirical_at_{ε} (correct and PGD found nothing). Accuracies
    are None for an empty slice. Membership is indexed by `Row.index`.

    Args:
        rows: the rows done so far.
        membership: slice name → bool tensor over the images.
        eps_grid: the ε of the certified and empirical columns.

    Returns:
        One dict a slice, "all images" first; [] for no rows.

    Raises:
        ValueError: a slice shorter than the rows' last index (or not 1-D).
    """
    if not rows:
        return []
    last = max(r.index for r in rows)
    for name, member in membership.items():
        if member.ndim != 1 or len(member) <= last:
            raise ValueError(
                f"slice {name!r} covers {len(member)} images, the rows reach "
                f"image {last}"
            )
    certified = rows[0].radius is not None
    groups = {ALL_IMAGES: list(rows)}
    for name, member in membership.items():
        member = member.to(torch.bool).tolist()
        groups[name] = [r for r in rows if member[r.index]]
    table = []
    for name, group in groups.items():
        n = len(group)

        def share(ok, group=group, n=n):
            return sum(bool(ok(r)) for r in group) / n if n else None

        entry: dict[str, Any] = {
            "slice": name,
            "n": n,
            "clean_accuracy": share(lambda r: r.correct),
        }
        for eps in eps_grid:
            key = f"{eps:g}"
            if certified:
                entry[f"certified_at_{key}"] = share(
                    lambda r, eps=eps: r.correct and r.radius > eps
                )
            entry[f"empirical_at_{key}"] = share(
                lambda r, key=key: r.correct and not r.pgd_broken[key]
            )
        table.append(entry)
    return table


def telling_eps(
    table: Sequence[Mapping[str, Any]], eps_grid: Sequence[float] = REPORT_EPS
) -> float:
    """The ε of the grid that best separates the slices by default: where the
    accuracy of all images (certified if there is a certificate, else PGD) is
    closest to half the clean accuracy, so bars are neither all full nor all
    empty.

    Args:
        table: a slice table (`slice_table`).
        eps_grid: its ε.

    Returns:
        One ε of the grid (the middle one for an empty table).
    """
    if not table or not table[0]["n"]:
        return eps_grid[len(eps_grid) // 2]
    whole = table[0]
    kind = "certified" if f"certified_at_{eps_grid[0]:g}" in whole else "empirical"
    half = whole["clean_accuracy"] / 2
    return min(eps_grid, key=lambda e: abs(whole[f"{kind}_at_{e:g}"] - half))
