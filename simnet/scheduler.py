"""A seeded discrete-event scheduler: a heap of (time_ms, seq) entries.

Time is an integer number of simulated milliseconds. Entries that fall on the same millisecond run
in the order they were scheduled (`seq` breaks ties), so a run depends only on what was scheduled,
never on hashing, dictionaries or the wall clock. The scheduler holds plain callbacks with one
argument; the deterministic driver (`simnet.deterministic`) schedules bound methods of its own
objects.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, Final

from simnet.errors import SimnetError

# A run that schedules more entries than this has a livelock (a timer storm or a gossip loop): stop
# it and say so instead of running out of memory. A 5,000-peer run with 200 tasks schedules about
# 10 million entries.
ENTRIES_MAX: Final = 200_000_000


class Scheduler:
    """Run callbacks in simulated-time order. `now_ms` is the time of the entry being run."""

    __slots__ = ("_heap", "_seq", "now_ms", "ran")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callable[[Any], None], Any]] = []
        self._seq = 0
        self.now_ms = 0
        self.ran = 0

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, time_ms: int, callback: Callable[[Any], None], argument: Any = None) -> None:
        """Run `callback(argument)` at simulated time `time_ms` (not before now).

        Raises SimnetError for a time in the past or after ENTRIES_MAX entries: a bug of the
        driver, not of the simulated network."""
        if time_ms < self.now_ms:
            raise SimnetError(f"scheduled at {time_ms} ms, before now ({self.now_ms} ms)")
        self._seq += 1
        if self._seq > ENTRIES_MAX:
            raise SimnetError(f"more than {ENTRIES_MAX} scheduled entries: a livelock?")
        heapq.heappush(self._heap, (time_ms, self._seq, callback, argument))

    def after(self, delay_ms: int, callback: Callable[[Any], None], argument: Any = None) -> None:
        """Run `callback(argument)` `delay_ms` (>= 0) after now."""
        self.at(self.now_ms + max(0, delay_ms), callback, argument)

    def next_time(self) -> int | None:
        """Time of the next entry, or None when nothing is scheduled."""
        return self._heap[0][0] if self._heap else None

    def run_until(self, end_ms: int, stop: Callable[[], bool] | None = None) -> None:
        """Run entries up to and including `end_ms`, or until `stop()` is true (checked after
        each entry). Leaves later entries scheduled and `now_ms` at the last entry run (or at
        `end_ms` when the heap ran dry or passed it)."""
        heap = self._heap
        pop = heapq.heappop
        while heap and heap[0][0] <= end_ms:
            time_ms, _, callback, argument = pop(heap)
            self.now_ms = time_ms
            self.ran += 1
            callback(argument)
            if stop is not None and stop():
                return
        self.now_ms = max(self.now_ms, end_ms)
