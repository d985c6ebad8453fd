"""What a newcomer reads in the explorer (issue 20), through AppTest.

The ratio tile says what it divides; the upload limit is one number, set in
`.streamlit/config.toml` and quoted from there; the nearest real
counterfactual is an image the model itself is sure of, with CelebA's labels
named as such; a face model shown a photo that is not framed like its
training faces says to crop to the face.
"""

from __future__ import annotations

import io
import re
import tomllib
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_dashboard import check, image_captions, metrics, start, texts

from dashboard import results
from lipnet import load, zoo
from lipnet.attacks.common import margin
from lipnet.data import grace_hopper
from lipnet.framing_check import check_framing

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def ratio(at) -> tuple[str, str]:
    """The ratio tile's label and value."""
    (found,) = [(k, v) for k, v in metrics(at).items() if k.startswith("Ratio")]
    return found


def test_the_ratio_tile_says_what_it_divides():
    at = start()
    m = metrics(at)
    radius, size = float(m["Certified radius r"]), float(m["L2 size of the change"])
    label, value = ratio(at)
    assert label == "Ratio: size ÷ (2 × r)"  # overshoot 1, the default
    assert float(value) == pytest.approx(size / (2 * radius), abs=0.006)
    for overshoot, divisor in ((0.5, "(1.5 × r)"), (2.0, "(3 × r)")):
        check(at.slider(key="overshoot").set_value(overshoot).run())
        m = metrics(at)
        radius, size = float(m["Certified radius r"]), float(m["L2 size of the change"])
        label, value = ratio(at)
        assert label == f"Ratio: size ÷ {divisor}"
        scale = 1 + overshoot
        assert float(value) == pytest.approx(size / (scale * radius), abs=0.006)
    check(at.pills(key="method").set_value("fmn").run())  # no overshoot: size ÷ r
    m = metrics(at)
    radius, size = float(m["Certified radius r"]), float(m["L2 size of the change"])
    label, value = ratio(at)
    assert label == "Ratio: size ÷ r"
    assert float(value) == pytest.approx(size / radius, abs=0.006)


def test_one_upload_limit_set_in_the_config_and_quoted_from_it():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    limit = config["server"]["maxUploadSize"]
    readme = re.search(r"up to (\d+) MB\s+\(`maxUploadSize`", README.read_text())
    assert readme and int(readme.group(1)) == limit
    at = start()
    check(at.radio(key="source").set_value("Upload an image").run())
    uploader = at.file_uploader(key="image_upload")
    assert uploader.proto.max_upload_size_mb == limit
    assert f"At most {limit} MB" in uploader.proto.help
    over = b"\x89PNG\r\n\x1a\n" + bytes(limit * 2**20)
    check(
        at.file_uploader(key="image_upload")
        .set_value(("big.png", over, "image/png"))
        .run()
    )
    (error,) = [e.value for e in at.error]
    assert f"over the {limit} MB limit" in error, error


def test_the_nearest_real_counterfactual_is_one_the_model_is_sure_of():
    at = start()
    (button,) = [b for b in at.button if b.label == "Give Grace Hopper a moustache"]
    check(button.click().run())
    (caption,) = [c for c in image_captions(at) if c.startswith("A real ")]
    match = re.fullmatch(r"A real (.+) \(CelebA's label, test image #(\d+)\)", caption)
    assert match, caption
    cls_name, index = match.group(1), int(match.group(2))
    model = load(zoo.list_models()["moustache-hkr"])
    cls = model.spec["classes"].index(cls_name)
    pool, labels = zoo.test_images(model.spec, results.NEAREST_POOL)
    with torch.no_grad():
        margins = margin(model(pool), torch.full((len(pool),), cls), None)
    assert int(labels[index]) == cls
    sure = margins[(labels == cls) & (margins > 0)]
    assert margins[index] >= sure.median(), "the model is not sure of this image"
    (text,) = [t for t in texts(at.markdown) if "The nearest real" in t]
    assert "CelebA" in text, text


def portrait_png() -> bytes:
    """Grace Hopper's whole portrait (matplotlib's sample), as a user uploads it."""
    buf = io.BytesIO()
    grace_hopper().save(buf, format="PNG")
    return buf.getvalue()


def crop_hint(at) -> list[str]:
    return [w for w in texts(at.warning) if "crop to the face" in w]


def test_an_uncropped_photo_on_a_face_model_is_aligned_to_the_face():
    """The whole portrait is no longer centre-cropped: the aligner frames her
    face like the training faces, so no "crop to the face" hint; a photo
    without a face falls back to the centre crop and gets the hint."""
    at = start("moustache-hkr")
    assert not crop_hint(at), "a test face is framed like the training faces"
    check(at.radio(key="source").set_value("Grace Hopper (built-in face)").run())
    assert not crop_hint(at), "the built-in portrait is aligned to the face"
    check(at.radio(key="source").set_value("Upload an image").run())
    upload = ("grace_hopper.png", portrait_png(), "image/png")
    check(at.file_uploader(key="image_upload").set_value(upload).run())
    assert not crop_hint(at), "an uploaded portrait is aligned to the face"
    buf = io.BytesIO()
    Image.new("RGB", (300, 200), (128, 128, 128)).save(buf, format="PNG")
    grey = ("grey.png", buf.getvalue(), "image/png")
    check(at.file_uploader(key="image_upload").set_value(grey).run())
    (hint,) = crop_hint(at)
    assert "no face found" in hint, hint


def test_test_faces_are_framed_and_a_zoomed_out_face_is_not():
    spec = zoo.read_spec(zoo.list_models()["moustache-hkr"])
    x, _ = zoo.test_images(spec, 40)
    assert all(check_framing(face).framed for face in x)
    half = torch.nn.functional.interpolate(x[:10], scale_factor=0.5, mode="area")
    frame = x[:10].mean((2, 3), keepdim=True).expand(-1, -1, 64, 64).clone()
    frame[:, :, 16:48, 16:48] = half  # the same faces at half size, centred
    verdicts = [check_framing(face) for face in frame]
    assert not any(v.framed for v in verdicts)
    assert check_framing(torch.full((1, 28, 28), 0.5)).reason.startswith("no face")
