"""Throttling of repeated authentication failures per source address (pure, fake-clock friendly).

Thresholds (documented in docs/sip.md): more than ``limit`` failures from one IP address
within ``window`` seconds block that address for ``block`` seconds; while blocked its
requests needing authentication are refused with 403 without checking credentials.  Other
addresses are not affected.  Memory is bounded: at most ``max_sources`` addresses are tracked.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

DEFAULT_LIMIT: Final = 20
DEFAULT_WINDOW: Final = 60.0
DEFAULT_BLOCK: Final = 60.0


@dataclass
class AuthThrottle:
    """Counts failed authentications per source IP and blocks noisy sources."""

    limit: int = DEFAULT_LIMIT
    window: float = DEFAULT_WINDOW
    block: float = DEFAULT_BLOCK
    max_sources: int = 10_000
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _blocked_until: dict[str, float] = field(default_factory=dict)

    def blocked(self, host: str, now: float) -> bool:
        """Whether ``host`` is currently blocked."""
        until = self._blocked_until.get(host)
        if until is None:
            return False
        if now >= until:
            del self._blocked_until[host]
            return False
        return True

    def failure(self, host: str, now: float) -> bool:
        """Record a failure; return True when this one blocks the source."""
        times = self._failures.get(host)
        if times is None:
            if len(self._failures) >= self.max_sources:
                self.prune(now)
                if len(self._failures) >= self.max_sources:
                    self._failures.pop(next(iter(self._failures)))
            times = self._failures[host] = deque()
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) > self.limit:
            self._blocked_until[host] = now + self.block
            times.clear()
            return True
        return False

    def prune(self, now: float) -> None:
        """Forget sources without recent failures."""
        for host in [h for h, t in self._failures.items() if not t or t[-1] <= now - self.window]:
            del self._failures[host]
        for host in [h for h, until in self._blocked_until.items() if now >= until]:
            del self._blocked_until[host]
