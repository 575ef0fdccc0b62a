"""A clock that moves only when a test says so (satisfies :class:`dialtone.clock.Clock`).

::

    clock = FakeClock()
    deadline = clock.monotonic() + 32
    clock.advance(32)
    assert clock.monotonic() == deadline
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock"]

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


class FakeClock:
    """Monotonic and wall-clock time that advance together, only through :meth:`advance`.

    ``start`` is the first :meth:`monotonic` reading (1000.0, not 0, so code that
    treats 0 as "unset" is caught); ``utc`` the first :meth:`utcnow`.
    """

    __slots__ = ("_mono", "_start", "_utc")

    def __init__(self, start: float = 1000.0, utc: datetime = _EPOCH) -> None:
        if utc.tzinfo is None:
            raise ValueError("utc must be an aware datetime")
        self._start = self._mono = start
        self._utc = utc

    def monotonic(self) -> float:
        """Seconds on the fake monotonic clock."""
        return self._mono

    def utcnow(self) -> datetime:
        """The fake wall-clock time: ``utc`` plus the seconds advanced so far."""
        return self._utc + timedelta(seconds=self._mono - self._start)

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` (>= 0: monotonic time never goes back)."""
        if seconds < 0:
            raise ValueError(f"cannot go back in time ({seconds} s)")
        self._mono += seconds

    def advance_to(self, monotonic: float) -> None:
        """Move forward to the monotonic reading ``monotonic`` (no-op when already past)."""
        if monotonic > self._mono:
            self._mono = monotonic

    def __repr__(self) -> str:
        return f"FakeClock(monotonic={self._mono})"
