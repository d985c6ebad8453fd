"""The robustness report's slices: accuracy per class and per face attribute.

A chart at one ε (the telling one by default, or one typed in any unit),
the table of every ε with the chosen one first, and its CSV.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from torch import Tensor

from dashboard import eps_units, slices
from dashboard.state import Choice
from lipnet.report import (
    ALL_IMAGES,
    REPORT_EPS,
    slice_figure,
    slice_table,
    slices_csv,
    telling_eps,
)


def _units_of(column: str, shape: list) -> str | None:
    """A column's ε in all three units, for its header's help ("certified ε=0.5")."""
    if "ε=" not in column:
        return None
    return "ε = " + eps_units.label(float(column.split("ε=")[1]), shape)


def render(choice: Choice, rows: list, y: Tensor) -> None:
    """The slices section of a report.

    Args:
        choice: the model the report is on.
        rows: the report's rows (not empty).
        y: the labels of the report's test images.
    """
    st.subheader("Slices")
    st.markdown(
        "The same accuracies on parts of the test images, each over its own images: "
        "**per class** (by true label)"
        + (
            ", and **per face attribute** from CelebA's attribute file: the faces "
            "with it (value 1, e.g. *Male*) and the faces without it (*not Male*), "
            "so each group's reference is next to it"
            if choice.spec["input_shape"][0] == 3
            else ""
        )
        + ". A slice of few images (see n) is a rough estimate: one image more or "
        "less moves its accuracy by 1/n."
    )
    groups = slices.membership(choice.key, y, list(choice.spec["classes"]))
    table = slice_table(rows, groups, REPORT_EPS)
    labels = {f"{e:g}": e for e in REPORT_EPS}
    pick, note = st.columns([1, 3], vertical_alignment="bottom")
    typed = pick.selectbox(
        "ε for the chart",
        list(labels),
        index=REPORT_EPS.index(telling_eps(table, REPORT_EPS)),
        key="report_slice_eps",
        accept_new_options=True,
        help="By default the ε where the accuracy of all images is about half "
        "the clean accuracy: there the slices differ most. Type another as 0.5 or "
        "36/255: the nearest ε the report measured is shown.",
    )
    try:
        eps = eps_units.nearest(eps_units.read(typed), REPORT_EPS)
    except ValueError as e:
        pick.error(str(e))
        eps = telling_eps(table, REPORT_EPS)
    shape = choice.spec["input_shape"]
    certified_cols = any(k.startswith("certified_at_") for k in table[0])
    note.caption(
        ("**certified**: correct and certified radius > ε. " if certified_cols else "")
        + "**PGD**: correct and PGD (L2, 20 steps) found no flip within ε. The first "
        f"row, {ALL_IMAGES}, is the whole report. The table starts with the chosen "
        "ε, then every ε of the report (scroll sideways); the CSV holds the same "
        "table. "
        f"ε = {eps_units.label(eps, shape)}."
    )
    st.plotly_chart(slice_figure(table, eps), width="stretch")
    frame = pd.DataFrame(table)
    shares = [c for c in frame.columns if c not in ("slice", "n")]
    frame[shares] = frame[shares].astype(float) * 100  # None (empty slice) → NaN
    frame = frame.rename(
        columns=lambda c: (
            c.replace("certified_at_", "certified ε=")
            .replace("empirical_at_", "PGD ε=")
            .replace("clean_accuracy", "clean")
        )
    )
    # The chosen ε's columns come first: the full grid does not fit a laptop's width.
    key = f"{eps:g}"
    chosen = [c for c in (f"certified ε={key}", f"PGD ε={key}") if c in frame.columns]
    first = ["slice", "n", "clean", *chosen]
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_order=first + [c for c in frame.columns if c not in first],
        height=35 * (len(frame) + 1) + 3,  # every slice, no inner scrolling
        column_config={
            "slice": st.column_config.TextColumn("slice", pinned=True),
            **{
                c: st.column_config.NumberColumn(
                    c, format="%.1f%%", help=_units_of(c, shape)
                )
                for c in frame.columns
                if c not in ("slice", "n")
            },
        },
    )
    st.download_button(
        "Download the slices (CSV)",
        slices_csv(table),
        file_name=f"{choice.name}-slices.csv",
        mime="text/csv",
        on_click="ignore",
    )
