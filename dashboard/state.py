"""Cached resources and the shared sidebar: which model, which twin, which data.

Models load once per process (`st.cache_resource`); the current choice lives
in each browser session's `st.session_state`, so sessions never see each
other's inputs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import streamlit as st
import torch
from streamlit.runtime.scriptrunner import get_script_run_ctx

import lipnet
from dashboard.upload_cache import UploadCache, UploadRefused, content_key
from dashboard.work_queue import HEAVY
from lipnet import zoo
from lipnet.attribute_words import readable
from lipnet.attributes import MULTILABEL
from lipnet.io import ModelFileError, load_upload

UPLOADED = "uploaded model"
ATTRIBUTE_MARK = "@"
"""Joins a multi-attribute model's key and one of its attributes."""
MAX_UPLOADS_PER_SESSION = 3
"""Uploaded models a session keeps; the oldest goes when another arrives."""

# One torch thread per computation: the sessions already run in parallel, and
# intra-op threads on these small models only contend with each other (the
# load test's server CPU per burst drops by about a third). LIPNET_TORCH_THREADS
# raises it for a single user running long reports.
torch.set_num_threads(int(os.environ.get("LIPNET_TORCH_THREADS", "1")))


@dataclass
class Choice:
    """The model a page works on, and its unconstrained (or certified) twin."""

    key: str
    name: str
    model: torch.nn.Module
    twin_key: str | None
    twin: torch.nn.Module | None

    @property
    def spec(self) -> dict:
        return self.model.spec

    @property
    def certified(self) -> bool:
        """A certificate is shown only for a model whose bound was measured on load."""
        return self.model.head != "none" and self.model.lipschitz_check["sound"]


@st.cache_resource(show_spinner="Loading the model…")
def shipped_model(name: str) -> torch.nn.Module:
    """A shipped model, loaded once per server process."""
    return lipnet.load(zoo.list_models()[name])


UPLOADS = UploadCache(per_session=MAX_UPLOADS_PER_SESSION)
"""Every session's validated uploads and remembered refusals (`upload_cache`)."""


@st.cache_resource(show_spinner="Reading test images…", max_entries=12, ttl=3600)
def gallery(key: str, n: int = 48) -> tuple[torch.Tensor, torch.Tensor] | str:
    """Test images of a model's task, or the reason there are none.

    An uploaded model's card cannot choose the data (its training config is
    dropped); it gets the test set of a shipped model with the same input
    shape and classes, if there is one.
    """
    spec = model_by_key(key).spec
    if key.startswith("upload:"):
        spec = zoo.same_task(spec)
        if spec is None:
            return "No test images: no shipped model has this input shape and classes."
    try:
        return zoo.test_images(spec, n)
    except FileNotFoundError as e:
        reason = str(e).rstrip(".")
        return (
            f"No test images: {reason}. Set LIPNET_DATA to a data folder that has them."
        )
    except (ValueError, KeyError) as e:
        return f"No test images: {str(e).rstrip('.')}."


def dataset_name(key: str) -> str:
    """The data set the test images of model `key` come from ("CelebA", "MNIST")."""
    spec = model_by_key(key).spec
    if key.startswith("upload:"):
        spec = zoo.same_task(spec) or spec
    return zoo.dataset_name(spec)


def upload_limit_mb() -> int:
    """The most MB an uploaded file may have: `server.maxUploadSize` in
    `.streamlit/config.toml`, the one number every upload check quotes."""
    return int(st.get_option("server.maxUploadSize"))


def model_by_key(key: str) -> torch.nn.Module:
    """The model a key names: a shipped name or "upload:<sha256>", followed
    by "@<attribute>" for one attribute of a multi-attribute model."""
    base, _, name = key.partition(ATTRIBUTE_MARK)
    if name:
        return _attribute_model(base, name)
    if key.startswith("upload:"):
        return st.session_state["uploaded_models"][key]
    return shipped_model(key)


def _attribute_model(base: str, name: str) -> torch.nn.Module:
    """One attribute of a multi-attribute model (`lipnet.attribute`), kept per
    model object so that its certificate context is computed once."""
    model = model_by_key(base)
    views = model.__dict__.setdefault("_attribute_views", {})
    if name not in views:
        views[name] = lipnet.attribute(model, name)
    return views[name]


def _with_attribute(key: str | None) -> str | None:
    """`key`, with the session's attribute when it names a multi-attribute model."""
    if key is None or not is_multi_attribute(model_by_key(key)):
        return key
    names = lipnet.attribute_names(model_by_key(key))
    chosen = st.session_state.get("attribute")
    return f"{key}{ATTRIBUTE_MARK}{chosen if chosen in names else names[0]}"


def is_multi_attribute(model: torch.nn.Module) -> bool:
    """Whether `model` scores several attributes (pick one to work on)."""
    return getattr(model, "task", None) == MULTILABEL


def _read_upload(files: list) -> None:
    """Validate an uploaded spec.json + weights.safetensors pair into the session."""
    by_name = {f.name: f.getvalue() for f in files}
    spec = next((b for n, b in by_name.items() if n.endswith(".json")), None)
    weights = next((b for n, b in by_name.items() if n.endswith(".safetensors")), None)
    if spec is None or weights is None:
        st.warning(
            "Upload both files of a model folder: spec.json and weights.safetensors."
        )
        return
    try:
        model = _validated(spec, weights)
    except (ModelFileError, UploadRefused) as e:
        st.error(f"This model cannot be loaded: {e}")
        return
    key = "upload:" + hashlib.sha256(spec + weights).hexdigest()[:16]
    uploads = st.session_state.setdefault("uploaded_models", {})
    if key not in uploads:  # select a new upload once; the user may then move on
        while len(uploads) >= MAX_UPLOADS_PER_SESSION:
            uploads.pop(next(iter(uploads)))  # the oldest
        uploads[key] = model
        st.session_state["model_key"] = key


def _validated(spec: bytes, weights: bytes) -> torch.nn.Module:
    """The session's upload: from the shared cache, or validated in the work queue.

    A refusal is remembered by content, so the same bad files are never
    validated twice; raises ModelFileError or UploadRefused.
    """
    ctx = get_script_run_ctx()
    session = ctx.session_id if ctx is not None else "local"
    key = content_key(spec, weights)
    model = UPLOADS.lookup(session, key)
    if model is not None:
        return model
    with st.spinner("Checking the uploaded model…"), HEAVY.slot(session):
        try:
            model = load_upload(spec, weights)
        except ModelFileError as e:
            UPLOADS.refuse(key, str(e))
            raise
    return UPLOADS.store(session, key, model)


def model_picker() -> None:
    """Sidebar: pick a shipped model or upload one; stores the choice in the session."""
    with st.expander("Upload a model folder"):
        files = st.file_uploader(
            "spec.json and weights.safetensors",
            accept_multiple_files=True,
            key="model_upload",
        )
        if files:
            _read_upload(files)
    names = list(zoo.list_models())
    uploads = st.session_state.get("uploaded_models", {})
    options = names + list(uploads)
    # Only certified models carry a badge: a long name plus "no certificate"
    # would be cut in the sidebar; the caption below says it in full.
    labels = {n: f"{n} · certified" if _certified(n) else n for n in names}
    labels.update({k: f"uploaded: {uploads[k].spec.get('name', k)}" for k in uploads})
    if st.session_state.get("model_key") not in options:
        st.session_state["model_key"] = options[0]
    st.selectbox(
        "Model",
        options,
        format_func=lambda k: labels.get(k, k),
        key="model_key",
        help="The shipped models; an uploaded model folder joins the list.",
    )
    key = st.session_state["model_key"]
    model = model_by_key(key)
    if is_multi_attribute(model):
        attributes = lipnet.attribute_names(model)
        if st.session_state.get("attribute") not in attributes:
            st.session_state["attribute"] = attributes[0]
        st.selectbox(
            "Attribute",
            attributes,
            format_func=readable,
            key="attribute",
            help="This model scores every attribute with its own 1-Lipschitz "
            "output: each has its own certificate and its own counterfactual.",
        )
    if key in names and not _certified(key):
        st.caption(f"**{key}** is unconstrained: **no certificate**.")
    st.caption(
        "Certified models are 1-Lipschitz: their score cannot change faster than the "
        "distance travelled in pixel space."
    )


@st.cache_data
def _certified(name: str) -> bool:
    return bool(zoo.read_spec(zoo.list_models()[name]).get("certified"))


def current() -> Choice:
    """The session's chosen model and its twin."""
    names = list(zoo.list_models())
    base = st.session_state.get("model_key") or names[0]
    twin_key = zoo.twin_of(base, names) if not base.startswith("upload:") else None
    key, twin_key = _with_attribute(base), _with_attribute(twin_key)
    model = model_by_key(key)
    name = model.spec.get("name", key)
    twin = model_by_key(twin_key) if twin_key else None
    return Choice(key, name, model, twin_key, twin)
