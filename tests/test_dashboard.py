"""The dashboard through Streamlit's AppTest: every widget path, no browser.

Each test starts its own session (`AppTest.from_file`) on the real app with the
shipped models; the first run of the module loads the models (a few seconds),
later sessions reuse Streamlit's resource cache and start in well under a
second. After every interaction the app must not have raised.

Uploads go through AppTest's `file_uploader(...).set_value`; the real browser
upload is covered by tests/test_browser.py.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from lipnet import zoo
from lipnet.attacks import METHOD_LABELS

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
MODELS = zoo.list_models()
REQUIRED = ("mnist08-hkr", "mnist08-baseline")
TIMEOUT = 120


def check(at: AppTest) -> AppTest:
    """The run raised nothing, not even into the app's error box; returns the app."""
    assert not at.exception, "the app raised:\n" + "\n\n".join(
        f"{e.message}\n{''.join(e.stack_trace)}" for e in at.exception
    )
    failed = [e.value for e in at.error if "Something went wrong" in e.value]
    assert not failed, "a page failed (see the log above)"
    return at


def start(model: str | None = None) -> AppTest:
    """A fresh session on the explorer (optionally switched to `model`)."""
    at = check(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run())
    if model is not None and at.selectbox(key="model_key").value != model:
        check(at.selectbox(key="model_key").set_value(model).run())
    return at


@pytest.fixture(scope="module")
def _warm() -> None:
    """One first run per module: loads the models and test images once."""
    start()


@pytest.fixture
def app(_warm) -> AppTest:
    return start()


def model_names(at: AppTest) -> list[str]:
    """The sidebar's model list, by name (labels are "name · badge")."""
    return [o.split(" · ")[0] for o in at.sidebar.selectbox(key="model_key").options]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def result(at: AppTest) -> tuple:
    """What the page concluded: the verdict headline and the three metrics."""
    heads = [s.value for s in at.subheader if "→" in s.value]
    return (heads, metrics(at))


def chart_titles(at: AppTest) -> list[str]:
    titles = []
    for chart in at.get("plotly_chart"):
        title = json.loads(chart.proto.spec)["layout"].get("title", {})
        titles.append(title.get("text", ""))
    return titles


def svg_titles(at: AppTest) -> list[str]:
    """The titles of the page's SVG charts (markdown elements holding an <svg>)."""
    bodies = [m.value for m in at.markdown if m.value.startswith("<svg")]
    return [re.search(r"<title>(.*?)</title>", b).group(1) for b in bodies]


def image_captions(at: AppTest) -> list[str]:
    """The captions of the page's images; every image is a lossless PNG."""
    images = [img for element in at.get("image") for img in element.proto.imgs]
    assert all(img.url.endswith(".png") for img in images), "JPEG blurs pixels"
    return [img.caption for img in images]


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def digit_png() -> bytes:
    """A white ring on black, 28×28: a passable zero."""
    yy, xx = np.mgrid[:28, :28]
    r = np.hypot(yy - 14, (xx - 14) * 1.4)
    return png(((np.abs(r - 8) < 2.2) * 255).astype(np.uint8))


# --------------------------------------------------------------------------
# The default view


def test_required_models_are_shipped():
    for name in REQUIRED:
        assert name in MODELS, f"assets/models/{name} is missing"


def test_explorer_loads_with_the_views_and_the_certificate(app):
    assert texts(app.title) == ["Counterfactual explorer"]
    picker = app.sidebar.selectbox(key="model_key")
    assert picker.value == "mnist08-hkr"  # certified models are listed first
    assert set(REQUIRED) <= set(model_names(app))
    labels = dict(zip(model_names(app), picker.options, strict=True))
    assert labels["mnist08-hkr"] == "mnist08-hkr · certified"
    assert labels["mnist08-baseline"] == "mnist08-baseline"  # never cut off
    assert app.radio(key="source").value == "Test image"
    methods = app.pills(key="method")
    assert methods.value == "transport"
    assert methods.options == list(METHOD_LABELS.values())  # one click each

    heads = texts(app.subheader)
    assert heads[0] == "0 → 8 (flipped)", heads
    for section in ("The path", "Side by side with the twin", "Attributions"):
        assert section in heads

    captions = image_captions(app)
    assert captions[:3] == [
        "Original: 0",
        "Counterfactual: 8",
        "Difference",
    ]
    assert any(c.startswith("mnist08-baseline (no certificate)") for c in captions)
    assert svg_titles(app) == [
        "Scores before and after",
        "Certificate vs the change",
        "The path: margin vs distance",
    ]

    m = metrics(app)
    assert list(m) == [
        "Certified radius r",
        "L2 size of the change",
        "Ratio: size ÷ (2 × r)",
    ]
    radius, distance = (
        float(m["Certified radius r"]),
        float(m["L2 size of the change"]),
    )
    assert radius > 0.5
    # The attack flipped the decision, so it cannot have needed less than r.
    assert distance >= radius - 1e-3
    # The default overshoot 1 goes past the boundary: the ratio is to 2·r.
    scale = 1 + app.slider(key="overshoot").value
    assert float(m["Ratio: size ÷ (2 × r)"]) == pytest.approx(
        distance / (scale * radius), abs=0.01
    )
    (ok,) = texts(app.success)
    assert ok == f"No change of L2 size below r = {radius:.3f} can flip this decision."
    assert not app.warning and not app.error
    assert [b.label for b in app.get("download_button")] == [
        "Download the three views (PNG)",
        "Download the counterfactual (PNG)",
    ]


# --------------------------------------------------------------------------
# Interactions


def test_hover_toggle_shows_pixel_values(app):
    before = result(app)
    check(app.toggle(key="hover").set_value(True).run())
    charts = {
        json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec)
        for c in app.get("plotly_chart")
    }
    original = charts["Original: 0"]["data"][0]
    assert (
        original["type"] == "heatmap" and "value %{z:.3f}" in original["hovertemplate"]
    )
    difference = charts["Difference"]["data"][0]
    assert (difference["zmin"], difference["zmax"]) == (-0.5, 0.5)
    captions = image_captions(app)
    assert "Original: 0" not in captions
    assert result(app) == before  # same result, only drawn differently
    check(app.toggle(key="hover").set_value(False).run())
    assert "Original: 0" in image_captions(app)


def test_switching_to_the_baseline_shows_no_certificate(app):
    before = result(app)
    check(app.sidebar.selectbox(key="model_key").set_value("mnist08-baseline").run())
    assert result(app) != before
    m = metrics(app)
    assert m["Certified radius r"] == "none"
    assert m["Ratio: size ÷ (2 × r)"] == "—"
    assert float(m["L2 size of the change"]) > 0
    assert not app.success
    (warning,) = texts(app.warning)
    assert "no certificate" in warning
    assert any(c.startswith("mnist08-hkr (certified)") for c in image_captions(app)), (
        "the twin of the baseline is the certified model"
    )

    # The choice survives the next interaction (the sidebar reruns too).
    check(app.slider(key="gallery_index").set_value(2).run())
    assert app.sidebar.selectbox(key="model_key").value == "mnist08-baseline"
    assert metrics(app)["Certified radius r"] == "none"

    check(app.sidebar.selectbox(key="model_key").set_value("mnist08-hkr").run())
    assert metrics(app)["Certified radius r"] != "none"
    assert texts(app.success)


def test_another_test_image_changes_the_result(app):
    seen = {result(app)[1]["Certified radius r"]}
    for i in (1, 5, 12):
        check(app.slider(key="gallery_index").set_value(i).run())
        assert any(
            c.startswith(f"Test image #{i}, true class: ") for c in texts(app.caption)
        )
        radius = metrics(app)["Certified radius r"]
        assert radius not in seen, f"image {i} gave the same radius {radius}"
        seen.add(radius)
        assert texts(app.success)[0].startswith(
            f"No change of L2 size below r = {radius}"
        )


def test_the_app_sends_its_calmer_running_state(app):
    # dashboard/style.css, sent by app.py (so on every page) as a style-only
    # element that takes no room:
    # stale elements dim in one step and the running man is hidden, so a
    # waiting browser draws fewer frames (bench/bench_browser_cpu.py).
    (style,) = [h.proto.body for h in app.get("html")]
    assert style.startswith("<style>") and style.endswith("</style>")
    rules = re.sub(r"/\*.*?\*/", "", style, flags=re.S)
    assert re.search(r'\[data-stale="true"\]\s*{\s*transition: opacity 0s 0.5s', rules)
    assert re.search(r"stStatusWidgetRunningIcon\"\]\s*{\s*display: none", rules)


@pytest.mark.parametrize("method", ["fmn", "pgd", "deepfool", "fgsm", "pgd_search"])
def test_every_method_runs(app, method):
    transport = result(app)
    check(app.pills(key="method").set_value(method).run())
    m = metrics(app)
    verdict = result(app)[0][0]
    flipped = verdict.endswith("(flipped)")
    distance_label = "L2 size of the change" if flipped else "L2 size, no flip"
    ratio = "Ratio: size ÷ (2 × r)" if method == "deepfool" else "Ratio: size ÷ r"
    assert list(m) == ["Certified radius r", distance_label, ratio]
    radius, distance = float(m["Certified radius r"]), float(m[distance_label])
    assert distance > 0
    if flipped:
        assert distance >= radius - 1e-3, "a flip inside the certified radius"
    if method in ("fmn", "pgd"):
        assert result(app) != transport


def test_method_parameters_change_the_result(app):
    # Transport found a flipping change of this size on test image 0.
    found = float(metrics(app)["L2 size of the change"])
    check(app.pills(key="method").set_value("pgd").run())
    assert app.radio(key="norm").value == "l2"
    # The L2 budget is relative to this input's certified radius: 1.2 × r.
    budget = app.slider(key="eps_scale")
    assert budget.value == 1.2
    radius = float(metrics(app)["Certified radius r"])
    shown = f"ε = 1.2 × r = **{1.2 * radius:.3f}** (L2) = {1.2 * radius * 255:.3g}/255"
    assert shown in texts(app.caption)  # and in 8-bit units
    assert result(app)[0] == ["0 → 8 (flipped)"]  # just past r: it flips
    # A budget inside the certified radius cannot flip the decision …
    check(budget.set_value(0.9).run())
    assert result(app)[0] == ["0 → 0 (not flipped)"]
    assert float(metrics(app)["L2 size, no flip"]) <= 0.9 * radius + 1e-3
    assert metrics(app)["Ratio: size ÷ r"] == "—"
    assert texts(app.success)[0].endswith("The attack did not flip it either.")
    # … a budget that holds the transport counterfactual does.
    check(budget.set_value(round(found / radius + 0.2, 1)).run())
    assert result(app)[0] == ["0 → 8 (flipped)"]
    assert float(metrics(app)["L2 size of the change"]) >= radius - 1e-3

    check(app.radio(key="norm").set_value("linf").run())
    assert app.number_input(key="eps_linf").value == 0.1
    check(app.slider(key="pgd_steps").set_value(20).run())
    check(app.slider(key="restarts").set_value(2).run())
    check(app.checkbox(key="box").uncheck().run())
    assert metrics(app)

    check(app.pills(key="method").set_value("transport").run())
    before = result(app)
    check(app.slider(key="step_size").set_value(0.3).run())
    assert result(app) != before
    check(app.slider(key="path_step").set_value(0).run())
    assert any(c.startswith("Step 0: margin ") for c in image_captions(app))
    check(app.selectbox(key="attribution").set_value("integrated_gradients").run())
    assert any(c.endswith("Integrated Gradients") for c in image_captions(app))


def test_other_input_sources(app):
    check(app.radio(key="source").set_value("Grace Hopper (built-in face)").run())
    assert result(app)[0] and metrics(app)
    check(app.radio(key="source").set_value("Camera").run())
    assert texts(app.info) == ["Waiting for an image."]
    assert not app.metric
    check(app.radio(key="source").set_value("Draw").run())
    assert any("The canvas is empty" in w for w in texts(app.warning))
    assert not app.metric
    check(app.radio(key="source").set_value("Built-in digit").run())
    app.selectbox(key="builtin_digit").set_value("8")
    check(app.run())
    assert result(app)[0][0].startswith("8 → 0"), result(app)
    check(app.radio(key="source").set_value("Test image").run())
    assert metrics(app)


def test_without_a_data_folder_the_explorer_still_works(monkeypatch, tmp_path):
    """A fresh machine without ../shared: a warning, then the built-in example."""
    import streamlit as st

    monkeypatch.setenv("LIPNET_DATA", str(tmp_path / "missing"))
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        at = start()
        assert any("No test images" in w for w in texts(at.warning))
        assert metrics(at)["Certified radius r"] != "none"
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()


# --------------------------------------------------------------------------
# Uploads and their failures


def test_uploading_an_image(app):
    check(app.radio(key="source").set_value("Upload an image").run())
    assert texts(app.info) == ["Waiting for an image."]
    assert not app.metric
    upload = app.file_uploader(key="image_upload")
    check(upload.set_value(("zero.png", digit_png(), "image/png")).run())
    assert not app.error
    assert result(app)[0] and metrics(app)["Certified radius r"] != "none"


def test_a_nonsense_input_gets_the_out_of_distribution_hint(app):
    """A uniform grey image still gets a class and a radius, and a warning."""
    assert any("looks like the training data" in c for c in texts(app.caption))
    check(app.radio(key="source").set_value("Upload an image").run())
    grey = np.full((28, 28), 128, dtype=np.uint8)
    check(
        app.file_uploader(key="image_upload")
        .set_value(("grey.png", png(grey), "image/png"))
        .run()
    )
    assert metrics(app)["Certified radius r"] != "none"  # the certificate holds
    (warning,) = [w for w in texts(app.warning) if "unlike the training data" in w]
    assert "the certificate still holds, the class may be meaningless" in warning


def test_an_upload_is_decoded_once(app):
    """Reruns that do not change the upload reuse its decoded tensor."""
    check(app.radio(key="source").set_value("Upload an image").run())
    check(
        app.file_uploader(key="image_upload")
        .set_value(("zero.png", digit_png(), "image/png"))
        .run()
    )
    first = app.session_state["decoded_upload"]
    check(app.checkbox(key="box").set_value(False).run())
    assert app.session_state["decoded_upload"] is first


BAD_IMAGES = {
    "not-an-image": ("bad.png", b"this is not an image", "not a recognised image"),
    "empty": ("empty.png", b"", "empty"),
    "truncated": ("cut.png", digit_png()[:60], ""),
}


@pytest.mark.parametrize("case", BAD_IMAGES)
def test_a_bad_image_shows_its_message(app, case):
    name, data, reason = BAD_IMAGES[case]
    check(app.radio(key="source").set_value("Upload an image").run())
    check(
        app.file_uploader(key="image_upload").set_value((name, data, "image/png")).run()
    )
    (error,) = texts(app.error)
    assert error.startswith("This image cannot be used: ")
    assert reason in error
    assert not app.metric and not app.get("plotly_chart")
    # The page keeps working: another input still gives a result.
    check(app.radio(key="source").set_value("Test image").run())
    assert metrics(app) and not app.error


def model_files(name: str) -> tuple[bytes, bytes]:
    folder = MODELS[name]
    return (folder / "spec.json").read_bytes(), (
        folder / "weights.safetensors"
    ).read_bytes()


def bad_models() -> dict[str, tuple[list, str]]:
    spec, weights = model_files("mnist08-hkr")
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    js, st_ = "application/json", "application/octet-stream"
    return {
        "invalid-json": (
            [("spec.json", b"{not json", js), ("weights.safetensors", noise, st_)],
            "This model cannot be loaded: ",
        ),
        "random-weights": (
            [("spec.json", spec, js), ("weights.safetensors", noise, st_)],
            "This model cannot be loaded: ",
        ),
        "truncated-weights": (
            [("spec.json", spec, js), ("weights.safetensors", weights[:1000], st_)],
            "This model cannot be loaded: ",
        ),
        "not-a-spec": (
            [
                ("spec.json", b'{"format": "pickle"}', js),
                ("w.safetensors", weights, st_),
            ],
            "This model cannot be loaded: ",
        ),
        "only-the-spec": ([("spec.json", spec, js)], "Upload both files"),
    }


@pytest.mark.parametrize("case", list(bad_models()))
def test_a_bad_model_upload_shows_its_message(app, case):
    files, message = bad_models()[case]
    before = result(app)
    check(app.file_uploader(key="model_upload").set_value(files).run())
    alerts = texts(app.sidebar.error) + texts(app.sidebar.warning)
    assert len(alerts) == 1 and alerts[0].startswith(message), alerts
    # Nothing joined the list, the page still shows the shipped model's result …
    picker = app.sidebar.selectbox(key="model_key")
    assert picker.value == "mnist08-hkr"
    assert model_names(app) == list(MODELS)
    assert result(app) == before
    # … and keeps working.
    check(app.slider(key="gallery_index").set_value(3).run())
    assert result(app) != before and metrics(app)


def test_a_refused_upload_is_validated_once(app, monkeypatch):
    """Reruns with the same bad files reuse the remembered refusal, and the
    validation ran through the shared work queue."""
    import dashboard.state as state

    calls = []
    real = state.load_upload

    def counted(spec: bytes, weights: bytes):
        calls.append(state.HEAVY.stats()["running"])
        return real(spec, weights)

    monkeypatch.setattr(state, "load_upload", counted)
    files, message = bad_models()["truncated-weights"]
    files = [(n, b + b" " if n.endswith(".json") else b, t) for n, b, t in files]
    check(app.file_uploader(key="model_upload").set_value(files).run())
    check(app.slider(key="gallery_index").set_value(2).run())
    check(app.slider(key="gallery_index").set_value(3).run())
    assert len(calls) == 1 and len(calls[0]) == 1  # validated once, in a slot
    assert texts(app.sidebar.error)[0].startswith(message)


def test_a_valid_model_upload_joins_the_list(app):
    shipped = metrics(app)
    spec, weights = model_files("mnist08-hkr")
    check(
        app.file_uploader(key="model_upload")
        .set_value(
            [
                ("spec.json", spec, "application/json"),
                ("weights.safetensors", weights, "application/octet-stream"),
            ]
        )
        .run()
    )
    assert not app.sidebar.error and not app.sidebar.warning
    picker = app.sidebar.selectbox(key="model_key")
    assert picker.value.startswith("upload:")
    assert picker.options[-1] == "uploaded: mnist08-hkr"
    # The same weights as the shipped model: the same certificate on image 0.
    assert metrics(app) == shipped
    assert texts(app.success)
    # An uploaded model has no twin.
    assert "Side by side with the twin" not in texts(app.subheader)


# --------------------------------------------------------------------------
# Every model that is shipped now


@pytest.mark.parametrize("name", list(MODELS))
def test_every_shipped_model(_warm, name):
    at = start(name)
    assert at.sidebar.selectbox(key="model_key").value == name
    spec = zoo.read_spec(MODELS[name])
    m = metrics(at)
    assert m, f"{name}: no result on the first test image"
    if spec.get("certified"):
        assert float(m["Certified radius r"]) > 0
        assert texts(at.success) and not at.warning
    else:
        assert m["Certified radius r"] == "none"
        assert any("no certificate" in w for w in texts(at.warning))
    twin = zoo.twin_of(name, MODELS)
    assert ("Side by side with the twin" in texts(at.subheader)) == (twin is not None)
    sources = at.radio(key="source").options
    assert ("Draw" in sources) == (spec["input_shape"][0] == 1)

    classes = spec["classes"]
    if spec.get("task") == "multilabel":  # one attribute at a time: binary
        assert at.sidebar.selectbox(key="attribute").value == classes[0]
        classes = classes[:2]
    if len(classes) > 2:  # multiclass: a target class can be chosen
        target = classes[-1]
        check(at.selectbox(key="target").set_value(target).run())
        (head,) = result(at)[0]
        assert f"→ {target} (flipped)" in head or head.endswith("(not flipped)")
    else:
        assert not [s for s in at.selectbox if s.key == "target"]


# --------------------------------------------------------------------------
# The other pages


def test_report_page_runs_in_batches_and_offers_the_csv(app):
    check(app.switch_page("app_pages/report.py").run())
    assert texts(app.info)  # nothing computed before the button
    app.slider(key="report_n").set_value(20)
    app.select_slider(key="report_batch").set_value(10)
    check(app.button(key="report_run").click().run())
    m = {x.label: x.value for x in app.metric}
    assert m["Images"] == "20" and m["Clean accuracy"].endswith("%")
    assert float(m["Median found / radius"]) >= 1.0 - 1e-3
    assert any("CSV" in b.label for b in app.get("download_button"))


def test_playground_page_trains_both_networks(app):
    check(app.switch_page("app_pages/playground.py").run())
    labels = [x.label for x in app.metric]
    assert "hKR (1-Lipschitz): training accuracy" in labels
    assert "unconstrained: training accuracy" in labels
    assert any("certified disc of radius" in c.value for c in app.caption)


def test_model_card_page_shows_bounds_and_downloads(app):
    check(app.switch_page("app_pages/model_card.py").run())
    m = {x.label: x.value for x in app.metric}
    assert m["Declared Lipschitz constant"] == "1"
    assert float(m["Measured upper bound (now)"]) <= 1 + 1e-3
    rounding = [c.value for c in app.caption if "Floating-point rounding" in c.value]
    assert len(rounding) == 1 and "at most 1.8e-10" in rounding[0]
    assert len(app.get("download_button")) == 2
    # What the model changes: 8 inputs, their counterfactuals, the changes
    # (each with its size) and the mean change towards the positive class.
    assert "What the model changes" in [h.value for h in app.subheader]
    captions = image_captions(app)
    sizes = [c for c in captions if c and c.startswith("‖δ‖ ")]
    assert len(sizes) == 8 and all(float(c.split()[1]) > 0 for c in sizes)
    assert "Mean change towards 8" in captions


def test_card_sections_for_earlier_versions_and_quality_render(tmp_path):
    """A card with `previous` curves and `counterfactual_quality` loads, renders
    in CARD.md, and the certified curve draws the old version dashed."""
    import lipnet
    from dashboard import views
    from lipnet.io import update_card

    folder = tmp_path / "m"
    shutil.copytree(MODELS["mnist08-hkr"], folder)
    old = {"label": "v1 (margin 1.5)", "clean_accuracy": 0.97}
    old["certified_accuracy"] = {"0.5": 0.8, "1.58": 0.1}
    model = update_card(
        folder, previous=[old], counterfactual_quality={"validity": 0.98}
    )
    assert model.spec["card"]["previous"][0]["label"] == "v1 (margin 1.5)"
    text = (folder / "CARD.md").read_text()
    assert "## Earlier versions" in text and "## Counterfactual quality" in text
    fig = views.certified_curve_figure(
        model.spec["card"]["metrics"]["test"]["certified_accuracy"],
        "accuracy",
        model.spec["card"]["previous"],
    )
    names = [t.name for t in fig.data]
    assert names == ["v1 (margin 1.5)", "this model"]
    assert fig.data[0].line.dash == "dash"
    assert lipnet.load(folder).spec["card"]["counterfactual_quality"] == {
        "validity": 0.98
    }
