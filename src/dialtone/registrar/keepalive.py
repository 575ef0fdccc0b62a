"""Keep-alive pings of bindings (REG-6): OPTIONS every 60 s; three misses drop the binding.

Pure bookkeeping: :meth:`KeepAlive.due` says which bindings to ping at ``now`` (spread over
the interval, never all at once), :meth:`sent` remembers the transaction, and
:meth:`answered`/:meth:`failed` report the outcome to the location service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from dialtone.registrar.location import Binding, Location

PING_INTERVAL: Final = 60.0


@dataclass
class KeepAlive:
    """Schedules OPTIONS pings per binding and applies their results."""

    location: Location
    interval: float = PING_INTERVAL
    _last: dict[tuple[str, str], float] = field(default_factory=dict)
    _pending: dict[str, tuple[str, str]] = field(default_factory=dict)

    def due(self, now: float) -> list[Binding]:
        """Bindings whose last ping (or registration) is ``interval`` old, not already pinging."""
        pinging = set(self._pending.values())
        out: list[Binding] = []
        seen: set[tuple[str, str]] = set()
        for binding in self.location.all():
            key = (binding.client_sid, binding.contact)
            seen.add(key)
            last = self._last.get(key)
            if last is None:
                # First sight: a fresh registration is pinged one interval after it; bindings
                # restored after a restart are spread over one interval, not pinged at once.
                spread = (hash(key) % 1000) / 1000 * self.interval
                last = self._last[key] = max(binding.updated_at, now - self.interval + spread)
            elif binding.updated_at > last:  # a REGISTER refreshed it: heard from just now
                last = self._last[key] = binding.updated_at
            if key not in pinging and now - last >= self.interval and binding.expires_at > now:
                out.append(binding)
        for stale in [k for k in self._last if k not in seen]:
            del self._last[stale]
        return out

    def sent(self, transaction: str, binding: Binding, now: float) -> None:
        """A ping was sent for ``binding`` in ``transaction``."""
        key = (binding.client_sid, binding.contact)
        self._pending[transaction] = key
        self._last[key] = now

    def is_ping(self, transaction: str | None) -> bool:
        """Whether ``transaction`` is one of our pings."""
        return transaction is not None and transaction in self._pending

    def answered(self, transaction: str) -> None:
        """Any final response means alive."""
        key = self._pending.pop(transaction, None)
        if key is not None:
            self.location.ping_result(key[0], key[1], alive=True)

    def failed(self, transaction: str) -> str | None:
        """Timeout or transport error; returns the Client whose binding was dropped, if any."""
        key = self._pending.pop(transaction, None)
        if key is None:
            return None
        dropped = self.location.ping_result(key[0], key[1], alive=False)
        return key[0] if dropped else None

    def pending(self) -> int:
        """Pings awaiting an answer."""
        return len(self._pending)
