"""The report's files: per-image CSV, slices CSV, per-row arrays, the folder.

`to_csv` and `slices_csv` give CSV text; `arrays_zip` / `write_row_arrays`
save δ and the counterfactual of each row as .npy files; `write_report`
writes a whole report folder (CSV, summary, HTML figures, one PNG).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .figures import figures, summary_png
from .rows import REPORT_EPS, Row, summarize
from .slices import slice_table


def to_csv(rows: Sequence[Row]) -> str:
    """Per-image results as CSV text (one PGD column per ε).

    Args:
        rows: report rows.

    Returns:
        The CSV text, a header and one line a row; "" for no rows.
    """
    buf = io.StringIO()
    if not rows:
        return ""
    eps_keys = list(rows[0].pgd_broken)
    names = [f.name for f in fields(Row) if f.name not in _NOT_CSV]
    writer = csv.writer(buf)
    writer.writerow(names + [f"pgd_broken_at_{k}" for k in eps_keys])
    for r in rows:
        writer.writerow(
            [getattr(r, f) for f in names] + [int(r.pgd_broken[k]) for k in eps_keys]
        )
    return buf.getvalue()


_NOT_CSV = ("pgd_broken", "counterfactual")


def slices_csv(table: Sequence[Mapping[str, Any]]) -> str:
    """A slice table as CSV text (empty cells for an empty slice).

    Args:
        table: a slice table (`slice_table`).

    Returns:
        The CSV text; "" for an empty table.
    """
    if not table:
        return ""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(list(table[0]))
    for entry in table:
        writer.writerow(["" if v is None else v for v in entry.values()])
    return buf.getvalue()


def row_arrays(rows: Sequence[Row], x: Tensor) -> Iterator[tuple[str, np.ndarray]]:
    """(name, float32 array) of each row that kept a counterfactual:
    rows/NNNNNN_delta.npy (counterfactual − input) and
    rows/NNNNNN_counterfactual.npy, NNNNNN the image's index.

    Args:
        rows: report rows (those without a counterfactual are passed over).
        x: the inputs the rows index.

    Yields:
        (file name, array) pairs, δ before the counterfactual.
    """
    for r in rows:
        if r.counterfactual is None:
            continue
        cf = r.counterfactual.detach().cpu().to(torch.float32)
        delta = cf - x[r.index].detach().cpu().to(torch.float32)
        yield f"rows/{r.index:06d}_delta.npy", delta.numpy()
        yield f"rows/{r.index:06d}_counterfactual.npy", cf.numpy()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def arrays_zip(rows: Sequence[Row], x: Tensor) -> bytes:
    """A zip (in memory) of results.csv and each row's δ and counterfactual.

    Args:
        rows: report rows.
        x: the inputs the rows index.

    Returns:
        The zip file's bytes.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("results.csv", to_csv(rows))
        for name, array in row_arrays(rows, x):
            zf.writestr(name, _npy(array))
    return buf.getvalue()


def write_row_arrays(rows: Sequence[Row], x: Tensor, out: str | Path) -> int:
    """Write each row's δ and counterfactual under out/rows/; the files written.

    Args:
        rows: report rows.
        x: the inputs the rows index.
        out: the report folder.

    Returns:
        How many .npy files were written.
    """
    written = 0
    for name, array in row_arrays(rows, x):
        path = Path(out) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, array, allow_pickle=False)
        written += 1
    return written


def write_report(
    rows: Sequence[Row],
    out: str | Path,
    eps_grid: Sequence[float] = REPORT_EPS,
    membership: Mapping[str, Tensor] | None = None,
) -> dict[str, Any]:
    """Write results.csv, summary.json, one HTML per figure and summary.png;
    with a slice membership also slices.csv (see `slice_table`).

    Args:
        rows: report rows.
        out: the folder (made if missing).
        eps_grid: the ε of the curves and slices.
        membership: slice name → bool tensor over the images, or None.

    Returns:
        The summary (`summarize`) written to summary.json.
    """
    import json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.csv").write_text(to_csv(rows))
    if membership is not None:
        table = slice_table(rows, membership, eps_grid)
        (out / "slices.csv").write_text(slices_csv(table))
    summary = summarize(rows, eps_grid)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    for name, fig in figures(summary).items():
        fig.write_html(out / f"{name}.html", include_plotlyjs=True, full_html=True)
    summary_png(summary, out / "summary.png")
    return summary
