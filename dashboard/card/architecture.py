"""The card's architecture: one row per layer, the input and the classes."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard.state import Choice


def render(choice: Choice) -> None:
    """The layers and their arguments, then the input, classes and head.

    Args:
        choice: the model the page shows.
    """
    spec = choice.spec
    st.subheader("Architecture")
    st.dataframe(
        pd.DataFrame(
            [
                {"layer": e["type"], "arguments": json.dumps(e.get("args", {}))}
                for e in spec["layers"]
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    st.caption(
        f"Input {' × '.join(map(str, spec['input_shape']))} pixels in [0, 1]; "
        f"classes {', '.join(spec.get('classes', []))}; head: {spec.get('head')}."
    )
