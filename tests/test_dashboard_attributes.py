"""A multi-attribute face model in the dashboard: the attribute and the direction.

`celeba-hkr` scores twelve attributes, each with its own 1-Lipschitz output.
The sidebar picks one (`lipnet.attribute`), the explorer picks the direction
("add a moustache" walks the test faces without one), and the card, the
report and the compare page work on that attribute.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from test_dashboard import APP, TIMEOUT, check, metrics, texts

from lipnet import zoo

MODEL = "celeba-hkr"
assert MODEL in zoo.list_models(), f"assets/models/{MODEL} is shipped"


@pytest.fixture(scope="module")
def app() -> AppTest:
    at = check(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run())
    check(at.selectbox(key="model_key").set_value(MODEL).run())
    return at


def test_the_sidebar_offers_every_attribute_and_the_explorer_a_direction(app):
    picker = app.sidebar.selectbox(key="attribute")
    assert picker.value == "Mustache" and len(picker.options) == 12
    assert "wearing hat" in picker.options
    direction = app.radio(key="direction")
    assert direction.options == ["Add a moustache", "Remove the moustache"]
    assert texts(app.subheader)[0] == "no moustache → moustache (flipped)"
    assert float(metrics(app)["Certified radius r"]) > 0
    check(picker.set_value("Eyeglasses").run())
    check(app.radio(key="direction").set_value(0).run())
    assert texts(app.subheader)[0] == "eyeglasses → no eyeglasses (flipped)"
    assert app.radio(key="direction").options[1] == "Remove the eyeglasses"


def test_a_face_already_on_the_chosen_side_gets_a_message(app):
    check(app.selectbox(key="attribute").set_value("Smiling").run())
    check(app.radio(key="direction").set_value(0).run())
    check(app.radio(key="source").set_value("Grace Hopper (built-in face)").run())
    # The model sees no smile on her aligned face (score −0.59): nothing to take away.
    assert "“take the smile away” has nothing to do here" in " ".join(texts(app.info))
    assert not app.metric  # no counterfactual going the other way
    check(app.radio(key="source").set_value("Test image").run())


def test_the_card_shows_every_attribute_and_compare_offers_the_old_model(app):
    check(app.selectbox(key="attribute").set_value("Mustache").run())
    app.switch_page("app_pages/model_card.py")
    check(app.run())
    assert "Every attribute" in texts(app.subheader)
    (table,) = [d for d in app.dataframe if "attribute" in d.value.columns]
    assert len(table.value) == 12 and "moustache" in set(table.value["attribute"])
    app.switch_page("app_pages/compare.py")
    check(app.run())
    offered = app.multiselect(key="compare_models").options
    assert "celeba-hkr@Mustache" in offered and "moustache-hkr" in offered


def test_a_link_carries_the_attribute_and_the_direction():
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(
        {"model": f"{MODEL}@Eyeglasses", "input": "test", "dir": "0"}
    )
    check(at.run())
    assert at.selectbox(key="attribute").value == "Eyeglasses"
    assert at.radio(key="direction").value == 0
    assert texts(at.subheader)[0] == "eyeglasses → no eyeglasses (flipped)"
    shared = dict(at.query_params)
    assert shared["model"] == f"{MODEL}@Eyeglasses" and shared["dir"] == "0"
    bad = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    bad.query_params.update({"model": f"{MODEL}@../../etc", "dir": "7"})
    check(bad.run())
    assert bad.selectbox(key="model_key").value != MODEL
    assert "model" in " ".join(texts(bad.warning)) and "dir" in " ".join(
        texts(bad.warning)
    )


def test_each_attribute_has_its_out_of_distribution_hint():
    """The explorer scores a test face with the chosen attribute's own
    calibration (`ood_by_attribute`); a face model checks the framing first."""
    app = check(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run())
    check(app.selectbox(key="model_key").set_value(MODEL).run())
    for name in ("Eyeglasses", "Mustache"):
        check(app.selectbox(key="attribute").set_value(name).run())
        check(app.radio(key="source").set_value("Test image").run())
        check(app.radio(key="direction").set_value(1).run())  # add it
        captions = " ".join(texts(app.caption))
        assert "The input looks like the training data" in captions
        assert "carries no out-of-distribution calibration" not in captions
