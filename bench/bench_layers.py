"""Training-step time and inference cost of lipnet vs deel-torchlip vs plain torch.

Run: python bench/bench_layers.py [--repeats N] [--only mnist|faces] [--threads T]
     [--cpu-time]
Prints, for the MNIST 0-vs-8 dense net 784-128-64-32-1 and a small conv net on
28×28, the median training-step time of each library and the inference time
of lipnet (eval mode, cached weights) against its plain nn.Sequential export,
as ratios measured in this one process (absolute times are noisy here).

`--only faces` times one Adam step (hKR, batch 64, 3×64×64) of the face GNP
networks ([12, 48, 96] and [32, 96, 128], low-pass 2, dense 256) against a
plain twin of the same widths: the same skeleton with every constrained
layer replaced by nn.Conv2d (zero padding) and nn.Linear. Ratios are the
median of the per-round ratios (rounds interleave all models).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from deel import torchlip
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import lipnet


def dense_lipnet(linear=lipnet.SpectralLinear) -> nn.Module:
    return lipnet.LipSequential(
        lipnet.Flatten(),
        linear(784, 128),
        lipnet.FullSort(),
        linear(128, 64),
        lipnet.FullSort(),
        linear(64, 32),
        lipnet.FullSort(),
        lipnet.FrobeniusLinear(32, 1),
        input_shape=(1, 28, 28),
    )


def dense_deel() -> nn.Module:
    return torchlip.Sequential(
        nn.Flatten(),
        torchlip.SpectralLinear(784, 128),
        torchlip.FullSort(),
        torchlip.SpectralLinear(128, 64),
        torchlip.FullSort(),
        torchlip.SpectralLinear(64, 32),
        torchlip.FullSort(),
        torchlip.FrobeniusLinear(32, 1),
    )


def conv_lipnet(conv=None) -> nn.Module:
    def c(cin, cout, size):
        if conv is lipnet.AOLConv2d:
            return lipnet.AOLConv2d(cin, cout, 3)
        return lipnet.SpectralConv2d(cin, cout, 3, input_size=size)

    return lipnet.LipSequential(
        c(1, 16, 28),
        lipnet.GroupSort2(),
        lipnet.ScaledL2NormPool2d(2),
        c(16, 32, 14),
        lipnet.GroupSort2(),
        lipnet.ScaledL2NormPool2d(2),
        lipnet.Flatten(),
        lipnet.SpectralLinear(32 * 49, 64),
        lipnet.GroupSort2(),
        lipnet.FrobeniusLinear(64, 1),
        input_shape=(1, 28, 28),
    )


def conv_deel() -> nn.Module:
    return torchlip.Sequential(
        torchlip.SpectralConv2d(1, 16, 3, padding=1),
        torchlip.GroupSort2(),
        torchlip.ScaledL2NormPool2d(2),
        torchlip.SpectralConv2d(16, 32, 3, padding=1),
        torchlip.GroupSort2(),
        torchlip.ScaledL2NormPool2d(2),
        nn.Flatten(),
        torchlip.SpectralLinear(32 * 49, 64),
        torchlip.GroupSort2(),
        torchlip.FrobeniusLinear(64, 1),
    )


def step_fn(model: nn.Module, batch: int) -> Callable[[], None]:
    x = torch.rand(batch, 1, 28, 28)
    y = (torch.rand(batch) > 0.5).float()
    loss_fn = lipnet.HKRLoss(0.99, 1.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step() -> None:
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def interleaved(fns: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median time of each function, run in alternation so drift hits all alike."""
    for fn in fns.values():
        for _ in range(3):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            samples[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in samples.items()}


def report_inference(name: str, model: nn.Module, repeats: int) -> None:
    """Eval-mode lipnet model against its plain export, batch 1024 and batch 1."""
    plain = lipnet.vanilla_export(model)
    print(f"## {name}: inference (eval mode)")
    for batch, reps in ((1024, repeats), (1, repeats * 10)):
        x = torch.rand(batch, 1, 28, 28)
        fns = {"lipnet": lambda x=x: model(x), "plain": lambda x=x: plain(x)}
        with torch.no_grad():
            t = interleaved(fns, reps)
        ratio = t["lipnet"] / t["plain"]
        print(
            f"  batch {batch}: lipnet {t['lipnet'] * 1e6:.0f} us, "
            f"plain {t['plain'] * 1e6:.0f} us, ratio {ratio:.3f}"
        )


FACE_ARCH = {
    "kind": "gnp",
    "low_pass": 2,
    "convs_per_stage": 2,
    "widths": [256],
    "activation": "groupsort2",
    "head": "frobenius",
}
FACE_TRAIN_FACES = 36_022
"""The identity-disjoint training split of the 51,460 shared faces (70%)."""


def plain_twin(model: nn.Module, padding_mode: str = "zeros") -> nn.Sequential:
    """The same skeleton with plain layers of the same widths in place of the
    orthogonal convolutions and dense layers (the head stays)."""
    convs = (lipnet.OrthogonalConv2d, lipnet.BlockOrthogonalConv2d)
    layers: list[nn.Module] = []
    for m in model:
        if isinstance(m, convs):
            size = m.kernel_size
            pad = (size[0] // 2, size[1] // 2)
            conv = nn.Conv2d(m.in_channels, m.out_channels, size, padding=pad)
            conv.padding_mode = padding_mode
            layers.append(conv)
        elif isinstance(m, lipnet.SpectralLinear | lipnet.OrthogonalLinear):
            layers.append(nn.Linear(m.in_features, m.out_features))
        else:
            layers.append(m)
    return nn.Sequential(*layers)


def face_step(model: nn.Module, batch: int) -> Callable[[], None]:
    """One Adam step of hKR (α 0.9, margin 1) on a fixed 3×64×64 batch."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, 64, 64, generator=gen)
    y = (torch.rand(batch, generator=gen) > 0.5).float()
    loss_fn = lipnet.HKRLoss(0.9, 1.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step() -> None:
        loss = loss_fn(model(x).squeeze(-1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def report_faces(repeats: int, batch: int, cpu: bool = False) -> None:
    """Step time of the face GNP networks against their plain twin, per width
    (wall clock, or this process's CPU time with `cpu`: steadier on shared cores)."""
    from lipnet.models import build_model

    for channels in ([12, 48, 96], [32, 96, 128]):
        torch.manual_seed(0)
        arch = {**FACE_ARCH, "channels": channels}
        block = build_model(arch, (3, 64, 64), ["no", "yes"])
        cayley = {**arch, "conv": "cayley", "linear": "spectral"}
        models = {
            "plain (zeros)": plain_twin(block),
            "plain (circular)": plain_twin(block, "circular"),
            "gnp block+orth": block,
            "gnp cayley+bjorck": build_model(cayley, (3, 64, 64), ["no", "yes"]),
        }
        fns = {k: face_step(m, batch) for k, m in models.items()}
        for fn in fns.values():
            fn()
            fn()
        clock = time.process_time if cpu else time.perf_counter
        samples: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(repeats):
            for k, fn in fns.items():
                t = clock()
                fn()
                samples[k].append(clock() - t)
        base = samples["plain (zeros)"]
        steps = math.ceil(FACE_TRAIN_FACES / batch)
        what = "CPU time" if cpu else "wall clock"
        print(f"\n## face GNP {channels}: one training step, batch {batch}, {what}")
        for k, v in samples.items():
            ratio = statistics.median(a / b for a, b in zip(v, base, strict=True))
            med = statistics.median(v)
            print(
                f"  {k:18s} {med * 1e3:8.1f} ms  ratio to plain {ratio:5.2f}  "
                f"epoch of {steps} steps ≈ {med * steps / 60:5.1f} min"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--only", choices=["mnist", "faces"], default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cpu-time", action="store_true", help="faces: CPU time")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, batch {args.batch}")
    if args.only != "mnist":
        report_faces(args.repeats, 64, args.cpu_time)
    if args.only == "faces":
        return
    cases = [
        ("dense 784-128-64-32-1", dense_lipnet, dense_deel, lipnet.AOLLinear),
        ("conv 16-32 + dense 64-1", conv_lipnet, conv_deel, lipnet.AOLConv2d),
    ]
    for name, ours, theirs, aol in cases:
        train = interleaved(
            {
                "lipnet": step_fn(ours(), args.batch),
                "lipnet-aol": step_fn(ours(aol), args.batch),
                "deel-torchlip": step_fn(theirs(), args.batch),
            },
            args.repeats,
        )
        print(f"\n## {name}: training step (median)")
        for k, v in train.items():
            ratio = v / train["deel-torchlip"]
            print(f"  {k:14s} {v * 1e3:8.2f} ms  ratio to deel-torchlip {ratio:.3f}")
        report_inference(name, ours().eval(), args.repeats)


if __name__ == "__main__":
    main()
