"""The explorer as a demo: presets, shareable links, the bugs a first user hit.

AppTest sessions on the real app (no browser); `tests/test_browser_demo.py`
checks the same in Chromium at a projector's 1280 × 720.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from test_dashboard import (
    APP,
    TIMEOUT,
    check,
    image_captions,
    metrics,
    result,
    texts,
)

import lipnet
from lipnet import zoo

MODELS = zoo.list_models()


def fresh(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return check(at.run())


def click(at: AppTest, label: str) -> AppTest:
    (button,) = [b for b in at.button if b.label == label]
    return check(button.click().run())


def headline(at: AppTest) -> str:
    return texts(at.subheader)[0]


@pytest.mark.parametrize(
    ("label", "model", "expected"),
    [
        ("Turn a 0 into an 8", "mnist08-hkr", "0 → 8 (flipped)"),
        ("Turn a 7 into a 1", "mnist10-hkr", "7 → 1 (flipped)"),
        ("Give Grace Hopper a moustache", "moustache-hkr", "moustache (flipped)"),
    ],
)
def test_a_preset_sets_up_a_visible_result(label, model, expected):
    at = fresh()
    click(at, label)
    assert at.sidebar.selectbox(key="model_key").value == model
    assert headline(at).endswith(expected)
    m = metrics(at)
    assert float(m["L2 size of the change"]) >= float(m["Certified radius r"])
    # Visible: the transport step goes as far past the boundary as it started.
    assert at.slider(key="overshoot").value >= 1.0


def test_a_link_reopens_the_same_result():
    at = fresh()
    check(at.sidebar.selectbox(key="model_key").set_value("mnist10-hkr").run())
    check(at.slider(key="gallery_index").set_value(3).run())
    check(at.pills(key="method").set_value("deepfool").run())
    check(at.slider(key="overshoot").set_value(0.5).run())
    query = at.query_params
    link = {k: v[0] if isinstance(v, list) else v for k, v in query.items()}
    assert link["model"] == "mnist10-hkr" and link["i"] == "3"
    assert link["method"] == "deepfool" and link["overshoot"] == "0.5"
    again = fresh(link)
    assert again.sidebar.selectbox(key="model_key").value == "mnist10-hkr"
    assert result(again) == result(at)


def test_a_hostile_link_is_ignored_and_reported():
    at = fresh(
        {
            "model": "../../etc/passwd",
            "i": "-5",
            "eps_r": "nan",
            "method": "__import__",
            "input": "upload",
            "target": "x" * 500,
            "evil": "1",
        }
    )
    (warning,) = [w for w in texts(at.warning) if "link" in w]
    for key in ("model", "i", "eps_r", "method", "input", "target", "evil"):
        assert key in warning
    assert at.sidebar.selectbox(key="model_key").value == "mnist08-hkr"
    assert headline(at) == "0 → 8 (flipped)"  # the defaults, working


def test_uploads_are_never_in_a_link():
    at = fresh()
    assert dict(at.query_params)  # a test image: shareable
    check(at.radio(key="source").set_value("Upload an image").run())
    assert not dict(at.query_params)


def test_the_target_list_leaves_out_the_current_class():
    at = fresh({"model": "mnist10-hkr", "i": "0"})  # the first test image is a 7
    options = at.selectbox(key="target").options
    assert "7" not in options and "1" in options and len(options) == 10
    check(at.selectbox(key="target").set_value("1").run())
    assert headline(at) == "7 → 1 (flipped)"


def test_a_failed_attack_is_not_called_the_distance_needed():
    at = fresh()
    check(at.pills(key="method").set_value("fgsm").run())
    check(at.slider(key="eps_scale").set_value(0.5).run())
    m = metrics(at)
    assert "L2 size, no flip" in m and "L2 size of the change" not in m
    assert headline(at) == "0 → 0 (not flipped)"


def test_the_nearest_real_counterfactual_is_shown():
    at = fresh()
    assert "Nearest real counterfactual" in texts(at.subheader)
    (text,) = [t for t in texts(at.markdown) if "The nearest real" in t]
    assert "**8**" in text and "test images" in text


def test_morph_and_amplify_redraw_the_views():
    at = fresh()
    check(at.slider(key="morph").set_value(50).run())
    check(at.slider(key="amplify").set_value(4).run())
    shown = image_captions(at)
    assert "Morph: 50% of the way" in shown
    assert any(c.endswith("×4") for c in shown)


def test_the_plain_export_uploaded_back_is_still_certified(tmp_path):
    """The model card's export: same certificate, and an honest gallery message."""
    from lipnet.export import export_folder

    folder = export_folder(lipnet.load(MODELS["mnist08-hkr"]), tmp_path / "plain")
    files = [
        ("spec.json", (folder / "spec.json").read_bytes(), "application/json"),
        (
            "weights.safetensors",
            (folder / "weights.safetensors").read_bytes(),
            "application/octet-stream",
        ),
    ]
    at = fresh()
    shipped = metrics(at)
    check(at.file_uploader(key="model_upload").set_value(files).run())
    assert not at.sidebar.error
    assert at.sidebar.selectbox(key="model_key").value.startswith("upload:")
    # Same test set (a shipped model with this shape and classes), same numbers.
    assert metrics(at) == shipped
    assert texts(at.success)[0].startswith("No change of L2 size below r = ")
    assert not [w for w in texts(at.warning) if "LIPNET_DATA" in w]


def test_every_warning_of_the_gallery_is_a_sentence(monkeypatch, tmp_path):
    import streamlit as st

    monkeypatch.setenv("LIPNET_DATA", str(tmp_path / "nowhere"))
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        at = fresh({"model": "mnist10-hkr"})
        (warning,) = [w for w in texts(at.warning) if w.startswith("No test images")]
        assert warning.endswith("Meanwhile, here is the built-in example.")
        assert "Set LIPNET_DATA to a data folder that has them." in warning
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()


def test_the_shipped_config_hides_developer_tools_and_tracebacks():
    import tomllib

    config = tomllib.loads((APP.parents[1] / ".streamlit" / "config.toml").read_text())
    assert config["client"]["toolbarMode"] == "viewer"  # no Deploy, no dev menu
    assert config["client"]["showErrorDetails"] == "none"


def test_a_failing_page_shows_the_apps_message_not_a_traceback(monkeypatch):
    from lipnet import ood

    def broken(*args, **kwargs):
        raise RuntimeError("/secret/server/path exploded")

    monkeypatch.setattr(ood, "check", broken)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception  # caught by app.py
    (box,) = [e.value for e in at.error if "Something went wrong" in e.value]
    assert "/secret" not in box and "server's log" in box
    assert at.sidebar.selectbox(key="model_key").value == "mnist08-hkr"  # still there
