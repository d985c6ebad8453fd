"""Robustness report: slices, per-row arrays, the time left; page and CLI.

The slices are checked on hand-made rows whose accuracies are known; the
arrays on a real report (δ = counterfactual − input and ‖δ‖₂ = found_l2);
the page through AppTest on a 10-image report, the CLI into tmp_path.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_report
from streamlit.testing.v1 import AppTest

from lipnet import zoo
from lipnet.report import (
    ALL_IMAGES,
    Row,
    arrays_zip,
    iter_report,
    slice_figure,
    slice_membership,
    slice_table,
    slices_csv,
    telling_eps,
    to_csv,
    write_row_arrays,
)

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
EPS = (0.5, 2.0)


def row(index, label, correct, radius, broken_05, broken_2):
    return Row(
        index=index,
        label=label,
        prediction=label if correct else 1 - label,
        correct=correct,
        radius=radius,
        found_l2=radius + 0.1 if correct else 0.0,
        ratio=None,
        pgd_broken={"0.5": broken_05 or not correct, "2": broken_2 or not correct},
    )


# Six images: labels 0 0 0 1 1 1; an attribute on images 0, 3, 4.
ROWS = [
    row(0, 0, True, 3.0, False, False),  # certified at 0.5 and 2
    row(1, 0, True, 1.0, False, True),  # certified at 0.5 only; PGD breaks at 2
    row(2, 0, False, 0.2, True, True),  # misclassified
    row(3, 1, True, 0.4, True, True),  # certified nowhere; PGD breaks at 0.5
    row(4, 1, True, 2.5, False, False),
    row(5, 1, True, 0.6, False, False),  # certified at 0.5 only
]
Y = torch.tensor([0, 0, 0, 1, 1, 1])
ATTRS = {
    "Male": torch.tensor([1, 0, 0, 1, 1, 0], dtype=torch.bool),
    "Young": torch.zeros(6, dtype=torch.bool),  # an empty group
    "Blond_Hair": torch.ones(6, dtype=torch.bool),  # not one of the sliced ones
}


def test_slices_of_a_known_case():
    groups = slice_membership(Y, ["zero", "one"], ATTRS, skip=["Young"])
    assert list(groups) == ["class zero", "class one", "Male", "not Male"]
    groups = slice_membership(Y, ["zero", "one"], ATTRS)
    assert list(groups) == [
        "class zero",
        "class one",
        "Male",
        "not Male",
        "Young",
        "not Young",
    ]
    table = {e["slice"]: e for e in slice_table(ROWS, groups, EPS)}
    assert next(iter(table)) == ALL_IMAGES
    expected = {  # n, clean, certified 0.5, PGD 0.5, certified 2, PGD 2
        ALL_IMAGES: (6, 5 / 6, 4 / 6, 4 / 6, 2 / 6, 3 / 6),
        "class zero": (3, 2 / 3, 2 / 3, 2 / 3, 1 / 3, 1 / 3),
        "class one": (3, 1, 2 / 3, 2 / 3, 1 / 3, 2 / 3),
        "Male": (3, 1, 2 / 3, 2 / 3, 2 / 3, 2 / 3),  # images 0, 3, 4
        "not Male": (3, 2 / 3, 2 / 3, 2 / 3, 0, 1 / 3),  # images 1, 2, 5
        "not Young": (6, 5 / 6, 4 / 6, 4 / 6, 2 / 6, 3 / 6),
    }
    for name, (n, clean, c05, e05, c2, e2) in expected.items():
        e = table[name]
        assert e["n"] == n, name
        got = [e[k] for k in ("clean_accuracy", "certified_at_0.5", "empirical_at_0.5")]
        got += [e["certified_at_2"], e["empirical_at_2"]]
        assert got == pytest.approx([clean, c05, e05, c2, e2]), name
    assert table["Young"]["n"] == 0 and table["Young"]["clean_accuracy"] is None

    # Partial rows (a stopped report) count only the images done.
    partial = {e["slice"]: e for e in slice_table(ROWS[:2], groups, EPS)}
    assert partial["class one"]["n"] == 0 and partial["Male"]["n"] == 1

    lines = list(csv.reader(io.StringIO(slices_csv(slice_table(ROWS, groups, EPS)))))
    assert lines[0] == [
        "slice",
        "n",
        "clean_accuracy",
        "certified_at_0.5",
        "empirical_at_0.5",
        "certified_at_2",
        "empirical_at_2",
    ]
    assert [line[0] for line in lines[1:4]] == [ALL_IMAGES, "class zero", "class one"]
    assert lines[-2][0] == "Young" and lines[-2][2:] == [""] * 5  # empty slice

    fig = slice_figure(slice_table(ROWS, groups, EPS), 2.0)
    bars = {t.name: list(t.y) for t in fig.data}
    assert bars["certified"][0] == pytest.approx(2 / 6)
    assert "Young (n=0)" not in fig.data[0].x  # empty slices are not drawn

    # The chart's default ε: all images' certified accuracy nearest half the
    # clean one (5/12): 2/6 at ε = 2 rather than 4/6 at ε = 0.5.
    assert telling_eps(slice_table(ROWS, groups, EPS), EPS) == 2.0
    assert telling_eps([], EPS) == 2.0

    with pytest.raises(ValueError, match="covers 3 images"):
        slice_table(ROWS, {"short": torch.ones(3, dtype=torch.bool)}, EPS)


def test_slices_without_a_certificate():
    rows = [row(i, int(Y[i]), True, 1.0, False, False) for i in range(6)]
    for r in rows:
        r.radius = None
    table = slice_table(rows, slice_membership(Y, ["a", "b"]), EPS)
    assert [k for k in table[0] if k.startswith("certified")] == []
    assert [t.name for t in slice_figure(table, 0.5).data] == [
        "empirical (PGD)",
        "clean",
    ]


def test_counterfactual_arrays_round_trip(load_model, mnist08_test, tmp_path):
    model = load_model("mnist08-hkr")
    x, y = mnist08_test[0][:5], mnist08_test[1][:5].clone()
    y[4] = 1 - y[4]  # one misclassified image: its own counterfactual
    (plain,) = iter_report(model, x, y, (1.0,), batch_size=5, fmn_steps=30)
    assert all(r.counterfactual is None for r in plain)
    (rows,) = iter_report(
        model, x, y, (1.0,), batch_size=5, fmn_steps=30, keep_counterfactuals=True
    )
    assert [r.found_l2 for r in rows] == [r.found_l2 for r in plain]
    assert not rows[4].correct

    with zipfile.ZipFile(io.BytesIO(arrays_zip(rows, x))) as zf:
        names = set(zf.namelist())
        assert zf.read("results.csv").decode() == to_csv(rows)
        kept = [r for r in rows if r.counterfactual is not None]
        assert len(kept) >= 4
        for r in kept:
            delta = np.load(io.BytesIO(zf.read(f"rows/{r.index:06d}_delta.npy")))
            cf = np.load(io.BytesIO(zf.read(f"rows/{r.index:06d}_counterfactual.npy")))
            assert delta.shape == cf.shape == (1, 28, 28)
            assert delta.dtype == cf.dtype == np.float32
            np.testing.assert_allclose(delta, cf - x[r.index].numpy(), atol=1e-6)
            assert np.linalg.norm(delta) == pytest.approx(r.found_l2, abs=1e-4)
        assert names == {"results.csv"} | {
            f"rows/{r.index:06d}_{kind}.npy"
            for r in kept
            for kind in ("delta", "counterfactual")
        }
    assert not np.load(io.BytesIO(_member(rows, x, 4, "delta"))).any()  # δ = 0

    assert write_row_arrays(rows, x, tmp_path) == 2 * len(kept)
    first = np.load(tmp_path / "rows" / f"{kept[0].index:06d}_counterfactual.npy")
    np.testing.assert_array_equal(first, kept[0].counterfactual.numpy())


def _member(rows, x, index, kind) -> bytes:
    with zipfile.ZipFile(io.BytesIO(arrays_zip(rows, x))) as zf:
        return zf.read(f"rows/{index:06d}_{kind}.npy")


def test_face_attributes_match_the_test_images():
    spec = zoo.read_spec(zoo.list_models()["moustache-hkr"])
    try:
        _, y = zoo.test_images(spec, 12)
    except FileNotFoundError:
        pytest.skip("no CelebA data folder")
    attrs = zoo.test_attributes(spec, 12)
    assert len(attrs) == 40 and attrs["Male"].shape == (12,)
    # The model's own attribute is its label, image by image.
    assert attrs["Mustache"].long().tolist() == y.tolist()
    available = zoo.test_image_count(spec)
    assert len(zoo.test_attributes(spec, 10_000)["Male"]) == available
    assert zoo.test_attributes(zoo.read_spec(zoo.list_models()["mnist08-hkr"])) == {}


def test_report_page_shows_slices_and_downloads(monkeypatch):
    monkeypatch.setenv("LIPNET_REPORT_REST", "0")
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    if at.selectbox(key="model_key").value != "mnist08-hkr":
        at.selectbox(key="model_key").set_value("mnist08-hkr").run()
    at.switch_page("app_pages/report.py").run()
    at.slider(key="report_n").set_value(10)
    at.button(key="report_run").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any(p.value == 100 for p in at.get("progress"))
    (frame,) = [d.value for d in at.dataframe if "slice" in d.value.columns]
    assert list(frame["slice"]) == [ALL_IMAGES, "class 0", "class 8"]
    assert frame["n"].tolist()[0] == 10 and sum(frame["n"].tolist()[1:]) == 10
    assert "certified ε=1" in frame.columns and "PGD ε=1" in frame.columns
    labels = [b.label for b in at.get("download_button")]
    assert "Download per-image results (CSV)" in labels
    assert "Download per-image arrays (zip of .npy)" in labels
    assert "Download the slices (CSV)" in labels
    at.selectbox(key="report_slice_eps").set_value("0.5").run()
    assert not at.exception
    titles = [
        json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "")
        for c in at.get("plotly_chart")
    ]
    assert "Accuracy per slice at ε = 0.5 (L2)" in titles

    # Faces: the slider stops at what the data folder holds.
    at.selectbox(key="model_key").set_value("moustache-hkr").run()
    assert not at.exception
    available = zoo.test_image_count(zoo.read_spec(zoo.list_models()["moustache-hkr"]))
    assert at.slider(key="report_n").max == min(available, 1000)


def test_cli_writes_slices_and_arrays(tmp_path):
    out = tmp_path / "report"
    # the first 8 of the 0-vs-8 test set is image 6
    run = run_report("--n", "7", "--out", str(out), "--arrays", timeout=300)
    assert run.returncode == 0, run.stderr
    table = list(csv.DictReader((out / "slices.csv").open()))
    assert [t["slice"] for t in table] == [ALL_IMAGES, "class 0", "class 8"]
    assert [int(t["n"]) for t in table] == [7, 6, 1]
    assert "certified_at_1" in table[0] and "empirical_at_3" in table[0]
    results = list(csv.DictReader((out / "results.csv").open()))
    for r in results:
        if np.isfinite(float(r["found_l2"])):
            i = int(r["index"])
            delta = np.load(out / "rows" / f"{i:06d}_delta.npy")
            cf = np.load(out / "rows" / f"{i:06d}_counterfactual.npy")
            assert delta.shape == cf.shape == (1, 28, 28)
            assert np.linalg.norm(delta) == pytest.approx(float(r["found_l2"]), 1e-3)
