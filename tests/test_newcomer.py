"""What a newcomer reads in the explorer (issue 20), through AppTest.

The ratio tile says what it divides; the upload limit is one number, set in
`.streamlit/config.toml` and quoted from there; the nearest real
counterfactual is an image the model itself is sure of, with CelebA's labels
named as such; a face model shown a photo that is not framed like its
training faces says to crop to the face.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import torch
from test_dashboard import check, image_captions, metrics, start, texts

from dashboard import results
from lipnet import load, zoo
from lipnet.attacks.common import margin

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
