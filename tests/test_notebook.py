"""The example notebook runs from start to end (nbclient, on a temporary copy)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from lipnet import data as D

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "explore.ipynb"


def test_explore_notebook_runs(tmp_path, monkeypatch):
    nb = nbformat.read(EXAMPLE, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    copy = tmp_path / "explore.ipynb"
    nbformat.write(nb, copy)  # run the copy: the shipped notebook stays clean
    # The kernel starts in the temporary folder: the library and the data
    # folder are given as absolute paths.
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), path) if p))
    monkeypatch.setenv("LIPNET_DATA", str(D.data_dir().resolve()))
    nb = nbformat.read(copy, as_version=4)
    NotebookClient(
        nb,
        timeout=150,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "['0', '8'] binary" in text
    assert "MNIST test images (200, 1, 28, 28)" in text
    assert text.count("certified r =") == 8
    assert "ε = 0.1412 (36/255; 1.29/255 RMS per pixel): certified accuracy" in text
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 5  # overview, certificate, views, path, curve
