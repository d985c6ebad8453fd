"""Interactive latency of the attacks on one image, on this machine's CPU threads.

Run: python bench/bench_latency.py
Prints, for one MNIST image (mnist08-hkr) and one 64×64 face (moustache-hkr),
the median time of the transport counterfactual and of PGD-100, in
milliseconds and as a ratio to one forward+backward pass measured in the
same run.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lipnet import zoo
from lipnet.attacks import counterfactual
from lipnet.io import load


def median_time(fn: Callable[[], object], repeats: int = 15) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def forward_backward(model: torch.nn.Module, x: torch.Tensor) -> None:
    xg = x.clone().requires_grad_(True)
    model(xg).sum().backward()


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, cases in [
        ("mnist08-hkr", [("transport", {}), ("pgd", {"eps": 1.5, "steps": 100})]),
        ("moustache-hkr", [("transport", {}), ("pgd", {"eps": 1.0, "steps": 100})]),
    ]:
        model = load(zoo.list_models()[name])
        x, _ = zoo.test_images(model.spec, 1)
        unit = median_time(lambda m=model, x=x: forward_backward(m, x))
        print(f"\n## {name}: one forward+backward {unit * 1e3:.2f} ms")
        for method, params in cases:
            t = median_time(
                lambda m=model, x=x, k=method, p=params: counterfactual(m, x, k, **p)
            )
            label = method if method != "pgd" else "pgd-100"
            print(
                f"  {label:10s} {t * 1e3:8.1f} ms   ×{t / unit:6.1f} forward+backward"
            )


if __name__ == "__main__":
    main()
