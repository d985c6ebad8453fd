"""Runs under torchrun (2 CPU processes, gloo on 127.0.0.1) match one process."""

from __future__ import annotations

import csv
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

from test_train import TINY as TRAIN_TINY

import lipnet
from lipnet.distributed import gather_rows, is_main, shard, world
from lipnet.train import train

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
TINY = {  # test_train's tiny config, two epochs, fewer images attacked
    **TRAIN_TINY,
    "optimizer": {**TRAIN_TINY["optimizer"], "epochs": 2},
    "attack_n": 50,
}
TOLERANCE = 0.02
"""Allowed difference of the 2-process metrics from one process's: both see the
same batches and augmentations; only the float sums of the split batches differ."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], procs: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if procs == 1:
        cmd = [sys.executable, "-m", "lipnet", *args]
    else:
        cmd = [
            str(TORCHRUN),
            "--nproc_per_node",
            str(procs),
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(_free_port()),
            "-m",
            "lipnet",
            *args,
        ]
    run = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_helpers_in_one_process():
    assert world() == 1 and is_main()
    parts = [shard(10, r, 3) for r in range(3)]
    assert [list(p) for p in parts] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert [len(shard(2, r, 4)) for r in range(4)] == [1, 1, 0, 0]
    assert gather_rows([1]) == [1]


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _same(a: str, b: str) -> bool:
    try:
        x, y = float(a), float(b)
    except ValueError:
        return a == b
    return x == y or math.isclose(x, y, rel_tol=0, abs_tol=1e-6)


def test_report_on_two_processes_gives_the_rows_of_one(tmp_path):
    args = ["report", "assets/models/mnist08-hkr", "--batch-size", "10", "--quiet"]
    # --images: torchrun's own parser rejects --n as ambiguous.
    _run([*args, "--n", "40", "--out", str(tmp_path / "one")], 1)
    _run([*args, "--images", "40", "--out", str(tmp_path / "two")], 2)
    for name in ("results.csv", "slices.csv"):
        one, two = _csv(tmp_path / "one" / name), _csv(tmp_path / "two" / name)
        assert len(one) == len(two) > 0, name
        for a, b in zip(one, two, strict=True):
            assert a.keys() == b.keys()
            assert all(_same(a[k], b[k]) for k in a), (name, a, b)
    assert [int(r["index"]) for r in _csv(tmp_path / "two" / "results.csv")] == list(
        range(40)
    )


def test_training_on_two_processes_matches_one(tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "two"
    run = _run(["train", str(config), "--out", str(out), "--quiet"], 2)
    printed = json.loads(run.stdout[run.stdout.index("{") :])  # rank 0 prints once
    assert printed["out"] == str(out)
    assert sorted(p.name for p in out.iterdir()) == [
        "CARD.md",
        "spec.json",
        "weights.safetensors",
    ]
    two = lipnet.load(out)
    card = two.spec["card"]
    assert card["training"]["processes"] == 2
    assert card["lipschitz"]["sound"] is True
    _, one = train(TINY, None, progress=False)
    m1, m2 = one["metrics"]["test"], card["metrics"]["test"]
    assert m1["n"] == m2["n"]
    assert abs(m1["clean_accuracy"] - m2["clean_accuracy"]) <= TOLERANCE
    for eps, value in m1["certified_accuracy"].items():
        assert abs(value - m2["certified_accuracy"][eps]) <= TOLERANCE, eps
    h1, h2 = one["training"]["history"], card["training"]["history"]
    assert [h["epoch"] for h in h1] == [h["epoch"] for h in h2]
    assert abs(h1[-1]["loss"] - h2[-1]["loss"]) <= TOLERANCE
