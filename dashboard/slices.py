"""What the robustness report slices by, how many test images there are, and
what a batch of them costs.

Cached helpers for the report page; the computation itself is in
`lipnet.report` (`slice_membership`, `slice_table`) and `lipnet.pace`. The
test set of a model is chosen like `state.gallery` does: an uploaded model
gets the test set of a shipped model with the same input shape and classes.
"""

from __future__ import annotations

import json

import streamlit as st
import torch

from dashboard import state
from lipnet import zoo
from lipnet.pace import measure_cost
from lipnet.report import slice_membership


def task_config(key: str) -> dict | None:
    """The training config whose test set the model `key` is reported on."""
    spec = state.model_by_key(key).spec
    if key.startswith("upload:"):
        spec = zoo.same_task(spec)
        if spec is None:
            return None
    return spec.get("card", {}).get("training", {}).get("config")


def _spec(config_json: str) -> dict:
    return {"card": {"training": {"config": json.loads(config_json)}}}


@st.cache_data(show_spinner=False, max_entries=16, ttl=3600)
def _count(config_json: str) -> int | None:
    try:
        return zoo.test_image_count(_spec(config_json))
    except (FileNotFoundError, ValueError, KeyError):
        return None


def available(key: str) -> int | None:
    """How many test images the data folder holds for this model's task (the
    most `state.gallery` can return), None when unknown or there is no data."""
    config = task_config(key)
    if not config:
        return None
    return _count(json.dumps(config, sort_keys=True))


@st.cache_resource(show_spinner="Reading the test images' attributes…", ttl=3600)
def _attributes(config_json: str, n: int) -> dict[str, torch.Tensor]:
    return zoo.test_attributes(_spec(config_json), n)


def membership(key: str, y: torch.Tensor, classes: list[str]) -> dict:
    """Slice name → bool tensor over the report's test images (`y` are their
    labels, the first len(y) of the task): per class, and for faces per
    CelebA attribute and its complement (not the one the model predicts)."""
    config = task_config(key) or {}
    attributes: dict[str, torch.Tensor] = {}
    if config.get("task") == "celeba":
        try:
            attributes = _attributes(json.dumps(config, sort_keys=True), len(y))
        except (FileNotFoundError, ValueError, KeyError):
            attributes = {}
    return slice_membership(y, classes, attributes, skip=[config.get("attribute")])


@st.cache_data(show_spinner="Timing the model…", max_entries=16, ttl=600)
def batch_cost(key: str) -> tuple[float, float]:
    """(a, b): a report batch of n images takes about a + b·n s on this server
    now (timed again after ten minutes: the machine's load changes)."""
    model = state.model_by_key(key)
    return measure_cost(model, tuple(model.spec["input_shape"]))
