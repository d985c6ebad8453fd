"""The compare page (issue 23) through Streamlit's AppTest, and what it is built on.

Two models of one task on the same few test images: the shipped digit pair
(mnist08-hkr vs its unconstrained twin) and the face pair (moustache-hkr vs
moustache-baseline). The table, the chart, the downloads, the side-by-side
changes, ε typed as 0.5 or 36/255, bad ε and hostile links.
"""

from __future__ import annotations

import csv
import io

import pytest
from streamlit.testing.v1 import AppTest
from test_dashboard import APP, check

from dashboard import eps_units, links
from lipnet import compare, zoo
from lipnet.report import Row

TIMEOUT = 180


def compare_page(query: dict[str, str] | None = None) -> AppTest:
    """A fresh session (opened from `query`, a link) on the compare page."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.switch_page("app_pages/compare.py")  # the link's page, like /compare
    return check(at.run())


def run_comparison(at: AppTest, models: list[str], n: int, eps: str) -> AppTest:
    check(at.multiselect(key="compare_models").set_value(models).run())
    check(at.slider(key="compare_n").set_value(n).run())
    check(at.text_input(key="compare_eps").input(eps).run())
    return check(at.button(key="compare_run").click().run())


def table(at: AppTest) -> dict[str, dict]:
    (frame,) = at.dataframe
    return {row["model"]: row for row in frame.value.to_dict("records")}


def downloads(at: AppTest) -> list[str]:
    return [b.proto.label for b in at.get("download_button")]


@pytest.mark.parametrize(
    ("certified", "baseline", "n"),
    [
        ("mnist08-hkr", "mnist08-baseline", 5),
        ("moustache-hkr", "moustache-baseline", 2),
    ],
)
def test_two_models_of_one_task_side_by_side(certified, baseline, n):
    at = compare_page({"model": certified})
    assert at.multiselect(key="compare_models").value == [certified, baseline]
    at = run_comparison(at, [certified, baseline], n, "36/255")
    assert [e.value for e in at.error] == []
    rows = table(at)
    assert set(rows) == {certified, baseline} and rows[certified]["n"] == n
    # ε = 36/255 ≈ 0.141: the certified model has a certificate there, the
    # baseline has none; the card's measurements are beside them.
    assert 0 <= rows[certified]["certified accuracy at ε"] <= 1
    assert (
        rows[baseline]["certified accuracy at ε"]
        != rows[baseline]["certified accuracy at ε"]
    )  # NaN: no certificate
    assert rows[certified]["Lipschitz bound (measured)"] == pytest.approx(1, abs=1e-3)
    assert rows[baseline]["Lipschitz bound (measured)"] > 1
    assert rows[certified]["tightness (found / r, median)"] >= 1
    assert 0 < rows[baseline]["counterfactual validity"] < 1
    heads = [s.value for s in at.subheader]
    assert any("36/255" in h and "RMS per pixel" in h for h in heads)
    # the chart, the input, and per model its counterfactual and the change
    assert len(at.get("image")) == 1 + 1 + 2 * 2
    assert downloads(at) == [
        "Download the chart (PNG)",
        "Download the chart (SVG)",
        "Download the table (CSV)",
    ]
    captions = " ".join(c.value for c in at.caption)
    assert "no certificate" in captions and "r = " in captions
    assert at.get("progress")[0].proto.value == 100


def test_the_same_run_reads_the_link_back():
    at = compare_page({"model": "mnist08-hkr"})
    at = run_comparison(at, ["mnist08-hkr", "mnist08-baseline"], 5, "0.5")
    link = {k: v[0] if isinstance(v, list) else v for k, v in at.query_params.items()}
    assert link == {
        "model": "mnist08-hkr",
        "cmp": "mnist08-hkr,mnist08-baseline",
        "cmp_n": "5",
        "cmp_eps": "0.5",
    }
    again = compare_page(link)
    assert again.multiselect(key="compare_models").value == link["cmp"].split(",")
    assert again.slider(key="compare_n").value == 5
    assert again.text_input(key="compare_eps").value == "0.5"


def test_an_uploaded_model_is_compared_but_never_linked():
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    check(at.run())
    folder = zoo.list_models()["mnist08-hkr"]
    files = [
        ("spec.json", (folder / "spec.json").read_bytes(), "application/json"),
        (
            "weights.safetensors",
            (folder / "weights.safetensors").read_bytes(),
            "application/octet-stream",
        ),
    ]
    check(at.file_uploader(key="model_upload").set_value(files).run())
    upload = at.sidebar.selectbox(key="model_key").value
    assert upload.startswith("upload:")
    check(at.switch_page("app_pages/compare.py").run())
    assert "uploaded: mnist08-hkr" in at.multiselect(key="compare_models").options
    at = run_comparison(at, [upload, "mnist08-hkr"], 3, "0.5")
    rows = table(at)
    # The same weights: the same accuracies; an upload's card is not trusted.
    same = ("clean accuracy", "certified accuracy at ε", "accuracy under PGD at ε")
    ours, shipped = rows["uploaded: mnist08-hkr"], rows["mnist08-hkr"]
    assert [ours[k] for k in same] == [shipped[k] for k in same]
    assert dict(at.query_params) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [("abc", "36/255"), ("-1", "≥ 0"), ("100", "between"), ("1/0", "36/255")],
)
def test_a_bad_eps_gets_a_message(text, message):
    at = compare_page({"model": "mnist08-hkr"})
    check(at.text_input(key="compare_eps").input(text).run())
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and message in errors[0]
    assert not at.dataframe


def test_a_hostile_link_is_ignored_and_said_so():
    query = {
        "model": "mnist08-hkr",
        "cmp": "mnist08-hkr,moustache-hkr",  # two tasks
        "cmp_n": "1",  # below the slider
        "cmp_eps": "1e999",
        "cmp_i": "-3",
    }
    at = compare_page(query)
    (warning,) = [w.value for w in at.warning]
    assert warning.endswith("ignored: cmp, cmp_n, cmp_eps, cmp_i.")
    assert at.multiselect(key="compare_models").value == [
        "mnist08-hkr",
        "mnist08-baseline",
    ]


def test_link_values_parse_either_form_of_eps():
    assert links.FIELDS["eps"][1]("36/255") == pytest.approx(36 / 255)
    assert links.FIELDS["eps"][1]("0.5") == 0.5
    assert links.FIELDS["cmp_eps"][1]("36/255") == "36/255"
    for bad in ("0/255", "1e999", "nan", "../x", "9" * 40):
        with pytest.raises(ValueError):
            links.FIELDS["cmp_eps"][1](bad)
    with pytest.raises(ValueError):
        links.FIELDS["cmp"][1]("mnist08-hkr,mnist08-hkr")
    with pytest.raises((ValueError, KeyError)):
        links.FIELDS["cmp"][1]("mnist08-hkr,../../etc")


def test_eps_units_read_and_write_the_paper_form():
    assert eps_units.read("36/255") == pytest.approx(0.141176, abs=1e-6)
    assert eps_units.in_255(36 / 255) == "36/255"
    assert eps_units.rms_255(0.5, (1, 16, 16)) == "7.97/255 RMS per pixel"
    cols = eps_units.columns([0.5], (1, 28, 28))
    assert cols["ε × 255"] == [127.5] and cols["RMS per pixel (/255)"] == [4.554]


def _row(i: int, correct: bool, radius: float | None, broken: bool) -> Row:
    grid = compare.grid(0.3)
    return Row(i, 0, 0, correct, radius, 1.0, None, {f"{e:g}": broken for e in grid})


def test_the_table_counts_what_each_model_did():
    rows = {
        "a": [_row(0, True, 0.4, False), _row(1, True, 0.2, True)],
        "b": [_row(0, True, None, False), _row(1, False, None, True)],
    }
    specs = {
        name: zoo.read_spec(zoo.list_models()[m])
        for name, m in (("a", "mnist08-hkr"), ("b", "mnist08-baseline"))
    }
    out = {r["model"]: r for r in compare.table(rows, specs, 0.3)}
    assert out["a"]["clean accuracy"] == 1 and out["b"]["clean accuracy"] == 0.5
    assert out["a"]["certified accuracy at ε"] == 0.5  # 0.4 > 0.3, 0.2 is not
    assert out["a"]["accuracy under PGD at ε"] == 0.5
    assert out["b"]["certified accuracy at ε"] is None
    assert out["b"]["tightness (found / r, median)"] is None
    text = compare.to_csv(list(out.values()), 36 / 255, (1, 28, 28))
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert parsed[0]["eps_255"] == "36" and parsed[1]["certified accuracy at ε"] == ""
    certified, empirical = compare.curves(rows, compare.grid(0.3))
    assert set(certified) == {"a"} and set(empirical) == {"a", "b"}
    labels = [t.get_text() for t in compare.figure(rows).axes[0].get_legend().texts]
    assert "b, under PGD (no certificate)" in labels and "a, certified" in labels
