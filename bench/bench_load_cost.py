"""What the worst specs the loader accepts cost to load: CPU seconds and memory.

Each spec sits at the edge of one budget limit (`lipnet.budget`): an AOL
dense layer at the Gram-matrix limits, an AOL convolution whose unfolded
kernel is just under MAX_BUILD_BYTES, the largest plain dense layer whose
eigenproblem fits MAX_BUILD_FLOPS, 250 Björck layers, wide orthogonal
convolutions. Every spec is built with random weights and loaded with
`lipnet.io.load_upload` in a fresh process (one thread), which reports its
CPU seconds and peak-RSS growth. Targets (issue 19): < 10 CPU seconds and
< 1 GB for every accepted spec. Run:

    .venv/bin/python bench/bench_load_cost.py
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _spec(shape: list[int], layers: list[dict[str, Any]], name: str) -> dict:
    return {
        "format": "lipnet.model",
        "format_version": 1,
        "name": name,
        "task": "binary",
        "input_shape": shape,
        "classes": ["a", "b"],
        "head": "binary",
        "lipschitz_constant": 1.0,
        "lipschitz_source": "derived",
        "certified": True,
        "normalization": None,
        "layers": layers,
        "weights": {"sha256": ""},
        "card": {},
    }


def _layer(kind: str, **args: Any) -> dict[str, Any]:
    return {"type": kind, "args": args}


def _head(n: int) -> list[dict[str, Any]]:
    return [
        _layer("GroupSort2"),
        _layer("FrobeniusLinear", in_features=n, out_features=1),
    ]


def edge_specs() -> dict[str, dict]:
    """One spec at the edge of each costly limit, by name."""
    flat = [_layer("LipFlatten")]
    return {
        "aol-dense-4096x500": _spec(
            [1, 64, 64],
            [
                *flat,
                _layer("AOLLinear", in_features=4096, out_features=500),
                *_head(500),
            ],
            "aol-dense",
        ),
        "aol-conv-32x32-k11": _spec(
            [1, 16, 16],
            [
                _layer("AOLConv2d", in_channels=1, out_channels=32, kernel_size=[3, 3]),
                _layer("GroupSort2"),
                _layer(
                    "AOLConv2d", in_channels=32, out_channels=32, kernel_size=[11, 11]
                ),
                *flat,
                _layer("SpectralLinear", in_features=8192, out_features=16),
                *_head(16),
            ],
            "aol-conv",
        ),
        "spectral-dense-676": _spec(
            [1, 26, 26],
            [
                *flat,
                _layer("SpectralLinear", in_features=676, out_features=676),
                *_head(676),
            ],
            "dense",
        ),
        "bjorck-chain-250": _spec(
            [1, 8, 8],
            [*flat]
            + [_layer("SpectralLinear", in_features=64, out_features=64)] * 250
            + [_layer("FrobeniusLinear", in_features=64, out_features=1)],
            "chain",
        ),
        "orthogonal-conv-wide": _spec(
            [3, 64, 64],
            [
                _layer("InvertibleDownSampling", kernel_size=4),
                _layer(
                    "OrthogonalConv2d",
                    in_channels=48,
                    out_channels=128,
                    kernel_size=[3, 3],
                    input_size=[16, 16],
                ),
                _layer("GroupSort2"),
                _layer(
                    "OrthogonalConv2d",
                    in_channels=128,
                    out_channels=128,
                    kernel_size=[3, 3],
                    input_size=[16, 16],
                ),
                *flat,
                _layer("SpectralLinear", in_features=32768, out_features=32),
                *_head(32),
            ],
            "ortho",
        ),
    }


def _load_one(name: str) -> dict[str, Any]:
    """In this process: build random weights, then time and measure the load."""
    import torch
    from safetensors.torch import save

    from lipnet.io import ModelFileError, build, load_upload

    torch.set_num_threads(1)
    spec = edge_specs()[name]
    try:
        model = build(spec)
    except ModelFileError as e:
        return {"accepted": False, "error": str(e)}
    blob = save({k: v.contiguous() for k, v in model.state_dict().items()})
    spec["weights"] = {"sha256": hashlib.sha256(blob).hexdigest()}
    data = json.dumps(spec).encode()
    del model
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    try:
        load_upload(data, blob)
        error = None
    except ModelFileError as e:
        error = str(e)
    return {
        "accepted": error is None,
        "error": error,
        "cpu_seconds": round(time.process_time() - started, 2),
        "rss_growth_mb": round(
            (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, 1
        ),
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(_load_one(sys.argv[2])))
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows = {}
    for name in edge_specs():
        done = subprocess.run(
            [sys.executable, __file__, "--one", name],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        rows[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(name, rows[name], flush=True)
    accepted = [r for r in rows.values() if r["accepted"]]
    print(
        "worst accepted: "
        f"{max(r['cpu_seconds'] for r in accepted):.2f} CPU s, "
        f"{max(r['rss_growth_mb'] for r in accepted):.0f} MB peak growth"
    )


if __name__ == "__main__":
    main()
