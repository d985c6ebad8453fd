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
from lipnet.data import ImageError, grace_hopper

PASTED = "After: the counterfactual pasted back (it changes only the face's square)"
SHOWN = 800
"""Photos are shown at most this many pixels a side (the page's column)."""


@dataclass(frozen=True)
class Photo:
    """The photo behind the model's input, and the face it was aligned from."""

    data: bytes
    face: int | None
    """The chosen face (None: no face, the centre crop)."""
    faces: int
    """How many faces were found."""


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
def _outlined_png(data: bytes, max_bytes: int, chosen: int | None) -> bytes:
    """The photo with its faces outlined (chosen None: as it is), as PNG."""
    found, photo = _faces(data, max_bytes), _photo(data, max_bytes)
    if chosen is None or isinstance(found, str):
        return _png(photo)
    return _png(
        face_photo.outlined(photo, [] if isinstance(found, str) else found, chosen)
    )


def _png(image: Image.Image) -> bytes:
    """The image at most `SHOWN` pixels a side, as a lossless PNG for the page."""
    shown = image.copy()
    shown.thumbnail((SHOWN, SHOWN), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buf = io.BytesIO()
    shown.save(buf, format="PNG", compress_level=1)
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
    if found:
        st.caption(
            f"{len(found)} face{'s' * (len(found) != 1)} found on your photo; the "
            "model sees the outlined one aligned like its training faces."
        )
    else:
        st.warning(
            "No face found on this photo (too small, cut off, turned away, or "
            "not a photo of a person): the model sees the centre crop instead."
        )
    st.session_state["photo"] = Photo(data, chosen, len(found))
    return x


@st.fragment
def show_photo(v: dict) -> None:
    """The aligned crop, the photo with its faces outlined, and the photo with
    the counterfactual pasted back (before → after on the user's picture); its
    own amplification slider reruns only this fragment."""
    photo = st.session_state.get("photo")
    if photo is None:
        return
    limit = state.upload_limit_mb() * 2**20
    crop, before, after = st.columns([1, 2, 2])
    crop.image(
        v["three"][0],
        caption="Aligned face (the model's input)"
        if photo.face is not None
        else "Centre crop (no face found)",
        width="stretch",
        output_format="PNG",
    )
    n = photo.faces
    before.image(
        _outlined_png(photo.data, limit, photo.face),
        caption=f"Your photo: {n} face{'s' * (n != 1)} found"
        + (" (yellow: the one the model sees)" if n > 1 else ""),
        width="stretch",
        output_format="PNG",
    )
    if photo.face is None:
        return
    k = st.session_state.get("photo_amplify", 1)
    r = v["result"]
    changed = (r.x[0] + k * r.delta[0]).clamp(0, 1).numpy()
    after.image(
        _pasted_png(photo.data, limit, photo.face, changed),
        caption=PASTED + ("" if k == 1 else f", the change ×{k}"),
        width="stretch",
        output_format="PNG",
    )
    after.slider("Amplify the change on the photo ×", 1, 10, key="photo_amplify")


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def _pasted_png(data: bytes, max_bytes: int, face: int, changed: np.ndarray) -> bytes:
    """The photo with the changed (3, H, W) crop pasted back onto face `face`."""
    photo, found = _photo(data, max_bytes), _faces(data, max_bytes)
    return _png(face_photo.pasted(photo, found[face], torch.from_numpy(changed)))
