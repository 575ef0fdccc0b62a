"""SIP timer values (RFC 3261 §17, Table 4) and a deadline heap for the endpoint.

Nothing here reads a clock: deadlines are plain floats on the caller's monotonic clock
(the ``now`` every sans-IO method takes).  The endpoint keeps one :class:`TimerHeap`
for all its transactions; the driver arms a single ``loop.call_at`` for
:meth:`TimerHeap.next_deadline` (design.md §4).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["T1", "T2", "T4", "TIMER_64T1", "TimerHeap"]

T1 = 0.5
"""RTT estimate (§17.1.1.1): the first retransmission interval over UDP."""
T2 = 4.0
"""Maximum retransmission interval for non-INVITE requests and INVITE responses."""
T4 = 5.0
"""Maximum time a message can remain in the network (§17.1.2.2)."""
TIMER_64T1 = 64 * T1
"""Transaction timeout (Timers B, F, H, J; RFC 6026 Timers L and M): 32 s."""

K = TypeVar("K")

# Below this many cancelled entries the heap is never compacted: rebuilding a small heap
# saves nothing, and skipping a few dead entries at pop time is cheaper.
_COMPACT_MIN = 256


class TimerHeap(Generic[K]):
    """Deadlines with opaque keys, earliest first; O(log n) schedule and pop.

    Each entry is one tuple ``(deadline, handle, key)``; the handle is a counter, so equal
    deadlines pop in scheduling order and keys are never compared.  :meth:`cancel` is
    lazy: it records the handle, and the dead entry is skipped when it reaches the top
    (or dropped when dead entries outnumber live ones, so a burst of cancellations of
    far deadlines cannot make the heap grow without bound).

    :meth:`schedule_later` is for callers that do not know the time (a TU answering
    from a coroutine): the entry waits, with its delay, until :meth:`anchor` brings the
    time; the endpoint anchors at every call that carries ``now``.

    The contract that keeps the bookkeeping exact: cancel only handles that have not
    popped yet (the transactions forget a handle when its timer fires).
    """

    __slots__ = ("_cancelled", "_heap", "_next_handle", "_pending")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._pending: list[tuple[float, int, K]] = []
        self._cancelled: set[int] = set()
        self._next_handle = 0

    def schedule(self, deadline: float, key: K) -> int:
        """Add ``key`` to fire at ``deadline``; return the handle to :meth:`cancel` it."""
        handle = self._next_handle = self._next_handle + 1
        heapq.heappush(self._heap, (deadline, handle, key))
        return handle

    def schedule_later(self, delay: float, key: K) -> int:
        """Add ``key`` to fire ``delay`` seconds after the next :meth:`anchor`."""
        handle = self._next_handle = self._next_handle + 1
        self._pending.append((delay, handle, key))
        return handle

    def anchor(self, now: float) -> None:
        """Give the entries of :meth:`schedule_later` their deadline: ``now + delay``."""
        pending = self._pending
        if not pending:
            return
        heap, cancelled = self._heap, self._cancelled
        for delay, handle, key in pending:
            if handle in cancelled:
                cancelled.discard(handle)
            else:
                heapq.heappush(heap, (now + delay, handle, key))
        pending.clear()

    def cancel(self, handle: int) -> None:
        """Forget the entry of ``handle`` (lazily: it is skipped when it comes up)."""
        cancelled = self._cancelled
        cancelled.add(handle)
        if len(cancelled) > _COMPACT_MIN and 2 * len(cancelled) > len(self._heap):
            self._heap = [e for e in self._heap if e[1] not in cancelled]
            heapq.heapify(self._heap)
            self._pending = [e for e in self._pending if e[1] not in cancelled]
            cancelled.clear()

    def _drop_dead(self) -> None:
        heap, cancelled = self._heap, self._cancelled
        while heap and heap[0][1] in cancelled:
            cancelled.discard(heapq.heappop(heap)[1])

    def next_deadline(self) -> float | None:
        """Return the earliest live deadline, None when nothing is scheduled.

        Entries still waiting for :meth:`anchor` have no deadline yet and do not count.
        """
        self._drop_dead()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> Iterator[K]:
        """Yield the keys whose deadline is ``<= now``, earliest first, removing them.

        Lazy on purpose: each key is popped only when the iteration reaches it, so a
        handler that cancels (or schedules) another due timer while the iteration runs
        is honoured.
        """
        heap, cancelled = self._heap, self._cancelled
        while heap:
            deadline, handle, key = heap[0]
            if handle in cancelled:
                heapq.heappop(heap)
                cancelled.discard(handle)
                continue
            if deadline > now:
                return
            heapq.heappop(heap)
            yield key
            heap = self._heap  # a cancel() during the yield may have compacted it

    def __len__(self) -> int:
        """Live (scheduled, not cancelled, not popped) entries."""
        return len(self._heap) + len(self._pending) - len(self._cancelled)

    def __bool__(self) -> bool:
        return len(self) > 0
