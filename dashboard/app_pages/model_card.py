"""Model card: what the model is, how it was trained, how good and how sound it is."""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import eps_units, state, views
from lipnet import lipschitz_upper_bound, ood, zoo
from lipnet.attacks import METHOD_LABELS
from lipnet.attacks.gallery import counterfactual_grid
from lipnet.export import export_folder
from lipnet.io import zip_folder

# Human labels for the keys of the card's sections; a key not listed here is
# shown with its underscores as spaces.
LABELS = {
    # attacks (lipnet.attacks.measure)
    "n": "Test images measured",
    "methods": "Attack methods",
    "median_ratio_rd": "Median found distance / certified radius (no pixel box)",
    "within_1.1_rd": "Found within 1.1 × the radius (no pixel box)",
    "found_rd": "A flip found (no pixel box)",
    "median_ratio_box": "Median found distance / certified radius (pixels in [0, 1])",
    "within_1.1_box": "Found within 1.1 × the radius (pixels in [0, 1])",
    "found_box": "A flip found (pixels in [0, 1])",
    "median_smallest_l2_box": "Median smallest flip found (L2, pixels in [0, 1])",
    "note": "Note",
    # training
    "train_time_s": "Training time",
    "machine": "Machine",
    "name": "Name",
    "summary": "Summary",
    "task": "Task",
    "seed": "Random seed",
    "val_fraction": "Validation fraction",
    "image_size": "Image size (pixels)",
    # CelebA's own column name ("Mustache"): shown as the dataset spells it.
    "attribute": "CelebA attribute (column name)",
    "attack_n": "Images for the attack measurement",
    "arch": "Architecture",
    "kind": "Kind",
    "stem": "Invertible down-sampling stem",
    "channels": "Conv channels",
    "widths": "Dense widths",
    "activation": "Activation",
    "head": "Head",
    "loss": "Loss",
    "alpha": "alpha (hinge weight)",
    "min_margin": "Margin",
    "optimizer": "Optimizer",
    "lr": "Learning rate",
    "lr_end": "Final learning rate",
    "batch_size": "Batch size",
    "epochs": "Epochs",
    "augment": "Augmentation",
    "shift": "Random shift (pixels)",
    "flip": "Horizontal flip",
    # data
    "dataset": "Dataset",
    "source": "Source",
    "license": "License",
    "split": "Split",
    "counts": "Counts",
    "train": "train",
    "val": "validation",
    "test": "test",
    "images": "images",
    "positives": "positives",
    "test_ids_sha256": "Test image ids (sha256)",
    # ood (lipnet.ood.summary)
    "method": "Method",
    "quantile": "Calibration quantile (test images)",
    "threshold": "Score threshold",
    "flagged_test_share": "Test images flagged",
    "n_train": "Training images used",
    "n_test": "Test images used",
    # training history
    "epoch": "epoch",
    "train_accuracy": "train accuracy",
    "val_accuracy": "validation accuracy",
}
SHARES = {  # values in [0, 1] shown as percentages
    "within_1.1_rd",
    "found_rd",
    "within_1.1_box",
    "found_box",
    "quantile",
    "flagged_test_share",
    "val_fraction",
}
MAX_ROWS = 200  # an uploaded card may hold any JSON: show a bounded table
MAX_TEXT = 600


MARKDOWN = re.compile(r"([\\`*_{}\[\]<>#|~$])")
CERTIFIED_AT = re.compile(r"(train|val)_certified_(.+)")
OOD_METHODS = {
    ood.METHOD: "distance to the nearest class mean (diagonal Mahalanobis), "
    "on the model's features and on pixel statistics",
}


def literal(text: str) -> str:
    """Text shown as it is: st.table renders Markdown in its cells."""
    return MARKDOWN.sub(r"\\\1", text)


def label(key: Any) -> str:
    key = str(key)
    if key in LABELS:
        return LABELS[key]
    if m := CERTIFIED_AT.fullmatch(key):
        split = "train" if m[1] == "train" else "validation"
        return literal(f"{split}: certified at ε = {m[2]}")
    return literal(key.replace("_", " "))


def show(value: Any, key: str = "") -> str:
    """One value as text: shares as %, numbers rounded, lists joined."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if key in SHARES and 0 <= value <= 1:
            return f"{value:.1%}"
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        if key == "methods":
            value = [
                METHOD_LABELS.get(m, m) if isinstance(m, str) else m for m in value
            ]
        return ", ".join(show(v) for v in value)
    text = OOD_METHODS.get(value, value) if key == "method" else value
    text = str(text)
    return literal(text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…")


def flatten(entry: Any, path: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Rows ("section → key", value) of a nested card entry: dicts are walked,
    lists of scalars joined, lists of objects numbered."""
    rows: list[tuple[str, str]] = []
    key = path[-1] if path else ""
    if isinstance(entry, Mapping):
        for k, v in entry.items():
            rows += flatten(v, (*path, str(k)))
    elif isinstance(entry, list | tuple) and any(
        isinstance(v, Mapping | list | tuple) for v in entry
    ):
        for i, v in enumerate(entry, start=1):
            rows += flatten(v, (*path, f"#{i}"))
    else:
        name = " → ".join(label(p) for p in path) or "value"
        rows.append((name, show(entry, key)))
    return rows[: MAX_ROWS + 1]


def table(rows: list[tuple[str, str]], what: str = "Item") -> None:
    """A two-column table that wraps long text (st.table, not a JSON tree)."""
    if len(rows) > MAX_ROWS:
        st.caption(f"Only the first {MAX_ROWS} entries are shown.")
    st.table(
        pd.DataFrame(rows[:MAX_ROWS], columns=[what, "Value"]),
        hide_index=True,
    )


def history_table(history: Any) -> None:
    """The last epochs of training as a table, one row per epoch."""
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


GRID = 8


@st.cache_data(show_spinner="Making counterfactuals…", max_entries=16, ttl=3600)
def grid_pngs(key: str) -> dict[str, Any] | str:
    """PNGs of 8 test images, their counterfactuals (overshoot 1) and changes,
    and the mean change towards the positive class; or why there are none."""
    images = state.gallery(key, GRID)
    if isinstance(images, str):
        return images
    model = state.model_by_key(key)
    g = counterfactual_grid(model, images[0][:GRID], overshoot=1.0)
    scale = float(g.delta.abs().amax()) or 1.0
    return {
        "x": [views.image_png(x) for x in g.x],
        "cf": [views.image_png(x) for x in g.x_cf],
        "delta": [views.signed_map_png(d, scale=scale) for d in g.delta],
        "mean": views.image_png((0.5 + g.mean_change / (2 * scale)).clamp(0, 1)),
        "mean_signed": views.signed_map_png(g.mean_change, scale=scale),
        "l2": [float(d.norm()) for d in g.delta],
    }


def counterfactual_section(key: str, classes: list[str]) -> None:
    """What the model changes: a grid of test images and the mean change."""
    st.subheader("What the model changes")
    grid = grid_pngs(key)
    if isinstance(grid, str):
        st.caption(grid)
        return
    st.caption(
        "Eight test images (top), their transport counterfactuals at overshoot 1 "
        "(middle: as far past the boundary as each image was before it) and the "
        "changes (bottom: red adds, blue removes; one colour scale for all)."
    )
    for row, kind in (("x", "input"), ("cf", "counterfactual"), ("delta", "change")):
        cols = st.columns(GRID)
        for i, (col, png) in enumerate(zip(cols, grid[row], strict=False)):
            caption = f"‖δ‖ {grid['l2'][i]:.2f}" if kind == "change" else None
            col.image(png, caption=caption, width="stretch", output_format="PNG")
    left, right, _ = st.columns([1, 1, 2])
    left.image(
        grid["mean"],
        caption=f"Mean change towards {classes[1]}",
        width="stretch",
        output_format="PNG",
    )
    right.image(
        grid["mean_signed"],
        caption="…as a signed map",
        width="stretch",
        output_format="PNG",
    )
    st.caption(
        "The mean change averages every change turned towards the positive class: "
        "sharp where the model makes the same change on every image (a template), "
        "faint where each image gets its own change."
    )


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
if "rounding_bound" in lip:
    st.caption(
        "Floating-point rounding can change a score by at most "
        f"{lip['rounding_bound']:.2g} anywhere in the pixel box (float64, as loaded; "
        f"float32 would allow {lip['rounding_bound_float32']:.2g}): every certified "
        "radius has it taken off, so the certificate holds for what this machine "
        "computes."
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
        previous = card.get("previous", [])
        curve = views.certified_curve_figure(cert, kind, previous)
        eps_units.on_axis(curve, spec["input_shape"])
        st.plotly_chart(curve, width="stretch")
        if previous:
            table(
                [
                    (
                        str(e["label"]),
                        f"clean {e['clean_accuracy']:.2%}"
                        + (f"; {e['note']}" if e.get("note") else ""),
                    )
                    for e in previous
                ],
                "Earlier version",
            )
if choice.certified and len(spec.get("classes", [])) == 2:
    counterfactual_section(choice.key, spec["classes"])
if isinstance(card.get("counterfactual_quality"), Mapping):
    st.subheader("Counterfactual quality")
    st.caption(
        "Measured by bench/bench_counterfactuals.py: an independent judge (its own "
        "network, never used to make counterfactuals) classifies the counterfactuals "
        "and three controls; specificity is the mean cosine between the changes "
        "(1 = one template pasted on every input)."
    )
    table(flatten(card["counterfactual_quality"]), "Measurement")
if card.get("attacks"):
    st.subheader("Attacks")
    st.caption(
        "The smallest perturbations the attacks found on test images, against "
        "the certified radius: a ratio of 1 means the certificate is tight."
        if choice.certified
        else "The smallest perturbations the attacks found on test images."
    )
    table(flatten(card["attacks"]), "Measurement")
st.subheader("Training")
training = card.get("training", {})
if isinstance(training, Mapping) and training:
    rows = []
    if "train_time_s" in training:
        rows.append((label("train_time_s"), f"{show(training['train_time_s'])} s"))
    if "machine" in training:
        rows.append((label("machine"), show(training["machine"])))
    config = training.get("config", {})
    if isinstance(config, Mapping):
        # The summary is shown at the top of the page already.
        config = {
            k: v
            for k, v in config.items()
            if not (k == "summary" and v == card.get("summary"))
        }
    rows += flatten(config)
    table(rows, "Setting")
    history_table(training.get("history"))
if card.get("reproduce"):
    st.code(card["reproduce"], language="bash")
st.subheader("Data")
data = card.get("data", {})
if data:
    table(flatten(data))
else:
    st.caption("The card says nothing about the data.")
if isinstance(card.get("ood"), Mapping):
    st.subheader("Out-of-distribution hint")
    st.caption(
        "The explorer flags an input whose score is above the threshold as "
        "unlike the training data (`lipnet.ood`); the certificate still holds."
    )
    table(flatten(ood.summary(card["ood"])), "Calibration")

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
