"""Routing lookups over storage (RTE-2): numbers and Clients of the account.

Every inbound INVITE looks up its number (and maybe two Clients); the answers are kept for
``ttl`` seconds so a busy server does not ask the database the same question hundreds of
times a second.  A write through the REST API calls :meth:`StorageDirectory.invalidate`
after it commits, so a changed VoiceUrl routes the very next call; ``ttl`` bounds how long
a change made around the API (another process, a hand edit) can go unseen.  Misses are
kept too (scanners dial numbers that do not exist), and the cache is emptied when it
holds ``max_entries``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from dialtone.calls.routing import ClientRecord, NumberRecord
from dialtone.storage.database import Database
from dialtone.storage.repository import Clients, PhoneNumbers

T = TypeVar("T", NumberRecord, ClientRecord)

DEFAULT_TTL = 5.0
"""Seconds a routing answer is reused (when no API write invalidated it first)."""


class StorageDirectory:
    """Reads the IncomingPhoneNumber and Client records a call routes by, cached briefly."""

    def __init__(
        self,
        db: Database,
        *,
        ttl: float = DEFAULT_TTL,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self._ttl, self._max_entries, self._clock = ttl, max_entries, clock
        self._cache: dict[tuple[str, ...], tuple[float, NumberRecord | ClientRecord | None]] = {}
        self._generation = 0
        self.hits = self.misses = 0

    def invalidate(self) -> None:
        """Forget every answer: stored numbers or Clients may have changed."""
        self._cache.clear()
        self._generation += 1

    async def number(self, account_sid: str, candidates: list[str]) -> NumberRecord | None:
        """The number equal to one of ``candidates``."""
        return await self._cached(("number", account_sid, *candidates), NumberRecord, _number)

    async def client(self, account_sid: str, login: str) -> ClientRecord | None:
        """The Client with this Login."""
        return await self._cached(("client", account_sid, login), ClientRecord, _client)

    async def _cached(
        self,
        key: tuple[str, ...],
        kind: type[T],
        load: Callable[[Database, str, list[str]], Awaitable[T | None]],
    ) -> T | None:
        now = self._clock()
        found = self._cache.get(key)
        if found is not None and found[0] > now:
            self.hits += 1
            answer = found[1]
            return answer if isinstance(answer, kind) else None
        self.misses += 1
        generation = self._generation
        answer = await load(self.db, key[1], list(key[2:]))
        if generation == self._generation:  # no write committed while we read
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
            self._cache[key] = (now + self._ttl, answer)
        return answer


async def _number(db: Database, account_sid: str, candidates: list[str]) -> NumberRecord | None:
    async with db.session() as session:
        row = await PhoneNumbers(session).find(account_sid, candidates)
    if row is None:
        return None
    return NumberRecord(
        sid=row.sid,
        phone_number=row.phone_number,
        voice_url=row.voice_url,
        voice_method=row.voice_method,
        voice_fallback_url=row.voice_fallback_url,
        voice_fallback_method=row.voice_fallback_method,
        status_callback=row.status_callback,
        status_callback_method=row.status_callback_method,
        api_version=row.api_version,
    )


async def _client(db: Database, account_sid: str, logins: list[str]) -> ClientRecord | None:
    async with db.session() as session:
        row = await Clients(session).by_login(account_sid, logins[0])
    if row is None:
        return None
    return ClientRecord(
        sid=row.sid,
        login=row.login,
        voice_url=row.voice_url,
        voice_method=row.voice_method,
        voice_fallback_url=row.voice_fallback_url,
        voice_fallback_method=row.voice_fallback_method,
        api_version=row.api_version,
    )
