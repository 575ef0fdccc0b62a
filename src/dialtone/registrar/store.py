"""Persistence of bindings: changed Clients are written in batches, read back at start.

REGISTER must not wait on the database (the registrar targets thousands per second), so the
registrar only marks a Client dirty; :meth:`BindingStore.flush` writes the current binding
set of every dirty Client in one transaction (REG-5: bindings survive a restart).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from dialtone.registrar.location import Binding, Location
from dialtone.storage.database import Database
from dialtone.storage.models import Registration
from dialtone.storage.repository import Registrations

log = structlog.get_logger("dialtone.registrar.store")

_CHUNK = 400  # Clients per statement: well under SQLite's bound-parameter limit


def _to_dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def to_values(binding: Binding) -> dict[str, object]:
    """The column values of a binding's row, for a bulk insert."""
    return {
        "client_sid": binding.client_sid,
        "contact": binding.contact,
        "call_id": binding.call_id,
        "cseq": binding.cseq,
        "transport": binding.transport,
        "source_host": binding.source_host,
        "source_port": binding.source_port,
        "user_agent": binding.user_agent,
        "expires_at": _to_dt(binding.expires_at),
        "updated_at": _to_dt(binding.updated_at),
    }


def from_row(row: Registration) -> Binding:
    """A binding read back from storage (TCP connections do not survive a restart)."""
    return Binding(
        client_sid=row.client_sid,
        contact=row.contact,
        call_id=row.call_id,
        cseq=row.cseq,
        expires_at=row.expires_at.timestamp(),
        updated_at=row.updated_at.timestamp(),
        transport=row.transport,
        source_host=row.source_host,
        source_port=row.source_port,
        user_agent=row.user_agent,
    )


class BindingStore:
    """Writes dirty Clients' bindings to storage; loads them at start."""

    def __init__(self, db: Database, location: Location) -> None:
        self.db = db
        self.location = location
        self._dirty: set[str] = set()
        self._wakeup = asyncio.Event()

    def mark(self, client_sid: str) -> None:
        """Remember that this Client's bindings changed."""
        self._dirty.add(client_sid)
        self._wakeup.set()

    def discard(self, client_sid: str) -> None:
        """The Client is gone: its rows go with it (ON DELETE CASCADE)."""
        self._dirty.discard(client_sid)

    async def load(self, now_wall: float) -> int:
        """Restore live bindings into the location service; return how many."""
        async with self.db.session() as session:
            repo = Registrations(session)
            await repo.purge_expired(_to_dt(now_wall))
            rows = await repo.live(_to_dt(now_wall))
        self.location.restore(from_row(r) for r in rows)
        return len(rows)

    async def flush(self, now_wall: float) -> None:
        """Write every dirty Client's current bindings (one transaction per batch)."""
        if not self._dirty:
            return
        batch, self._dirty = self._dirty, set()
        try:
            await self._write(batch, now_wall)
        except IntegrityError:
            # A Client deleted while its bindings changed: write the others one by one.
            for client_sid in batch:
                try:
                    await self._write({client_sid}, now_wall)
                except IntegrityError:
                    log.debug("bindings.client_gone", client_sid=client_sid)
        except SQLAlchemyError:
            log.exception("bindings.write_failed", clients=len(batch))
            self._dirty |= batch

    async def _write(self, batch: set[str], now_wall: float) -> None:
        # Bulk statements, not one ORM round per Client: at thousands of REGISTERs per
        # second a batch holds thousands of Clients (bench/register).
        clients = sorted(batch)
        async with self.db.session() as session:
            for start in range(0, len(clients), _CHUNK):
                chunk = clients[start : start + _CHUNK]
                await session.execute(
                    delete(Registration).where(Registration.client_sid.in_(chunk))
                )
                rows = [
                    to_values(b) for sid in chunk for b in self.location.bindings(sid, now_wall)
                ]
                if rows:
                    await session.execute(insert(Registration), rows)

    async def run(self, interval: float, wall: Callable[[], float]) -> None:
        """Flush at most every ``interval`` seconds while there are changes (until cancelled)."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(interval)
            await self.flush(wall())
