"""lipnet.units: ε in [0, 1] pixel units and in 8-bit units; the report CLI's --eps."""

from __future__ import annotations

import json
import math

import pytest
from helpers import run_report

from lipnet import units
from lipnet.__main__ import REPORT_EPS_TEXT, _eps_list
from lipnet.report import REPORT_EPS


def test_conversions():
    assert units.eps_255(36 / 255) == pytest.approx(36.0, abs=1e-12)
    assert units.eps_255(0.5) == 127.5
    # MNIST: d = 784, √d = 28; an L2 change of 0.5 spread evenly moves each
    # pixel by 0.5/28 of the range, 4.55 levels.
    assert units.dimension((1, 28, 28)) == 784
    assert units.eps_rms_255(0.5, 784) == pytest.approx(127.5 / 28, rel=1e-12)
    assert units.eps_rms_255(1.0, 3 * 64 * 64) == pytest.approx(255 / 64 / math.sqrt(3))
    assert units.eps_units(36 / 255, (1, 28, 28)) == pytest.approx(
        {"eps": 36 / 255, "eps_255": 36.0, "eps_rms_255": 36 / 28}
    )
    label = units.eps_label(0.5, (1, 28, 28))
    assert label == "0.5 (127.5/255; 4.55/255 RMS per pixel)"
    assert units.eps_label(36 / 255) == "0.1412 (36/255)"
    with pytest.raises(ValueError, match="at least 1"):
        units.eps_rms_255(0.5, 0)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.5", 0.5),
        (" 1.58 ", 1.58),
        ("36/255", 36 / 255),
        ("36 / 255", 36 / 255),
        ("127.5/255", 0.5),
        ("1e-1", 0.1),
        ("0", 0.0),
        (2, 2.0),
    ],
)
def test_parse_eps(text, value):
    assert units.parse_eps(text) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("text", ["", "abc", "36/256", "1/0", "-0.5", "nan", "inf"])
def test_parse_eps_refuses(text):
    with pytest.raises(ValueError, match="ε"):
        units.parse_eps(text)


def test_report_eps_option(tmp_path):
    assert _eps_list(REPORT_EPS_TEXT) == REPORT_EPS  # the CLI's default is the report's
    assert _eps_list("36/255, 0.5,0.5") == (36 / 255, 0.5)
    run = run_report("--n", "8", "--eps", "0.5,36/255", "--out", str(tmp_path / "r"))
    assert run.returncode == 0, run.stderr
    curve = json.loads(run.stdout)["curve"]
    assert [p["eps"] for p in curve] == pytest.approx([36 / 255, 0.5])
    assert curve[0]["eps_255"] == pytest.approx(36.0)
    assert curve[0]["eps_rms_255"] == pytest.approx(36 / 28)
    assert curve[1]["eps_255"] == pytest.approx(127.5)
    assert all(0 <= p["certified"] <= p["empirical"] <= 1 for p in curve)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert [p["eps"] for p in summary["curve"]] == pytest.approx([36 / 255, 0.5])
    bad = run_report("--n", "8", "--eps", "36/25x", "--out", str(tmp_path / "b"))
    assert bad.returncode == 2 and "36/255" in bad.stderr
