"""Robustness report: per-image rows, curves, CSV, the CLI on a small subset."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from helpers import run_report

from lipnet.report import figures, iter_report, least_robust, summarize, to_csv

ROOT = Path(__file__).resolve().parents[1]


def test_rows_and_curves(load_model, mnist08_test):
    model = load_model("mnist08-hkr")
    x, y = mnist08_test[0][:40], mnist08_test[1][:40]
    batches = list(iter_report(model, x, y, eps_grid=(0.5, 2.0), batch_size=25))
    assert [len(b) for b in batches] == [25, 15]
    rows = [r for b in batches for r in b]
    assert [r.index for r in rows[:3]] == [0, 1, 2]
    for r in rows:
        if r.correct:
            # Soundness again: nothing is found inside the certified radius,
            # and PGD never breaks an image certified at that ε.
            assert r.found_l2 >= r.radius - 1e-4
            assert not (r.radius > 2.0 and r.pgd_broken["2"])
    summary = summarize(rows, eps_grid=(0.5, 2.0))
    for point in summary["curve"]:
        assert point["certified"] <= point["empirical"] + 1e-9
    assert summary["n"] == 40 and 0.9 <= summary["clean_accuracy"] <= 1
    assert set(figures(summary)) == {
        "accuracy_curve",
        "radius_histogram",
        "ratio_histogram",
    }
    weakest = least_robust(rows, k=3)
    assert weakest[0].radius <= weakest[-1].radius
    table = list(csv.reader(io.StringIO(to_csv(rows))))
    assert table[0][-2:] == ["pgd_broken_at_0.5", "pgd_broken_at_2"]
    assert len(table) == 41


def test_report_on_an_unconstrained_model(load_model, mnist08_test):
    model = load_model("mnist08-baseline")
    rows = next(iter_report(model, mnist08_test[0][:10], mnist08_test[1][:10], (1.0,)))
    assert all(r.radius is None and r.ratio is None for r in rows)
    summary = summarize(rows, (1.0,))
    assert summary["certified"] is False and "certified" not in summary["curve"][0]
    assert set(figures(summary)) == {"accuracy_curve", "radius_histogram"}


def test_cli_report(tmp_path):
    out = tmp_path / "report"
    run = run_report("--n", "30", "--out", str(out))
    assert run.returncode == 0, run.stderr
    for name in (
        "results.csv",
        "summary.json",
        "summary.png",
        "accuracy_curve.html",
        "radius_histogram.html",
        "ratio_histogram.html",
    ):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 30
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_reports_one_attribute_of_a_multi_attribute_model(tmp_path):
    out = tmp_path / "report"
    run = run_report(
        "--attribute",
        "Eyeglasses",
        "--n",
        "6",
        "--eps",
        "0.5",
        "--out",
        str(out),
        model="celeba-hkr",
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 6
    slices = [row["slice"] for row in csv.DictReader((out / "slices.csv").open())]
    # The classes are the attribute's; the other attributes slice the faces.
    assert {"class no eyeglasses", "class eyeglasses", "Male"} <= set(slices)
    assert "Eyeglasses" not in slices

    missing = run_report("--n", "6", "--out", str(tmp_path / "x"), model="celeba-hkr")
    assert missing.returncode == 2
    assert "12 attributes (Mustache, Eyeglasses," in missing.stderr
    assert "pick one with --attribute" in missing.stderr
    unknown = run_report(
        "--attribute", "Beard", "--out", str(tmp_path / "y"), model="celeba-hkr"
    )
    assert unknown.returncode == 2 and "'Beard' is not one of them" in unknown.stderr
    single = run_report("--attribute", "Smiling", "--out", str(tmp_path / "z"))
    assert single.returncode == 2 and "leave --attribute out" in single.stderr
    assert not any((tmp_path / d).exists() for d in "xyz")
