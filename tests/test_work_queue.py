"""The shared work queue: heavy jobs wait their turn, in order, and say where.

Threads stand in for Streamlit's sessions (each session's script runs in a
thread of its own); a BaseException raised from `on_wait` stands in for
Streamlit's StopException/RerunException when a user clicks Stop or reruns.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import pytest

from dashboard.work_queue import HEAVY, WorkQueue

ROOT = Path(__file__).resolve().parents[1]
JOB_S = 0.05


class Stop(BaseException):
    """Like Streamlit's StopException: not an Exception."""


class Jobs:
    """Ten users' jobs: who ran when, how many at once, and the places they saw."""

    def __init__(self, queue: WorkQueue) -> None:
        self.queue = queue
        self.lock = threading.Lock()
        self.running = self.max_running = 0
        self.starts: list[int] = []
        self.done: list[int] = []
        self.places: dict[int, list[int]] = {}
        self.errors: list[BaseException] = []
        self.gate = threading.Event()  # opens once every job holds a ticket

    def job(self, i: int, stop_at_place: int | None = None) -> None:
        places = self.places.setdefault(i, [])

        def on_wait(place: int) -> None:
            places.append(place)
            if place == stop_at_place:
                raise Stop

        try:
            with self.queue.slot(f"user{i}", on_wait=on_wait, poll_s=0.01):
                with self.lock:
                    self.running += 1
                    self.max_running = max(self.max_running, self.running)
                    self.starts.append(i)
                self.gate.wait(10)
                time.sleep(JOB_S)
                with self.lock:
                    self.running -= 1
                    self.done.append(i)
        except Stop:
            pass
        except BaseException as e:  # reported by the test, not lost in a thread
            self.errors.append(e)

    def submit(self, n: int = 10, stop: tuple[int, int] | None = None) -> None:
        """Start n jobs one after the other (ticket i goes to job i); with
        `stop=(i, place)`, job i is stopped when it reaches that place."""
        threads = []
        for i in range(n):
            at = stop[1] if stop is not None and stop[0] == i else None
            t = threading.Thread(target=self.job, args=(i, at))
            t.start()
            threads.append(t)
            wait_for(lambda i=i: self.queue.position(f"user{i}") is not None)
        self.gate.set()
        for t in threads:
            t.join(30)
            assert not t.is_alive()
        assert not self.errors, self.errors


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def distinct(places: list[int]) -> list[int]:
    """The places seen, without the repeats of each poll."""
    return [p for k, p in enumerate(places) if k == 0 or places[k - 1] != p]


def assert_clean(queue: WorkQueue) -> None:
    s = queue.stats()
    assert s["running"] == [] and s["waiting"] == [], s


@pytest.mark.parametrize("slots", [1, 2])
def test_ten_concurrent_heavy_jobs_are_queued_not_run_at_once(slots):
    q = WorkQueue(slots)
    jobs = Jobs(q)
    jobs.submit(10)
    assert jobs.max_running == slots == q.stats()["max_running"]
    assert sorted(jobs.done) == list(range(10))
    # First come, first served: a job starts at most `slots - 1` places from
    # its ticket (jobs admitted together may note their start in either order).
    for rank, i in enumerate(jobs.starts):
        assert abs(rank - i) < slots, jobs.starts
    if slots == 1:
        assert jobs.starts == list(range(10))
    # Each waiting job saw its place in line from the start, counting down
    # (to 1, next in line, with one slot; two free slots take places 1 and 2).
    assert all(jobs.places[i] == [] for i in range(slots))
    for i in range(slots, 10):
        seen = distinct(jobs.places[i])
        assert seen[0] == i - slots + 1 and seen[-1] <= slots, (i, seen)
        assert all(a > b for a, b in itertools.pairwise(seen)), (i, seen)
    assert q.stats()["admitted"] == 10
    assert_clean(q)


def test_a_stopped_waiting_job_leaves_the_line_and_the_others_go_on():
    q = WorkQueue(1)
    jobs = Jobs(q)
    jobs.submit(10, stop=(4, 2))  # user 4 clicks Stop at place 2
    assert 4 not in jobs.starts and 4 not in jobs.done
    assert jobs.starts == [i for i in range(10) if i != 4]
    assert distinct(jobs.places[4]) == [4, 3, 2]
    # the job behind it moved up past its place, to the front
    seen = distinct(jobs.places[5])
    assert seen[0] == 5 and seen[-1] == 1, seen
    assert all(a > b for a, b in itertools.pairwise(seen)), seen
    s = q.stats()
    assert s["admitted"] == 9 and s["cancelled"] == 1
    assert_clean(q)


@pytest.mark.parametrize("error", [ValueError, Stop])
def test_an_exception_inside_the_slot_releases_it(error):
    q = WorkQueue(1)
    with pytest.raises(error), q.slot("a"):
        assert q.position("a") == 0
        raise error
    assert_clean(q)
    assert q.position("a") is None
    got = threading.Event()

    def other() -> None:
        with q.slot("b"):
            got.set()

    t = threading.Thread(target=other)
    t.start()
    t.join(5)
    assert got.is_set()


def test_a_long_job_in_batches_lets_a_short_job_in_between():
    """A report of five batches takes the slot once per batch: a short job
    submitted while a batch runs starts before the next batch."""
    q = WorkQueue(1)
    log: list[str] = []
    first_batch = threading.Event()

    def report() -> None:
        for b in range(5):
            with q.slot("reporter"):
                log.append(f"batch {b}")
                first_batch.set()
                time.sleep(0.1)

    def short() -> None:
        with q.slot("explorer"):
            log.append("short")

    long_job = threading.Thread(target=report)
    long_job.start()
    first_batch.wait(5)
    assert q.position("reporter") == 0
    short_job = threading.Thread(target=short)
    short_job.start()
    long_job.join(10)
    short_job.join(10)
    assert log == ["batch 0", "short", "batch 1", "batch 2", "batch 3", "batch 4"]
    assert_clean(q)


def test_yield_turn_lets_others_in_during_one_long_computation():
    """A training loop calls yield_turn between steps: a waiting job goes
    first, the training comes back after it and finishes."""
    q = WorkQueue(1)
    log: list[str] = []
    places: list[int] = []
    started = threading.Event()

    def training() -> None:
        with q.slot("trainer", on_wait=places.append, poll_s=0.01) as turn:
            for step in range(20):
                started.set()
                if turn.yield_turn():
                    log.append(f"back at step {step}")
                time.sleep(0.01)
            log.append("trained")

    def short() -> None:
        with q.slot("explorer"):
            log.append("short")
            time.sleep(0.05)

    trainer = threading.Thread(target=training)
    trainer.start()
    started.wait(5)
    explorer = threading.Thread(target=short)
    explorer.start()
    trainer.join(10)
    explorer.join(10)
    assert log[0] == "short" and log[1].startswith("back at step"), log
    assert log[-1] == "trained"
    # behind the explorer (2) until it takes the slot, then next (1)
    assert places and places[-1] == 1 and set(places) <= {1, 2}
    assert_clean(q)


def test_alone_in_line_yield_turn_keeps_the_slot():
    q = WorkQueue(1)
    with q.slot("a", on_wait=lambda place: pytest.fail("waited")) as turn:
        assert not turn.yield_turn()
        assert q.position("a") == 0
    assert_clean(q)


def test_a_stop_while_waiting_for_a_new_turn_releases_everything():
    q = WorkQueue(1)
    holding = threading.Event()
    release = threading.Event()

    def other() -> None:
        with q.slot("b"):
            holding.set()
            release.wait(5)

    def stop(place: int) -> None:
        release.set()
        raise Stop

    with pytest.raises(Stop), q.slot("a", on_wait=stop) as turn:
        t = threading.Thread(target=other)
        t.start()
        wait_for(lambda: q.position("b") == 1)
        turn.yield_turn()  # b goes first; "a" is stopped while it waits
    t.join(5)
    assert holding.is_set()
    assert_clean(q)
    assert q.stats()["cancelled"] == 1


def test_a_nested_slot_in_the_same_thread_runs_at_once():
    q = WorkQueue(1)
    with q.slot("a"), q.slot("a") as inner:
        assert q.stats()["running"] == ["a"]
        assert not inner.yield_turn()
    assert_clean(q)


def test_the_default_queue():
    assert HEAVY.slots == int(os.environ.get("LIPNET_HEAVY_SLOTS", "1"))
    with pytest.raises(ValueError):
        WorkQueue(0)


def test_the_report_page_waits_for_its_turn():
    """AppTest: while someone else holds the only slot, the report waits in
    line (place 1), then runs once the slot is free."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/report.py").run()
    at.slider(key="report_n").set_value(10)
    at.button(key="report_run").click()
    seen: dict = {}
    holding = threading.Event()

    def someone_else() -> None:
        with HEAVY.slot("someone else"):
            holding.set()
            wait_for(lambda: HEAVY.stats()["waiting"], timeout=60)
            seen.update(HEAVY.stats())
            time.sleep(0.3)

    t = threading.Thread(target=someone_else)
    t.start()
    holding.wait(10)
    at.run()
    t.join(10)
    assert not at.exception, [e.message for e in at.exception]
    assert seen["running"] == ["someone else"] and len(seen["waiting"]) == 1
    assert {m.label: m.value for m in at.metric}["Images"] == "10"
    assert_clean(HEAVY)
