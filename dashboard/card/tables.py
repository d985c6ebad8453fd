"""The model card's tables: two columns that wrap long text, and the last epochs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from .labels import MAX_ROWS, label, show


def table(rows: list[tuple[str, str]], what: str = "Item") -> None:
    """A two-column table that wraps long text (st.table, not a JSON tree).

    Args:
        rows: (name, value) pairs, e.g. from `flatten`.
        what: the first column's heading.
    """
    if len(rows) > MAX_ROWS:
        st.caption(f"Only the first {MAX_ROWS} entries are shown.")
    st.table(
        pd.DataFrame(rows[:MAX_ROWS], columns=[what, "Value"]),
        hide_index=True,
    )


def history_table(history: Any) -> None:
    """The last epochs of training as a table, one row per epoch.

    Args:
        history: the card's training history (a list of per-epoch dicts);
            anything else shows nothing.
    """
    if not isinstance(history, list) or not all(
        isinstance(h, Mapping) for h in history
    ):
        return
    rows = [
        {label(k)[:1].upper() + label(k)[1:]: show(v, k) for k, v in h.items()}
        for h in history[-10:]
    ]
    if rows:
        st.markdown("**Last epochs**")
        st.table(pd.DataFrame(rows), hide_index=True)


def titled_table(
    title: str, caption: str, rows: list[tuple[str, str]], what: str
) -> None:
    """A section of one table: its heading, a caption, then `table`.

    Args:
        title: the section's heading.
        caption: what the table measures.
        rows: (name, value) pairs, e.g. from `flatten`.
        what: the first column's heading.
    """
    st.subheader(title)
    st.caption(caption)
    table(rows, what)
