"""ε in the units papers use, on the dashboard's pages (issue 23).

Wherever an L2 ε or radius is shown, its 8-bit equivalent (ε·255, "36/255")
and the per-pixel RMS are beside it: the explorer's radius and size tiles,
the report's curve (ticks and hover) and its slice table, the model card's
curve; the report's ε box takes either form. AppTest on mnist08-hkr.
"""

from __future__ import annotations

import json
import re

import pytest
from streamlit.testing.v1 import AppTest
from test_dashboard import APP, check

from dashboard import eps_units
from lipnet.report import REPORT_EPS

TIMEOUT = 180


def by_title(at: AppTest, start: str) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    (spec,) = [
        s
        for s in specs
        if s["layout"].get("title", {}).get("text", "").startswith(start)
    ]
    return spec


def test_the_explorer_tiles_give_the_radius_in_8_bit_units():
    at = check(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run())
    r = float(next(m for m in at.metric if m.label == "Certified radius r").value)
    # r on 28 × 28 digits: r·255 levels in all, r·255/28 per pixel (RMS)
    rms = f"{r * 255 / 28:.3g}/255 RMS per pixel"
    tile = next(m for m in at.metric if m.label == "Certified radius r")
    assert rms in tile.help
    line = next(c.value for c in at.caption if c.value.startswith("In 8-bit units"))
    found = re.search(r"r = [\d.]+ \(([\d.]+)/255; ([\d.]+)/255 RMS per pixel\)", line)
    assert found, line
    assert abs(float(found.group(1)) - r * 255) < 0.5
    assert abs(float(found.group(2)) - r * 255 / 28) < 0.05


def test_the_report_curve_table_and_eps_box_speak_8_bit():
    at = check(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run())
    check(at.switch_page("app_pages/report.py").run())
    check(at.slider(key="report_n").set_value(10).run())
    check(at.button(key="report_run").click().run())
    curve = by_title(at, "Accuracy under L2")
    assert "0.5<br>128/255" in curve["layout"]["xaxis"]["ticktext"]
    assert curve["data"][0]["customdata"][1].startswith("0.5 (127.5/255; 4.55/255 RMS")
    check(at.selectbox(key="report_slice_eps").set_value("0.5").run())
    assert any("ε = 0.5 (127.5/255; 4.55/255 RMS" in c.value for c in at.caption)


def test_the_report_eps_box_reads_either_form():
    # What the box does with typed text (AppTest's selectbox cannot type; the
    # browser test types 36/255 into it): the nearest ε the report measured.
    assert eps_units.nearest(eps_units.read("36/255"), REPORT_EPS) == 0.25
    assert eps_units.nearest(eps_units.read("1.4"), REPORT_EPS) == 1.5
    for bad in ("x/255", "-1", "nan", "1e999"):
        with pytest.raises(ValueError):
            eps_units.read(bad)


def test_the_model_card_curve_has_8_bit_ticks():
    at = check(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run())
    check(at.switch_page("app_pages/model_card.py").run())
    curve = by_title(at, "Certified accuracy vs ε")
    assert "1<br>255/255" in curve["layout"]["xaxis"]["ticktext"]


def test_an_explorer_link_may_give_its_budget_in_8_bit_units():
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    link = {"model": "mnist08-hkr", "method": "pgd", "norm": "linf"}
    for key, value in {**link, "eps_inf": "8/255"}.items():
        at.query_params[key] = value
    check(at.run())
    assert not at.warning
    assert at.number_input(key="eps_linf").value == 8 / 255
    assert "= 8/255 in 8-bit units per pixel" in [c.value for c in at.caption]
