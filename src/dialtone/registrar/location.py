"""The location service: each Client's bindings (pure; time comes in as ``now``).

Rules (spec REG-3, REG-4, RFC 3261 §10.3): bindings are keyed by Contact URI; a refresh from
the same Call-ID must carry a higher CSeq (else the whole request fails with 500 and nothing
changes); a Client keeps at most ``max_bindings`` (the least recently refreshed one makes
room); expiry 0 removes a binding; bindings expire on time.  ``now`` is wall-clock epoch
seconds, so expiry times can be stored and survive a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

MAX_BINDINGS: Final = 10
PING_MISSES: Final = 3


@dataclass(slots=True)
class Binding:
    """One registered device of a Client."""

    client_sid: str
    contact: str
    call_id: str
    cseq: int
    expires_at: float
    updated_at: float
    transport: str
    source_host: str
    source_port: int
    connection: int | None = None
    user_agent: str | None = None
    ping_misses: int = 0

    def remaining(self, now: float) -> int:
        """Whole seconds left before expiry (at least 0)."""
        return max(0, int(self.expires_at - now + 0.5))


@dataclass(frozen=True, slots=True)
class ContactUpdate:
    """One Contact of a REGISTER with its effective expiry (0 removes it)."""

    contact: str
    expires: int


class OutOfOrder(Exception):
    """Same Call-ID with a CSeq not higher than the stored one (RFC 3261 §10.3 step 7)."""


@dataclass(slots=True)
class Source:
    """Where a REGISTER came from: the binding is reached there (NAT-friendly, REG-4)."""

    transport: str
    host: str
    port: int
    connection: int | None = None
    user_agent: str | None = None


@dataclass
class Location:
    """Bindings of every Client, in memory; the registrar persists changes."""

    max_bindings: int = MAX_BINDINGS
    _by_client: dict[str, dict[str, Binding]] = field(default_factory=dict)

    def bindings(self, client_sid: str, now: float) -> list[Binding]:
        """The live bindings of a Client, most recently refreshed first."""
        found = self._by_client.get(client_sid)
        if not found:
            return []
        live = [b for b in found.values() if b.expires_at > now]
        return sorted(live, key=lambda b: b.updated_at, reverse=True)

    def update(
        self,
        client_sid: str,
        updates: Sequence[ContactUpdate],
        call_id: str,
        cseq: int,
        source: Source,
        now: float,
    ) -> None:
        """Apply one REGISTER's contacts atomically; raise :class:`OutOfOrder` first if due."""
        current = self._by_client.setdefault(client_sid, {})
        for update in updates:
            existing = current.get(update.contact)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                raise OutOfOrder(update.contact)
        for update in updates:
            if update.expires == 0:
                current.pop(update.contact, None)
                continue
            current[update.contact] = Binding(
                client_sid=client_sid,
                contact=update.contact,
                call_id=call_id,
                cseq=cseq,
                expires_at=now + update.expires,
                updated_at=now,
                transport=source.transport,
                source_host=source.host,
                source_port=source.port,
                connection=source.connection,
                user_agent=source.user_agent,
            )
        while len(current) > self.max_bindings:
            oldest = min(current.values(), key=lambda b: b.updated_at)
            del current[oldest.contact]
        if not current:
            del self._by_client[client_sid]

    def remove_all(self, client_sid: str, call_id: str, cseq: int) -> None:
        """``Contact: *`` with ``Expires: 0``: drop every binding (CSeq rule applies)."""
        current = self._by_client.get(client_sid, {})
        for binding in current.values():
            if binding.call_id == call_id and cseq <= binding.cseq:
                raise OutOfOrder(binding.contact)
        self._by_client.pop(client_sid, None)

    def forget_client(self, client_sid: str) -> bool:
        """Remove every binding of a deleted Client; tell whether it had any."""
        return self._by_client.pop(client_sid, None) is not None

    def expire(self, now: float) -> list[str]:
        """Drop expired bindings; return the Clients that changed."""
        changed: list[str] = []
        for client_sid in list(self._by_client):
            current = self._by_client[client_sid]
            dead = [c for c, b in current.items() if b.expires_at <= now]
            for contact in dead:
                del current[contact]
            if dead:
                changed.append(client_sid)
            if not current:
                del self._by_client[client_sid]
        return changed

    def ping_result(self, client_sid: str, contact: str, alive: bool) -> bool:
        """Record a keep-alive answer; return True when the binding was dropped (REG-6)."""
        current = self._by_client.get(client_sid, {})
        binding = current.get(contact)
        if binding is None:
            return False
        if alive:
            binding.ping_misses = 0
            return False
        binding.ping_misses += 1
        if binding.ping_misses < PING_MISSES:
            return False
        del current[contact]
        if not current:
            del self._by_client[client_sid]
        return True

    def restore(self, bindings: Iterable[Binding]) -> None:
        """Load bindings read back from storage (after a restart)."""
        for binding in bindings:
            self._by_client.setdefault(binding.client_sid, {})[binding.contact] = binding

    def all(self) -> Iterator[Binding]:
        """Every binding (live or not yet purged)."""
        for current in self._by_client.values():
            yield from current.values()

    def count(self) -> int:
        """How many bindings are held."""
        return sum(len(c) for c in self._by_client.values())
