"""Dataset-level robustness report: certified vs empirical robustness.

For each test image: its label, prediction, certified radius, the smallest
perturbation the attacks find (transport + FMN), and whether PGD breaks it
at each ε of a grid. Work runs in batches (`iter_report`) so a caller can
show progress, stop, and keep partial results; `summarize` turns rows into
the curves, and `figures` into plotly figures shared by the CLI and the
dashboard.

Slices: `slice_table` gives the clean, certified and empirical (PGD)
accuracy of each slice of the test images, from the rows and a membership
dict (slice name → bool tensor over the images, see `slice_membership`):
per class for every task, and for CelebA faces per attribute, both the group
with the attribute (CelebA value 1) and its complement ("not Male"), so each
group has its reference next to it. Each slice's accuracy is over its own
images. With `keep_counterfactuals`, `iter_report` keeps each row's smallest
flip found, and `arrays_zip` / `write_row_arrays` save δ and the
counterfactual of each row as .npy files.

One job a module: `rows` computes the rows and their summary, `slices` the
slice table, `figures` draws, `files` writes (CSV, zip of arrays, the folder).
"""

from .figures import figures, slice_figure
from .files import (
    arrays_zip,
    row_arrays,
    slices_csv,
    to_csv,
    write_report,
    write_row_arrays,
)
from .rows import PGD_STEPS, REPORT_EPS, Row, iter_report, least_robust, summarize
from .slices import (
    ALL_IMAGES,
    SLICE_ATTRIBUTES,
    slice_membership,
    slice_table,
    telling_eps,
)

__all__ = [
    "ALL_IMAGES",
    "PGD_STEPS",
    "REPORT_EPS",
    "SLICE_ATTRIBUTES",
    "Row",
    "arrays_zip",
    "figures",
    "iter_report",
    "least_robust",
    "row_arrays",
    "slice_figure",
    "slice_membership",
    "slice_table",
    "slices_csv",
    "summarize",
    "telling_eps",
    "to_csv",
    "write_report",
    "write_row_arrays",
]
