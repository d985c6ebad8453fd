"""lipnet dashboard: `streamlit run dashboard/app.py`.

The entry point: page setup, the shared sidebar (model choice) and the
navigation between pages. Everything computed comes from `lipnet`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

from dashboard import links, state  # noqa: E402

st.set_page_config(
    page_title="lipnet dashboard", page_icon=":material/shield:", layout="wide"
)

HERE = Path(__file__).resolve().parent
st.html(HERE / "style.css")  # a calmer running state, less to draw: see the file
PAGES = HERE / "app_pages"
navigation = st.navigation(
    [
        st.Page(
            PAGES / "explorer.py",
            title="Counterfactual explorer",
            icon=":material/search:",
            default=True,
        ),
        st.Page(
            PAGES / "report.py", title="Robustness report", icon=":material/monitoring:"
        ),
        st.Page(
            PAGES / "playground.py",
            title="2D playground",
            icon=":material/scatter_plot:",
        ),
        st.Page(PAGES / "model_card.py", title="Model card", icon=":material/badge:"),
        st.Page(
            PAGES / "compare.py", title="Compare models", icon=":material/compare:"
        ),
    ]
)
FAILURE = "Something went wrong on this page"
ignored = links.apply_once()  # a shared link's values, before any widget exists
if ignored:
    st.session_state["link_ignored"] = ignored
with st.sidebar:
    state.model_picker()
try:
    navigation.run()
except Exception:  # a page's failure must not show the server's folders
    logging.getLogger("lipnet.dashboard").exception("a page failed")
    st.error(
        f"{FAILURE}. The details are in the server's log. Try another input, "
        "model or page; reloading the page starts afresh.",
        icon=":material/error:",
    )
