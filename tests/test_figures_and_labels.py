"""Figures, tables and labels as a first-time user reads them: the playground's
figures and defaults, the model card's tables, the SVG charts' labels and the
"moustache" spelling (once rough edges such a user hit)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest
from test_dashboard import check

import lipnet
from dashboard import svg_charts
from lipnet import ood, toy, zoo

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
SVG = "{http://www.w3.org/2000/svg}"
TIMEOUT = 120


def page(name: str, model: str | None = None) -> AppTest:
    """A fresh session switched to one page (after choosing `model`)."""
    at = check(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run())
    if model is not None and at.selectbox(key="model_key").value != model:
        check(at.selectbox(key="model_key").set_value(model).run())
    return check(at.switch_page(f"app_pages/{name}.py").run())


def figures(at: AppTest) -> dict[str, dict]:
    """The page's plotly figures by title."""
    out = {}
    for chart in at.get("plotly_chart"):
        fig = json.loads(chart.proto.spec)
        out[fig["layout"].get("title", {}).get("text", "")] = fig
    return out


def values(array) -> np.ndarray:
    """A plotly JSON array: a list, or numpy's bytes as {"dtype", "bdata"}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array, dtype=float)


# --------------------------------------------------------------------------
# 2D playground


def test_playground_figures_have_no_stray_legend_a_visible_disc_and_two_axes():
    at = page("playground")
    figs = figures(at)
    maps = [figs["hKR (1-Lipschitz)"], figs["unconstrained"]]
    for fig in maps:
        names = [t.get("name") for t in fig["data"]]
        # No "trace 1": every trace is named, and the legend is hidden anyway.
        assert all(names), names
        assert fig["layout"].get("showlegend") is False
        # A small marker, not one that covers a small disc.
        (point,) = [t for t in fig["data"] if t["name"] == "your point"]
        assert point["marker"]["size"] <= 8
    names = [t["name"] for t in maps[0]["data"]]
    assert names.index("certified disc") > names.index("your point"), names
    assert "certified disc" not in [t["name"] for t in maps[1]["data"]]

    dist = figs["Is |f| a distance?"]
    layout = dist["layout"]
    assert "yaxis" in layout and "yaxis2" in layout
    assert not layout["yaxis2"].get("matches"), "the panels share no y scale"
    by_axis = {}
    for t in dist["data"]:
        by_axis.setdefault(t.get("yaxis", "y"), []).append(t["name"])
    assert set(by_axis) == {"y", "y2"}
    assert "hKR" in by_axis["y"] and "unconstrained" in by_axis["y2"]
    for names in by_axis.values():  # y = x, where the certificate is exact
        assert any("|f| = distance" in n for n in names)

    # Issue 20: the unconstrained panel's y = x line lay flat at 0 (|f| up to
    # 200 on a linear axis): that panel has log axes, and its line spans the
    # points' own distances.
    assert layout["xaxis2"].get("type") == "log" == layout["yaxis2"].get("type")
    assert layout["yaxis"].get("type") in (None, "linear")
    (line,) = [
        t for t in dist["data"] if t.get("yaxis") == "y2" and "|f| =" in t["name"]
    ]
    (points,) = [
        t for t in dist["data"] if t.get("yaxis") == "y2" and t["mode"] == "markers"
    ]
    xs = values(points["x"])
    assert min(line["x"]) > 0 and min(line["x"]) <= xs.min()
    assert max(line["x"]) >= xs.max()
    # The snowflake ring's second, inner boundary is explained.
    assert any("inner edge" in c.value for c in at.caption)

    # Two moons at the defaults: trained to ≥ 95% in the page itself.
    check(at.selectbox(key="toy_dataset").set_value("two moons").run())
    m = {x.label: x.value for x in at.metric}
    assert float(m["hKR (1-Lipschitz): training accuracy"].rstrip("%")) >= 95


@pytest.mark.parametrize(
    ("name", "least"),
    [("two moons", 0.95), ("circles", 0.97), ("snowflake ring", 0.88)],
)
def test_toy_defaults_train_every_dataset(name, least):
    """The playground's defaults (lipnet.toy's), seeded as the page seeds them."""
    x, y = toy.make_dataset(name, toy.N_POINTS)
    result = toy.train_toy(x, y)
    assert result.accuracy >= least, f"{name}: {result.accuracy:.3f}"
    assert result.losses[-1] < result.losses[0]


# --------------------------------------------------------------------------
# Model card


def table_rows(at: AppTest) -> dict[str, str]:
    """Every two-column table's rows, first column → second."""
    rows = {}
    for t in at.table:
        df = t.value
        if len(df.columns) == 2:
            rows.update(dict(zip(df.iloc[:, 0], df.iloc[:, 1], strict=True)))
    return rows


def test_model_card_shows_tables_not_json():
    at = page("model_card")
    assert not at.get("json"), "Attacks, Training and Data are tables now"
    heads = [s.value for s in at.subheader]
    for head in ("Attacks", "Training", "Data", "Out-of-distribution hint"):
        assert head in heads
    rows = table_rows(at)
    # Human labels, nested entries as "section → key", lists joined.
    assert rows["Optimizer → Learning rate"] == "0.001"
    assert rows["Architecture → Dense widths"] == "256, 128, 64"
    assert (
        rows["Attack methods"] == "Transport counterfactual, DeepFool, Minimal L2 (FMN)"
    )
    assert rows["Dataset"] == "MNIST"
    assert rows["Counts → test"] == "1,954"
    assert re.fullmatch(r"\d+(\.\d)? s", rows["Training time"])
    # The out-of-distribution calibration, as lipnet.ood.summary gives it.
    assert rows["Test images flagged"].endswith("%")
    assert float(rows["Score threshold"]) > 0
    # What was there stays.
    m = {x.label: x.value for x in at.metric}
    assert float(m["Measured upper bound (now)"]) <= 1 + 1e-3
    assert len(at.get("download_button")) == 2


def test_model_card_of_the_moustache_model():
    at = page("model_card", "moustache-hkr")
    assert not at.get("json")
    rows = table_rows(at)
    assert rows["Counts → train → images"] == "17,500"  # 70% of 25,000 faces
    assert rows["CelebA attribute (column name)"] == "Mustache"  # CelebA's column
    assert any("no moustache, moustache" in c.value for c in at.caption)
    # st.table renders Markdown: "round(n*f_train), round(n*f_val)" stays as is.
    assert "round(n\\*f\\_train)" in rows["Split"]
    method = rows["Method"]  # the out-of-distribution method, in words
    assert "nearest class mean" in method and "mahalanobis:" not in method


# --------------------------------------------------------------------------
# SVG charts


def text_boxes(svg: str) -> list[tuple[str, float, float, float, float]]:
    """(text, x0, y0, x1, y1) of every <text>, from its position, font size,
    anchor and rotation; widths are svg_charts' upper estimate."""
    root = ET.fromstring(svg)
    boxes = []
    for t in root.iter(f"{SVG}text"):
        s, size = t.text or "", float(t.get("font-size"))
        x, y = float(t.get("x")), float(t.get("y"))
        w = svg_charts.text_width(s, size)
        start = {"start": 0.0, "middle": -w / 2, "end": -w}[t.get("text-anchor")]
        if "rotate(-90" in (t.get("transform") or ""):
            # Reads upwards from (x, y); the glyphs lie left of x.
            boxes.append((s, x - size, y - start - w, x, y - start))
        else:
            boxes.append((s, x + start, y - size, x + start + w, y))
    return boxes


def overlaps(svg: str) -> list[tuple[str, str]]:
    boxes = text_boxes(svg)
    return [
        (a[0], b[0])
        for a, b in combinations(boxes, 2)
        if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]
    ]


def inside(svg: str) -> bool:
    width, height = map(float, re.search(r'viewBox="0 0 (\S+) (\S+)"', svg).groups())
    return all(
        x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height
        for _, x0, y0, x1, y1 in text_boxes(svg)
    )


@pytest.mark.parametrize(
    "classes",
    [["no moustache", "moustache"], ["a", "b", "c"], [str(i) for i in range(10)]],
)
def test_score_chart_labels_do_not_overlap(classes):
    n = 1 if len(classes) == 2 else len(classes)  # a binary model: one logit
    gen = torch.Generator().manual_seed(n)
    before, after = torch.randn(n, generator=gen) * 3, torch.randn(n, generator=gen) * 3
    chart = svg_charts.scores_chart(before, after, classes)
    assert overlaps(chart) == []
    assert inside(chart)


def test_score_chart_of_the_ten_class_model_has_every_value_on_hover():
    """Ten value labels per side no longer crowd the bars (issue 20): the values
    are in the bars' tooltips, the class names under them."""
    before = torch.tensor([-2.9, -1.2, 0.4, 3.7, -0.8, 1.1, -3.3, 0.05, 2.2, -1.9])
    after = before.flip(0)
    chart = svg_charts.scores_chart(before, after, [str(i) for i in range(10)])
    root = ET.fromstring(chart)
    tips = [t.text for t in root.iter(f"{SVG}title")]
    assert all(any(f"{v:+.4f}" in t for t in tips) for v in before.tolist())
    texts = [b[0] for b in text_boxes(chart)]
    assert all(str(i) in texts for i in range(10))
    assert not any(t.startswith(("+", "-")) and "." in t for t in texts)
    assert overlaps(chart) == []


@pytest.mark.parametrize(
    ("radius", "distance"),
    [(3.217, 1.373), (2.0, 3.0), (0.05, 2.5), (1.0, 1.0), (None, 0.3)],
)
@pytest.mark.parametrize("flipped", [True, False])
def test_certificate_chart_labels(radius, distance, flipped):
    chart = svg_charts.certificate_chart(radius, distance, flipped=flipped)
    text = " ".join(b[0] for b in text_boxes(chart))
    if flipped:
        assert f"flipped at {distance:.3f}" in text
    else:
        assert f"no flip within {distance:.3f}" in text
        assert "flipped" not in chart
    assert overlaps(chart) == []
    assert inside(chart)


def test_an_overshooting_change_is_told_apart_from_the_smallest_flip():
    """Issue 20: "attack needed 4.794 to flip" at overshoot 1, where FMN flips
    the same face at 2.520."""
    chart = svg_charts.certificate_chart(
        2.472, 4.794, flipped=True, overshoot=1.0, smallest=2.52
    )
    text = [b[0] for b in text_boxes(chart)]
    assert "moved 4.794 (overshoot 1)" in text
    assert "smallest flip found: 2.520" in text
    assert "needed" not in chart
    assert overlaps(chart) == [] and inside(chart)


@pytest.mark.parametrize(
    "chart",
    [
        svg_charts.scores_chart(torch.tensor([2.0]), torch.tensor([-2.0]), ["0", "8"]),
        svg_charts.certificate_chart(2.0, 4.0, overshoot=1.0, smallest=2.1),
        svg_charts.path_chart(
            {"distance": torch.linspace(0, 2, 5), "margin": torch.linspace(1, -1, 5)},
            "this model",
        ),
    ],
)
def test_every_label_is_drawn_at_the_projector_size(chart):
    root = ET.fromstring(chart)
    sizes = {float(t.get("font-size")) for t in root.iter(f"{SVG}text")}
    assert min(sizes) >= svg_charts.SIZE


# --------------------------------------------------------------------------
# "moustache", as users read it


@pytest.mark.parametrize("name", ["moustache-hkr", "moustache-baseline"])
def test_shipped_moustache_models_say_moustache(name):
    folder = zoo.list_models()[name]
    spec = json.loads((folder / "spec.json").read_text())
    assert spec["classes"] == ["no moustache", "moustache"]
    assert spec["positive_class"] == "moustache"
    weights = (folder / "weights.safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() == spec["weights"]["sha256"]
    card = (folder / "CARD.md").read_text()
    assert "(no moustache, moustache)" in card and "mustache" not in card
    model = lipnet.load(folder)
    assert model.spec["classes"] == ["no moustache", "moustache"]
    assert ood.check(model, torch.rand(2, 3, 64, 64)) is not None


def test_a_retrained_celeba_model_says_moustache(monkeypatch, tmp_path):
    """Training names the classes from CelebA's "Mustache" column."""
    from lipnet import train

    def fake_celeba(root, attribute, image_size, seed, image_folders):
        assert attribute == "Mustache"  # the dataset's own column name
        split = {
            "images": torch.zeros(4, 3, image_size, image_size),
            "labels": torch.tensor([0, 1, 0, 1]),
            "ids": ["1", "2", "3", "4"],
        }
        return {"train": split, "val": split, "test": split}

    monkeypatch.setattr(train.D, "load_celeba", fake_celeba)
    config = json.loads((ROOT / "configs" / "moustache-hkr.json").read_text())
    data = train.load_task(config, tmp_path)
    assert data.classes == ["no moustache", "moustache"]
