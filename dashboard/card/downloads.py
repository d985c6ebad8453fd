"""The card's downloads: the plain-layer export and the model folder."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from dashboard import state
from dashboard.state import Choice
from lipnet import zoo
from lipnet.export import export_folder
from lipnet.io import zip_folder


@st.cache_data(show_spinner="Exporting…", max_entries=16, ttl=3600)
def downloads(key: str) -> tuple[bytes, bytes | None]:
    """(zip of the plain-layer export, zip of the model folder if shipped).

    Args:
        key: the model's key (`dashboard.state.model_by_key`).

    Returns:
        The two zip files' bytes; the second is None for an uploaded model.
    """
    model = state.model_by_key(key)
    # A fixed name in a fresh temporary folder: nothing from the spec is a path.
    with tempfile.TemporaryDirectory() as tmp:
        plain = zip_folder(export_folder(model, Path(tmp) / "model-plain"))
    shipped = zoo.list_models().get(key)
    return plain, (zip_folder(shipped) if shipped else None)


def render(choice: Choice) -> None:
    """Two download buttons (one for an uploaded model).

    Args:
        choice: the model the page shows.
    """
    st.subheader("Downloads")
    plain, folder = downloads(choice.key)
    st.download_button(
        "Plain-layer export (zip: spec.json + weights.safetensors)",
        plain,
        file_name=f"{choice.name}-plain.zip",
        mime="application/zip",
    )
    if folder is not None:
        st.download_button(
            "Model folder (zip)",
            folder,
            file_name=f"{choice.name}.zip",
            mime="application/zip",
        )
