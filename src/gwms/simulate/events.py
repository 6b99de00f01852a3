"""Virtual time: a heap of events, run in time order; no sleeping, no threads.

:class:`EventLoop` holds the simulated clock. ``schedule(at, action, *args)`` puts an
action on the heap; :meth:`EventLoop.run` pops them in order of (time, priority,
order of scheduling), sets the clock to each event's time and calls the action, which
may schedule more. Ties are broken by priority and then by the order of scheduling,
so a run is a pure function of its inputs and seed. The clock never goes backwards:
an event scheduled in the past runs at the current time.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

__all__ = ["EventLoop"]

Action = Callable[..., Any]


class EventLoop:
    """The simulated clock and its event heap (see the module docstring).

    Args:
        start: the time the clock starts at (epoch seconds of the simulated day).
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)
        self.start = float(start)
        self._heap: list[tuple[float, int, int, Action, tuple[Any, ...]]] = []
        self._seq = 0
        self.processed = 0

    def clock(self) -> float:
        """The current simulated time (pass this as a service's ``clock``)."""
        return self.now

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, at: float, action: Action, *args: Any, priority: int = 5) -> None:
        """Run ``action(*args)`` at time ``at`` (not before now); lower ``priority`` runs
        first among events at the same time."""
        at = max(at, self.now)
        self._seq += 1
        heapq.heappush(self._heap, (at, priority, self._seq, action, args))

    def after(self, delay: float, action: Action, *args: Any, priority: int = 5) -> None:
        """Run ``action(*args)`` ``delay`` seconds from now."""
        self.schedule(self.now + max(0.0, delay), action, *args, priority=priority)

    def next_time(self) -> float | None:
        """The time of the next event, or None when there is none."""
        return self._heap[0][0] if self._heap else None

    def run(self, until: float, *, on_step: Callable[[float], None] | None = None) -> None:
        """Run events up to and including time ``until``; the clock ends at ``until``.

        ``on_step(now)`` is called after each event (progress reports).
        """
        heap = self._heap
        pop = heapq.heappop
        while heap and heap[0][0] <= until:
            at, _, _, action, args = pop(heap)
            self.now = max(self.now, at)
            action(*args)
            self.processed += 1
            if on_step is not None:
                on_step(self.now)
        self.now = max(self.now, until)
