"""The explorer's input widgets: where the image comes from, made model-ready.

Test images, Grace Hopper's portrait, a rendered digit, an upload, the
camera or a drawing; each returns a (1, C, H, W) tensor in [0, 1] or None.
An upload is decoded once per file, not at every click. On a face model a
photo (upload, camera, Grace Hopper's whole portrait) goes through the face
aligner (`dashboard.photo_panel`).
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from PIL import Image

from dashboard import directions, photo_panel, state
from lipnet.data import (
    MAX_PIXELS,
    ImageError,
    grace_hopper_face,
    image_to_tensor,
    load_image,
    rendered_digit,
)

SOURCES = [
    "Test image",
    "Grace Hopper (built-in face)",
    "Built-in digit",
    "Upload an image",
    "Camera",
    "Draw",
]


def pick_input(choice: state.Choice) -> torch.Tensor | None:
    """The input widgets; returns the model-ready (1, C, H, W) tensor or None."""
    spec = choice.spec
    channels = spec["input_shape"][0]
    digits = channels == 1 and any(c.isdigit() for c in spec.get("classes", []))
    sources = [
        s
        for s in SOURCES
        if (s != "Draw" or channels == 1) and (s != "Built-in digit" or digits)
    ]
    if st.session_state.get("source") not in sources:  # e.g. "Draw" on a face model
        st.session_state["source"] = sources[0]
    source = st.radio("Input", sources, horizontal=True, key="source")
    direction = directions.pick(choice)
    st.session_state["photo"] = None  # set again by the photo flow
    photos = photo_panel.is_face_model(choice)
    if source == "Test image":
        images = state.gallery(choice.key, st.session_state.get("gallery_size", 48))
        if isinstance(images, str):
            st.warning(images + " Meanwhile, here is the built-in example.")
            return builtin_example(spec, digits)
        x, y = images
        if direction is not None:  # only the faces that can go that way
            x, y = x[y != direction], y[y != direction]
        if st.session_state.get("gallery_index", 0) >= len(x):
            st.session_state["gallery_index"] = 0
        i = st.slider("Test image", 0, len(x) - 1, key="gallery_index")
        st.caption(f"Test image #{i}, true class: **{spec['classes'][int(y[i])]}**")
        return x[i : i + 1].clone()  # never a view into the shared gallery
    if source.startswith("Grace Hopper"):
        if photos:
            return photo_panel.photo_input(photo_panel.hopper_bytes(), spec)
        return image_to_tensor(grace_hopper_face(), spec)
    if source == "Built-in digit":
        return builtin_example(spec, digits)
    if source == "Draw":
        return _drawing(spec)
    if source == "Camera":
        file = st.camera_input("Take a picture", key="camera")
    else:
        file = st.file_uploader(
            "An image file (PNG, JPEG, …)",
            key="image_upload",
            help=f"At most {state.upload_limit_mb()} MB and "
            f"{MAX_PIXELS / 1e6:g} megapixels.",
        )
    if file is None:
        st.info("Waiting for an image.")
        return None
    if photos:
        return photo_panel.photo_input(file.getvalue(), spec)
    return decoded_once(file, spec)


def decoded_once(file, spec: dict) -> torch.Tensor | None:
    """An uploaded image, decoded once per upload and model shape, not per rerun.

    Decoding a 16-megapixel file takes seconds; every click on the page
    reruns it, so the session keeps the tensor (or the reason it was refused).
    """
    memo_key = (file.file_id, tuple(spec["input_shape"]))
    memo = st.session_state.get("decoded_upload")
    if memo is None or memo[0] != memo_key:
        try:
            value = load_image(file, spec, max_bytes=state.upload_limit_mb() * 2**20)
        except ImageError as e:
            value = f"This image cannot be used: {e}"
        memo = (memo_key, value)
        st.session_state["decoded_upload"] = memo
    if isinstance(memo[1], str):
        st.error(memo[1])
        return None
    return memo[1].clone()


def builtin_example(spec: dict, digits: bool) -> torch.Tensor:
    """A digit rendered from a font (digit models) or Grace Hopper's face."""
    if not digits:
        return image_to_tensor(grace_hopper_face(), spec)
    classes = [c for c in spec["classes"] if c.isdigit()]
    if st.session_state.get("builtin_digit") not in classes:
        st.session_state["builtin_digit"] = classes[0]
    digit = st.selectbox("Digit", classes, key="builtin_digit")
    return image_to_tensor(rendered_digit(int(digit)), spec, invert=False)


def _drawing(spec: dict) -> torch.Tensor | None:
    """A canvas for digits: white ink on black, like MNIST."""
    from streamlit_drawable_canvas import st_canvas

    canvas = st_canvas(
        stroke_width=18,
        stroke_color="#ffffff",
        background_color="#000000",
        height=224,
        width=224,
        drawing_mode="freedraw",
        key="canvas",
    )
    data = None if canvas is None else canvas.image_data
    if data is None or not np.asarray(data)[..., :3].any():
        st.warning("The canvas is empty: draw a digit.")
        return None
    img = Image.fromarray(np.asarray(data).astype(np.uint8), "RGBA").convert("L")
    return image_to_tensor(img, spec, invert=False)
