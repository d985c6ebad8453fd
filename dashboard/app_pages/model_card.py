"""Model card: what the model is, how it was trained, how good and how sound it is."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import state, views
from lipnet import lipschitz_upper_bound, zoo
from lipnet.export import export_folder
from lipnet.io import zip_folder


@st.cache_data(show_spinner="Measuring the Lipschitz upper bound…", max_entries=32)
def measured_upper_bound(key: str) -> float:
    model = state.model_by_key(key)
    return lipschitz_upper_bound(model, model.input_shape)


@st.cache_data(show_spinner="Exporting…", max_entries=16, ttl=3600)
def downloads(key: str) -> tuple[bytes, bytes | None]:
    """(zip of the plain-layer export, zip of the model folder if shipped)."""
    model = state.model_by_key(key)
    # A fixed name in a fresh temporary folder: nothing from the spec is a path.
    with tempfile.TemporaryDirectory() as tmp:
        plain = zip_folder(export_folder(model, Path(tmp) / "model-plain"))
    shipped = zoo.list_models().get(key)
    return plain, (zip_folder(shipped) if shipped else None)


choice = state.current()
spec = choice.spec
card = spec.get("card", {})
st.title(f"Model card: {choice.name}")
if card.get("summary"):
    st.markdown(card["summary"])
if "NON-COMMERCIAL" in card.get("license", ""):
    st.warning(card["license"])
elif card.get("license"):
    st.caption(f"Data license: {card['license']}")
if not choice.certified:
    st.error("This model is unconstrained: it carries no certificate.")

lip = card.get("lipschitz", {})
a, b, c = st.columns(3)
a.metric(
    "Declared Lipschitz constant",
    "none"
    if spec.get("lipschitz_constant") is None
    else f"{spec['lipschitz_constant']:g}",
)
b.metric("Measured upper bound (now)", f"{measured_upper_bound(choice.key):.4f}")
c.metric(
    "Measured lower bound (card)",
    f"{lip['lower_bound']:.4f}" if "lower_bound" in lip else "—",
)
if lip.get("method"):
    st.caption(lip["method"])

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
    f"Input {' × '.join(map(str, spec['input_shape']))} pixels in [0, 1]; classes "
    f"{', '.join(spec.get('classes', []))}; head: {spec.get('head')}."
)

metrics = card.get("metrics", {}).get("test")
if metrics:
    st.subheader("Test metrics")
    kind = "balanced accuracy" if metrics.get("balanced") else "accuracy"
    st.metric(
        f"Clean {kind} on {metrics['n']} test images",
        f"{metrics['clean_accuracy']:.2%}",
    )
    cert = metrics.get("certified_accuracy")
    if cert:
        st.plotly_chart(views.certified_curve_figure(cert, kind), width="stretch")
if card.get("attacks"):
    st.subheader("Attacks")
    st.json(card["attacks"], expanded=False)
st.subheader("Training")
training = card.get("training", {})
if training:
    st.write(
        f"Training time: {training.get('train_time_s', '?')} s "
        f"on {training.get('machine', '?')}"
    )
    st.json(training.get("config", {}), expanded=False)
if card.get("reproduce"):
    st.code(card["reproduce"], language="bash")
st.subheader("Data")
st.json(card.get("data", {}), expanded=False)

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
