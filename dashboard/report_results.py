"""The robustness report's results: the least robust inputs and the downloads."""

from __future__ import annotations

import streamlit as st
from torch import Tensor

from dashboard import views
from lipnet.report import arrays_zip, least_robust, to_csv


def least_robust_inputs(rows: list, x: Tensor) -> None:
    """The least robust inputs, each with a button that opens it in the explorer.

    Args:
        rows: the report's rows.
        x: the report's test images.
    """
    st.subheader("Least robust inputs")
    weakest = least_robust(rows)
    cols = st.columns(max(len(weakest), 1))
    for col, row in zip(cols, weakest, strict=False):
        label = (
            f"r = {row.radius:.2f}"
            if row.radius is not None
            else f"flip at {row.found_l2:.2f}"
        )
        col.image(
            views.image_png(x[row.index], size=90),
            caption=f"#{row.index}: {label}",
            output_format="PNG",
        )
        if col.button("Open", key=f"open_{row.index}"):
            st.session_state.source = "Test image"
            st.session_state.gallery_size = max(row.index + 1, 48)
            st.session_state.gallery_index = row.index
            st.switch_page("app_pages/explorer.py")


def downloads(rows: list, x: Tensor, name: str) -> None:
    """The per-image results (CSV) and arrays (zip of .npy, built on click).

    Args:
        rows: the report's rows.
        x: the report's test images.
        name: the model's name, for the file names.
    """
    csv_col, zip_col = st.columns(2)
    csv_col.download_button(
        "Download per-image results (CSV)",
        to_csv(rows),
        file_name=f"{name}-report.csv",
        mime="text/csv",
    )
    zip_col.download_button(
        "Download per-image arrays (zip of .npy)",
        lambda: arrays_zip(rows, x),  # built on click, not at every rerun
        file_name=f"{name}-report-arrays.zip",
        mime="application/zip",
        on_click="ignore",
        help="results.csv and, per image, rows/NNNNNN_delta.npy (counterfactual − "
        "input) and rows/NNNNNN_counterfactual.npy: the smallest flip found "
        "(transport or FMN), float32 of the input's shape. A misclassified image "
        "is its own counterfactual (δ = 0); an image with no flip found has no files.",
    )
