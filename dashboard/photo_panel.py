"""The photo flow of face models: faces found on the photo, the aligned crop,
and the counterfactual pasted back onto the photo.

Layout and caching only; the work is `lipnet.face_photo`'s. Decoding and
detection are cached per image (keyed on its bytes), so a click on the page
does not search the photo again.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch
from PIL import Image

from dashboard import state
from lipnet import face_photo, faces
from lipnet.data import ImageError, grace_hopper, tensor_to_image


@dataclass(frozen=True)
class Photo:
    """The photo behind the model's input, and the face it was aligned from."""

    data: bytes
    face: int | None


def is_face_model(choice: state.Choice) -> bool:
    """Face models (CelebA's task, or any 3×64×64 input) take photos."""
    shape = list(choice.spec["input_shape"])
    return shape == [3, 64, 64] or state.dataset_name(choice.key) == "CelebA"


@st.cache_data(max_entries=1, show_spinner=False)
def hopper_bytes() -> bytes:
    """Grace Hopper's whole portrait, as a user would upload it (PNG)."""
    buf = io.BytesIO()
    grace_hopper().save(buf, format="PNG")
    return buf.getvalue()


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def _photo(data: bytes, max_bytes: int) -> Image.Image | str:
    """The decoded photo, or why it cannot be used."""
    try:
        return face_photo.open_photo(data, max_bytes)
    except ImageError as e:
        return f"This image cannot be used: {e}"


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def _faces(data: bytes, max_bytes: int) -> list[faces.Face] | str:
    """The photo's faces, largest first, or why they could not be searched."""
    photo = _photo(data, max_bytes)
    try:
        return faces.detect_faces(photo)
    except faces.FaceModelError as e:
        return f"Faces cannot be searched on this server ({e})."


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def _outlined_jpeg(data: bytes, max_bytes: int, chosen: int | None) -> bytes:
    """The photo with its faces outlined (chosen None: as it is), as JPEG."""
    found, photo = _faces(data, max_bytes), _photo(data, max_bytes)
    if chosen is None and not found:
        return _jpeg(photo)
    return _jpeg(
        face_photo.outlined(photo, [] if isinstance(found, str) else found, chosen)
    )


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def photo_input(data: bytes, spec: dict) -> torch.Tensor | None:
    """Show the photo with its faces and the aligned crop; returns the model's
    input (the chosen face, or the centre crop when there is none)."""
    limit = state.upload_limit_mb() * 2**20
    photo = _photo(data, limit)
    if isinstance(photo, str):
        st.error(photo)
        return None
    found = _faces(data, limit)
    if isinstance(found, str):
        st.warning(found + " Using the centre crop.")
        found = []
    digest = hashlib.sha1(data).hexdigest()
    if st.session_state.get("face_photo") != digest:  # a new photo: the largest
        st.session_state["face_photo"] = digest
        st.session_state["face_index"] = 0
    chosen = None
    if len(found) > 1:
        chosen = st.selectbox(
            f"{len(found)} faces: which one?",
            range(len(found)),
            format_func=lambda i: f"Face {i + 1}" + (" (largest)" if i == 0 else ""),
            key="face_index",
        )
    elif found:
        chosen = 0
    x = face_photo.model_input(photo, None if chosen is None else found[chosen], spec)
    left, right = st.columns([2, 1])
    left.image(
        _outlined_jpeg(data, limit, chosen),
        caption=f"Your photo: {len(found)} face{'s' * (len(found) != 1)} found",
        width="stretch",
    )
    right.image(
        tensor_to_image(x),
        caption="The aligned face (the model's input)"
        if found
        else "Centre crop (no face found)",
        width="stretch",
        output_format="PNG",
    )
    if not found:
        st.warning(
            "No face found on this photo (too small, cut off, turned away, or "
            "not a photo of a person): the model sees the centre crop instead."
        )
    st.session_state["photo"] = Photo(data, chosen)
    return x


def show_pasted(v: dict) -> None:
    """Before → after on the user's own photo: the counterfactual pasted back."""
    photo = st.session_state.get("photo")
    if photo is None or photo.face is None:
        return
    limit = state.upload_limit_mb() * 2**20
    after = _pasted_jpeg(
        photo.data, limit, photo.face, v["result"].x_adv[0].numpy().copy()
    )
    before = _jpeg(_photo(photo.data, limit))
    a, b = st.columns(2)
    a.image(before, caption="Your photo", width="stretch")
    b.image(
        after,
        caption="With the counterfactual (changed only inside the face's square)",
        width="stretch",
    )


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def _pasted_jpeg(data: bytes, max_bytes: int, face: int, x_adv: np.ndarray) -> bytes:
    """The photo with the counterfactual crop pasted back onto face `face`."""
    photo, found = _photo(data, max_bytes), _faces(data, max_bytes)
    return _jpeg(face_photo.pasted(photo, found[face], torch.from_numpy(x_adv)))
