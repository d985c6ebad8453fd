"""lipnet.face_photo: a photo's faces, the model's input, the result on the photo."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from lipnet import face_photo, faces
from lipnet.data import ImageError, grace_hopper, image_to_tensor

SPEC = {"input_shape": [3, 64, 64]}


def encoded(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_a_large_photo_is_reduced_and_turned_upright():
    big = grace_hopper().resize((2048, 2400))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: shown rotated 90° clockwise
    photo = face_photo.open_photo(encoded(big, "JPEG", exif=exif))
    assert photo.mode == "RGB"
    assert max(photo.size) == face_photo.MAX_SIDE
    assert photo.width > photo.height  # upright: the 2048 x 2400 photo turned


def test_bad_bytes_are_refused_with_the_loaders_message():
    with pytest.raises(ImageError, match="not a recognised image"):
        face_photo.open_photo(b"not an image")
    with pytest.raises(ImageError, match="over the"):
        face_photo.open_photo(encoded(grace_hopper()), max_bytes=1000)


def test_the_input_is_the_aligned_face_or_the_centre_crop():
    photo = grace_hopper()
    (face,) = faces.detect_faces(photo)
    aligned = face_photo.model_input(photo, face, SPEC)
    assert aligned.shape == (1, 3, 64, 64)
    expected = image_to_tensor(faces.align(photo, face, 64), SPEC)
    assert torch.equal(aligned, expected)
    assert torch.equal(
        face_photo.model_input(photo, None, SPEC), image_to_tensor(photo, SPEC)
    )


def test_the_counterfactual_changes_the_photo_only_inside_the_face():
    photo = grace_hopper()
    (face,) = faces.detect_faces(photo)
    x = face_photo.model_input(photo, face, SPEC)
    changed = x.clone()
    changed[..., 40:52, 20:44] = 1.0  # a white band where a moustache goes
    after = np.asarray(face_photo.pasted(photo, face, changed), int)
    moved = np.abs(after - np.asarray(photo, int)).sum(-1) > 0
    mask = Image.new("L", photo.size, 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in face.corners()], fill=255)
    inside = np.asarray(mask) > 0
    assert moved.any() and not (moved & ~inside).any()


def test_the_chosen_face_is_outlined_in_its_colour():
    photo = Image.new("RGB", (1200, 600), "white")
    hopper = grace_hopper()
    photo.paste(hopper, (0, 0))
    photo.paste(hopper.resize((427, 500)), (700, 100))
    found = faces.detect_faces(photo)
    assert len(found) == 2
    for chosen in (0, 1):
        a = np.asarray(face_photo.outlined(photo, found, chosen))
        assert (a == face_photo.CHOSEN).all(-1).sum() > 0
        other = a[:, 600:] if chosen == 0 else a[:, :600]
        assert not (other == face_photo.CHOSEN).all(-1).any()
        assert (other == face_photo.OTHER).all(-1).any()
