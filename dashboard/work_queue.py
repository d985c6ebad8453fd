"""A small shared queue for heavy work: bounded CPU per user, fair turns.

Streamlit runs each session's script in a thread of its own, so ten people
starting reports, long attacks or trainings at once would run ten heavy
computations side by side on two cores, and everyone's explorer would crawl.
Heavy work instead takes one of a few slots, in ticket order (first come,
first served). A job that waits is told its place in line through `on_wait`,
which is also where Streamlit interrupts it when its user clicks or reruns.
A long job takes a slot once per small batch and goes to the back of the
line between batches (or calls `Turn.yield_turn`), so short jobs interleave.

Pure Python (no Streamlit) so it can be tested on its own.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(eq=False)
class _Ticket:
    number: int
    owner: str


class Turn:
    """A held slot: what `WorkQueue.slot` yields."""

    def __init__(
        self,
        queue: WorkQueue,
        ticket: _Ticket | None,
        on_wait: Callable[[int], None] | None,
        poll_s: float,
    ) -> None:
        self._queue, self._ticket = queue, ticket
        self._on_wait, self._poll_s = on_wait, poll_s

    def yield_turn(self) -> bool:
        """If someone waits, go to the back of the line and wait for a new turn.

        For one long computation that cannot be cut into batches (a training
        loop calls it between steps). True if the slot was given up.
        """
        if self._ticket is None:  # a nested slot: the outer one decides
            return False
        ticket = self._queue._requeue(self._ticket)
        if ticket is None:
            return False
        self._ticket = ticket
        self._queue._wait_for_turn(ticket, self._on_wait, self._poll_s)
        return True


class WorkQueue:
    """At most `slots` heavy jobs run at once; the others wait in ticket order."""

    def __init__(self, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError(f"a work queue needs at least one slot, not {slots}")
        self.slots = slots
        self._cond = threading.Condition()
        self._waiting: list[_Ticket] = []  # in ticket order
        self._running: list[_Ticket] = []
        self._numbers = itertools.count(1)
        self._held = threading.local()  # a thread inside a slot does not queue again
        self._admitted = self._cancelled = self._max_running = 0

    @contextmanager
    def slot(
        self,
        owner: str,
        on_wait: Callable[[int], None] | None = None,
        poll_s: float = 0.1,
    ) -> Iterator[Turn]:
        """Run the block in a slot once every earlier ticket has had its turn.

        While the job waits, `on_wait(place)` is called at once, whenever the
        place changes and every `poll_s` seconds (place 1 = next in line).
        Anything it raises (Streamlit's stop or rerun) takes the ticket out
        of the line and propagates. The slot is released however the block
        ends. A thread that already holds a slot runs nested blocks at once.
        """
        if getattr(self._held, "turn", None) is not None:
            yield Turn(self, None, on_wait, poll_s)
            return
        with self._cond:
            ticket = _Ticket(next(self._numbers), owner)
            self._waiting.append(ticket)
        turn = Turn(self, ticket, on_wait, poll_s)
        try:
            self._wait_for_turn(ticket, on_wait, poll_s)
            self._held.turn = turn
            yield turn
        finally:
            self._held.turn = None
            self._release(turn._ticket)

    def position(self, owner: str) -> int | None:
        """0 if a job of `owner` runs, its place in line if one waits, else None."""
        with self._cond:
            if any(t.owner == owner for t in self._running):
                return 0
            for place, t in enumerate(self._waiting, 1):
                if t.owner == owner:
                    return place
        return None

    def stats(self) -> dict:
        """Who runs and who waits now, and counts since the queue was made."""
        with self._cond:
            return {
                "slots": self.slots,
                "running": [t.owner for t in self._running],
                "waiting": [t.owner for t in self._waiting],
                "admitted": self._admitted,
                "cancelled": self._cancelled,
                "max_running": self._max_running,
            }

    # ------------------------------------------------------------------

    def _wait_for_turn(
        self, ticket: _Ticket, on_wait: Callable[[int], None] | None, poll_s: float
    ) -> None:
        """Block until `ticket` runs, reporting its place to `on_wait`."""
        told, next_call = None, 0.0
        try:
            while True:
                with self._cond:
                    while True:
                        if (
                            len(self._running) < self.slots
                            and self._waiting[0] is ticket
                        ):
                            self._waiting.pop(0)
                            self._running.append(ticket)
                            self._admitted += 1
                            self._max_running = max(
                                self._max_running, len(self._running)
                            )
                            self._cond.notify_all()  # the next may fit too
                            return
                        place = self._waiting.index(ticket) + 1
                        now = time.monotonic()
                        if on_wait is not None and (place != told or now >= next_call):
                            break
                        timeout = poll_s if on_wait is None else next_call - now
                        self._cond.wait(max(timeout, 0.001))
                # Outside the lock: on_wait may draw, block or raise.
                told, next_call = place, time.monotonic() + poll_s
                on_wait(place)
        except BaseException:
            with self._cond:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                    self._cancelled += 1
                self._cond.notify_all()
            raise

    def _release(self, ticket: _Ticket) -> None:
        with self._cond:
            for line in (self._running, self._waiting):
                if ticket in line:
                    line.remove(ticket)
            self._cond.notify_all()

    def _requeue(self, ticket: _Ticket) -> _Ticket | None:
        """Swap a running ticket for a new one at the back, if anyone waits."""
        with self._cond:
            if not self._waiting:
                return None
            self._running.remove(ticket)
            new = _Ticket(next(self._numbers), ticket.owner)
            self._waiting.append(new)
            self._cond.notify_all()
            return new


# The default queue for the dashboard. One slot on the 2-core server: one core
# does the heavy work in turns while the other stays free for everyone's cheap
# reruns and cached answers (torch runs each computation on one thread, see
# dashboard/state.py), so a long report never slows the explorer down to a
# crawl. LIPNET_HEAVY_SLOTS raises it on a bigger machine.
HEAVY = WorkQueue(slots=int(os.environ.get("LIPNET_HEAVY_SLOTS", "1")))
