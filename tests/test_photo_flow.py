"""The explorer's photo flow on a face model, through Streamlit's AppTest.

An uploaded photo (or Grace Hopper's whole portrait) goes through the face
aligner: the faces are outlined on it, one is chosen (the largest by
default), the aligned crop is the model's input, and the counterfactual comes
back onto the photo. No face: the centre crop, said so. Odd photos (many
faces, a face cut by the border, a tiny face, a drawing) get an answer, never
a traceback. Photos are built from matplotlib's public-domain portrait.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw
from test_dashboard import check, image_captions, metrics, start, texts

from dashboard.photo_panel import PASTED
from lipnet.data import grace_hopper

MODEL = "moustache-hkr"


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def side_by_side(n: int = 2, height: int = 300) -> Image.Image:
    """`n` copies of the portrait in a row, the first the largest."""
    hopper = grace_hopper()
    sizes = [height] + [height * 2 // 3] * (n - 1)
    row = Image.new("RGB", (sum(s * 512 // 600 for s in sizes), height), "white")
    x = 0
    for s in sizes:
        w = s * 512 // 600
        row.paste(hopper.resize((w, s)), (x, height - s))
        x += w
    return row


def grid(n: int = 30, cell: int = 110) -> Image.Image:
    """A crowd: `n` small portraits in a grid."""
    hopper = grace_hopper().resize((cell * 512 // 600, cell))
    cols = 6
    out = Image.new("RGB", (cols * hopper.width, -(-n // cols) * cell), "white")
    for i in range(n):
        out.paste(hopper, ((i % cols) * hopper.width, (i // cols) * cell))
    return out


def drawing() -> Image.Image:
    """A smiley drawn with lines: a face for people, not for a face detector."""
    out = Image.new("RGB", (300, 300), "white")
    d = ImageDraw.Draw(out)
    d.ellipse((50, 50, 250, 250), outline="black", width=6)
    d.ellipse((100, 110, 125, 135), fill="black")
    d.ellipse((175, 110, 200, 135), fill="black")
    d.arc((95, 140, 205, 210), 20, 160, fill="black", width=6)
    return out


def tiny() -> Image.Image:
    """Her face, 20 pixels wide, on a green field."""
    out = Image.new("RGB", (400, 300), (90, 120, 90))
    out.paste(grace_hopper().crop((100, 0, 412, 312)).resize((20, 20)), (190, 140))
    return out


ODD = {
    "a crowd of 30": grid,
    "a face cut by the border": lambda: grace_hopper().crop((180, 0, 512, 600)),
    "a 20-pixel face": lambda: tiny(),
    "a drawing": drawing,
    "a one-pixel image": lambda: Image.new("RGB", (1, 1), "red"),
    "a grey photo with alpha": lambda: grace_hopper().convert("LA"),
}


@pytest.fixture(scope="module")
def _warm() -> None:
    start(MODEL)


@pytest.fixture
def app(_warm):
    at = start(MODEL)
    return check(at.radio(key="source").set_value("Upload an image").run())


def upload(at, image: Image.Image, name: str = "photo.png"):
    at.file_uploader(key="image_upload").set_value((name, png(image), "image/png"))
    return check(at.run())


def test_grace_hoppers_portrait_is_aligned_and_the_result_pasted_back(_warm):
    at = start(MODEL)
    check(at.radio(key="source").set_value("Grace Hopper (built-in face)").run())
    captions = image_captions(at)
    assert "Your photo: 1 face found" in captions
    assert "Aligned face (the model's input)" in captions and PASTED in captions
    assert not [w for w in texts(at.warning) if "crop to the face" in w]
    assert at.session_state["photo"].face == 0
    check(at.slider(key="photo_amplify").set_value(3).run())
    assert PASTED + ", the change ×3" in image_captions(at)


def test_two_faces_the_largest_first_and_the_other_on_request(app):
    upload(app, side_by_side())
    box = app.selectbox(key="face_index")
    assert box.options == ["Face 1 (largest)", "Face 2"] and box.value == 0
    first = app.session_state["photo"]
    assert first.faces == 2
    assert "Your photo: 2 faces found (yellow: the one the model sees)" in (
        image_captions(app)
    )
    assert PASTED in image_captions(app) and metrics(app)
    check(box.set_value(1).run())
    assert app.session_state["photo"].face == 1
    assert PASTED in image_captions(app) and metrics(app)
    assert app.session_state["photo"].data == first.data


def test_no_face_the_centre_crop_says_so(app):
    upload(app, Image.new("RGB", (300, 200), (128, 128, 128)))
    captions = image_captions(app)
    assert "Centre crop (no face found)" in captions
    assert "Your photo: 0 faces found" in captions and PASTED not in captions
    assert any(w.startswith("No face found on this photo") for w in texts(app.warning))
    assert metrics(app)["Certified radius r"] != "none"


@pytest.mark.parametrize("case", ODD)
def test_an_odd_photo_gets_an_answer(app, case):
    upload(app, ODD[case]())
    (shown,) = [c for c in image_captions(app) if c.startswith("Your photo: ")]
    found = int(shown.split()[2])
    if found > 1:
        assert len(app.selectbox(key="face_index").options) == found
    assert metrics(app) and not app.error


def test_a_bad_file_keeps_its_clear_error(app):
    app.file_uploader(key="image_upload").set_value(
        ("bad.png", b"this is not an image", "image/png")
    )
    check(app.run())
    (error,) = texts(app.error)
    assert error.startswith("This image cannot be used: not a recognised image")
    assert not app.metric


def test_a_photo_is_searched_once(app, monkeypatch):
    """Reruns that do not change the photo reuse its faces (cached on its bytes)."""
    from dashboard import photo_panel

    photo = side_by_side(3)
    upload(app, photo)
    searched = []
    original = photo_panel.faces.detect_faces

    def counted(image, *args, **kwargs):
        searched.append(image.size)
        return original(image, *args, **kwargs)

    monkeypatch.setattr(photo_panel.faces, "detect_faces", counted)
    check(app.checkbox(key="box").set_value(False).run())
    check(app.selectbox(key="face_index").set_value(1).run())
    assert searched and photo.size not in searched  # only the crop's framing check
