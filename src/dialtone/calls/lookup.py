"""Routing lookups over storage (RTE-2): numbers and Clients of the account."""

from __future__ import annotations

from dialtone.calls.routing import ClientRecord, NumberRecord
from dialtone.storage.database import Database
from dialtone.storage.repository import Clients, PhoneNumbers


class StorageDirectory:
    """Reads the IncomingPhoneNumber and Client records a call routes by."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def number(self, account_sid: str, candidates: list[str]) -> NumberRecord | None:
        """The number equal to one of ``candidates``."""
        async with self.db.session() as session:
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

    async def client(self, account_sid: str, login: str) -> ClientRecord | None:
        """The Client with this Login."""
        async with self.db.session() as session:
            row = await Clients(session).by_login(account_sid, login)
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
