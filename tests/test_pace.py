"""The report's pacing (`lipnet.pace`): batch sizes, the time left, the default size.

Issue 20: the page sized every face batch to one image (five times slower
per image than a batch of eight), estimated the time left from the average
pace since the start (4× off and more), and defaulted to 200 digits or 40
faces whatever the model cost (the 10-class report of 200 images ran for
over three minutes). No absolute time is asserted: estimates are compared
with what a simulated clock or the same machine measured.
"""

from __future__ import annotations

import time

import pytest
import torch

from lipnet.pace import (
    BATCH_OVERHEAD,
    MIN_BATCHES,
    ReportPace,
    batch_size,
    default_size,
    format_eta,
    measure_cost,
    planned_seconds,
)
from lipnet.report import iter_report

FACE = (3.0, 0.3)  # a + b·n: a face model's report batch, roughly
CLOSE = {"rel": 0.1, "abs": 2.5}  # the last batch has no rest: up to REST_CAP_S less


@pytest.fixture
def one_thread():
    """As the dashboard runs (LIPNET_TORCH_THREADS=1): timings of one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(pace: ReportPace, a: float, b: float, n: int, slow_from: int = 10**9):
    """Feed `pace` a simulated report of n images; the wall time doubles (a busy
    machine) from image `slow_from` on. Yields (done, eta, actual time left)."""
    done, history = 0, []
    while done < n:
        size = min(pace.next_size(), n - done)
        cpu = a + b * size
        done += size
        wall = (cpu + (pace.rest_s(cpu) if done < n else 0.0)) * (
            2 if done > slow_from else 1
        )
        pace.record(size, cpu, wall)
        history.append((done, pace.eta(n - done), wall))
    walls = [w for _, _, w in history]
    for i, (d, eta, _) in enumerate(history):
        yield d, eta, sum(walls[i + 1 :])


def test_batches_grow_until_the_fixed_cost_is_shared():
    pace = ReportPace(largest=25, rest=0)
    sizes = []
    for _ in range(5):
        size = pace.next_size()
        sizes.append(size)
        pace.record(size, FACE[0] + FACE[1] * size, 1.0)
    assert sizes[:2] == [1, 2]
    steady = batch_size(*FACE, 25)
    assert sizes[2:] == [steady] * 3
    # A batch costs at most BATCH_OVERHEAD × a one-image batch, and shares
    # the fixed cost over several images.
    assert FACE[0] + FACE[1] * steady <= BATCH_OVERHEAD * sum(FACE) + 1e-9
    assert steady >= 5
    # Cheap models fill the user's largest batch.
    assert batch_size(0.15, 0.01, 25) == 25


def test_the_time_left_is_estimated_once_a_few_batches_are_done():
    estimates = list(run(ReportPace(largest=25), *FACE, n=40))
    shown = [(d, eta, left) for d, eta, left in estimates if eta is not None]
    assert [eta for _, eta, _ in estimates[: MIN_BATCHES - 1]] == [None] * (
        MIN_BATCHES - 1
    )
    for _, eta, left in shown:
        assert eta == pytest.approx(left, **CLOSE)
    assert format_eta(None) == "estimating the time left…"


def test_the_time_left_follows_a_change_of_pace():
    """A machine that gets busy halfway: the moving window catches up."""
    estimates = list(run(ReportPace(largest=25), *FACE, n=120, slow_from=40))
    late = [(eta, left) for d, eta, left in estimates if d > 80 and left > 0]
    assert late
    for eta, left in late:
        assert eta == pytest.approx(left, **CLOSE)


def test_the_default_size_fits_the_budget():
    for a, b in (FACE, (0.17, 0.012), (10.0, 0.5), (0.3, 1.0)):
        n = default_size(a, b, most=1000, largest=25, budget_s=60)
        assert n % 10 == 0 and n >= 10
        assert n == 10 or planned_seconds(a, b, n, 25) <= 60
        if n < 1000:
            assert planned_seconds(a, b, n + 10, 25) > 60
    assert default_size(*FACE, most=7, largest=25) == 7
    assert planned_seconds(*FACE, 40, 25) > planned_seconds(*FACE, 40, 25, rest=0)


def test_time_left_on_a_real_report_is_close(load_model, mnist_test, one_thread):
    """The 10-class model (a fixed cost of seconds per batch): the time left
    shown after MIN_BATCHES batches against the time the rest really took."""
    model = load_model("mnist10-hkr")
    x, y = mnist_test[0][:16], mnist_test[1][:16]
    # At most 4 a batch: several batches are still to come when it is shown.
    pace, done, shown, began = ReportPace(largest=4, rest=0), 0, None, None
    while done < len(x):
        size = min(pace.next_size(), len(x) - done)
        t0, cpu = time.monotonic(), time.thread_time()
        next(iter_report(model, x[done : done + size], y[done : done + size]))
        cpu = time.thread_time() - cpu
        done += size
        pace.record(size, cpu, time.monotonic() - t0)
        if shown is None and done < len(x) and pace.eta(len(x) - done) is not None:
            shown, began = pace.eta(len(x) - done), time.monotonic()
    assert shown is not None and began is not None
    actual = time.monotonic() - began
    assert 1 / 3 < shown / actual < 3, (shown, actual)  # the old estimate: 4× off


def test_measured_cost_orders_the_models(load_model, one_thread):
    """The quick estimate tells a dense digit model from a conv face model."""
    costs = {}
    for name in ("mnist08-hkr", "moustache-hkr"):
        model = load_model(name)
        costs[name] = measure_cost(model, tuple(model.spec["input_shape"]))
        assert all(c >= 0 for c in costs[name]) and costs[name][1] > 0
    assert sum(costs["moustache-hkr"]) > 5 * sum(costs["mnist08-hkr"])
