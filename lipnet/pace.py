"""How a robustness report is paced: batch sizes, rests, the time left, its size.

One report batch of n images costs about a + b·n seconds of CPU: every attack
of the report (transport, FMN, PGD at each ε) pays a fixed cost per call, a,
that dwarfs the cost per image, b, on the conv models (about 3 s against
0.3 s for a face: a one-image batch is five times slower per image than a
batch of eight). `ReportPace` fits a and b from the batches done, grows the
batches until one costs about `BATCH_OVERHEAD` times a one-image batch (at
least `min_seconds`), so the fixed cost is shared without making Stop or the
other users of the work queue wait long, and estimates the time left from
the batches still planned and the wall-clock pace of the last few (rests,
waits in line and a busy machine included). `default_size` picks the number
of images whose report takes about `budget_s` at a cost measured by
`measure_cost`.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

import torch
from torch import nn

BATCH_OVERHEAD = 1.5
"""A batch may cost this many times a one-image batch (its fixed cost shared)."""
REST_CAP_S = 1.0
"""The longest rest after a batch, whatever it cost."""
WINDOW = 4
"""Batches whose wall-clock pace the time left is estimated from (never the
first: it pays for warming up)."""
MIN_BATCHES = 3
"""Batches done before the time left is shown ("estimating…" until then)."""
PASSES_PER_IMAGE = 345
"""Gradient passes a report makes per batch, overhead included: FMN's 100
steps, PGD's 20 at each of the six ε, the transport steps, times 1.5 for the
attacks' own work (measured on the shipped models: 250 to 470)."""


@dataclass
class ReportPace:
    """A report's batches so far: the next batch's size, its rest, the time left."""

    largest: int
    """The largest batch the user allows."""
    min_seconds: float = 0.5
    """Batches may always grow to this much CPU time."""
    rest: float = 1.0
    """Rest after a batch, as a share of its CPU time (0: flat out)."""
    batches: list[tuple[int, float, float]] = field(default_factory=list)
    """(images, CPU seconds, wall seconds with the rest) of each batch done."""

    def record(self, images: int, cpu_s: float, wall_s: float) -> None:
        """Note a finished batch: its size, CPU time and wall time (rest included)."""
        self.batches.append((images, max(cpu_s, 1e-6), max(wall_s, 1e-6)))

    def cost(self) -> tuple[float, float] | None:
        """(a, b): CPU seconds of a batch of n ≈ a + b·n, from the last two batches
        of different sizes; None before there are two."""
        last = self.batches[-1] if self.batches else None
        other = next(
            (b for b in reversed(self.batches) if last and b[0] != last[0]), None
        )
        if last is None or other is None:
            return None
        (n1, t1, _), (n2, t2, _) = other, last
        b = max((t2 - t1) / (n2 - n1), 1e-6)
        return max(t2 - b * n2, 0.0), b

    def next_size(self) -> int:
        """How many images the next batch takes."""
        if not self.batches:
            return 1
        fit = self.cost()
        if fit is None:  # one size so far: try twice as many
            return min(2 * self.batches[-1][0], self.largest)
        return batch_size(*fit, self.largest, self.min_seconds)

    def rest_s(self, cpu_s: float) -> float:
        """Seconds to rest after a batch that took `cpu_s` of CPU."""
        return min(cpu_s * self.rest, REST_CAP_S)

    def eta(self, remaining: int) -> float | None:
        """Seconds left for `remaining` images; None until MIN_BATCHES are done."""
        if remaining <= 0:
            return 0.0
        fit = self.cost()
        if len(self.batches) < MIN_BATCHES or fit is None:
            return None
        recent = self.batches[1:][-WINDOW:]  # the first carries one-time costs
        per_cpu = sum(w for _, _, w in recent) / sum(c for _, c, _ in recent)
        size = batch_size(*fit, self.largest, self.min_seconds)
        full, last = divmod(remaining, size)
        cpu = full * (fit[0] + fit[1] * size) + (fit[0] + fit[1] * last if last else 0)
        return cpu * per_cpu


def batch_size(a: float, b: float, largest: int, min_seconds: float = 0.5) -> int:
    """The batch size for a cost a + b·n: up to BATCH_OVERHEAD × a one-image batch
    (or `min_seconds`), between 1 and `largest`."""
    budget = max(min_seconds, BATCH_OVERHEAD * (a + b))
    return max(1, min(largest, int((budget - a) / b)))


def planned_seconds(
    a: float, b: float, n: int, largest: int, rest: float = 1.0
) -> float:
    """Wall-clock seconds a report of `n` images takes at a cost a + b·n per
    batch, paced by `ReportPace` (its rests included, no waits in line)."""
    pace, done, total = ReportPace(largest, rest=rest), 0, 0.0
    while done < n:
        size = min(pace.next_size(), n - done)
        cpu = a + b * size
        done += size
        wall = cpu + (pace.rest_s(cpu) if done < n else 0.0)
        pace.record(size, cpu, wall)
        total += wall
    return total


def default_size(
    a: float,
    b: float,
    most: int,
    largest: int,
    rest: float = 1.0,
    budget_s: float = 60.0,
    step: int = 10,
) -> int:
    """The most images (a multiple of `step`, at least `step`, at most `most`)
    whose report is planned to take at most `budget_s`."""
    best = min(step, most)
    for n in range(step, most + 1, step):
        if planned_seconds(a, b, n, largest, rest) > budget_s:
            break
        best = n
    return best


def measure_cost(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[float, float]:
    """(a, b) for `ReportPace`, estimated in a fraction of a second: the time of
    a gradient pass on 1 and on 8 inputs, times PASSES_PER_IMAGE. Wall-clock
    time, not CPU time: on a machine busy with other work the passes take
    longer, and so will the report."""

    def one_pass(n: int, repeats: int = 5) -> float:
        """The median of a few passes: one burst of other work does not count."""
        x = torch.zeros(n, *input_shape, requires_grad=True)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.autograd.grad(model(x).sum(), x)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    one_pass(1, 1)  # caches and allocations: not part of the cost
    single, eight = one_pass(1), one_pass(8)
    per_image = max((eight - single) / 7, 1e-7)
    fixed = max(single - per_image, 0.0)
    return fixed * PASSES_PER_IMAGE, per_image * PASSES_PER_IMAGE


def format_eta(seconds: float | None) -> str:
    """The time left for a person: "about 2 min 05 s left", "about 12 s left"."""
    if seconds is None or not math.isfinite(seconds):
        return "estimating the time left…"
    s = round(seconds)
    if s < 1:
        return "less than a second left"
    if s < 60:
        return f"about {s} s left"
    if s < 600:
        return f"about {s // 60} min {s % 60:02d} s left"
    m = round(seconds / 60)
    if m < 60:
        return f"about {m} min left"
    return f"about {m // 60} h {m % 60:02d} min left"
