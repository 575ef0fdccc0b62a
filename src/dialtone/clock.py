"""Time as a dependency: cores take ``now``; services ask a :class:`Clock`.

Tests use :class:`dialtone.testing.clock.FakeClock` to advance time without sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """A source of monotonic time (for timers) and wall-clock time (for timestamps)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def utcnow(self) -> datetime:
        """The current time as an aware UTC datetime."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """Seconds from :func:`time.monotonic`."""
        return time.monotonic()

    def utcnow(self) -> datetime:
        """The current aware UTC time."""
        return datetime.now(UTC)
