"""The REST app in-process with a fake call control: uvicorn in a thread, its own loop.

:class:`FakeControl` stands in for the call layer behind
:class:`~dialtone.calls.control.CallControl`: it records every request and writes the Call
rows with :class:`~dialtone.calls.records.CallRecords`, as the real one does, so
``GET /Calls/{sid}`` and the twilio helper library see them.  Nothing dials.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from dialtone import ids
from dialtone.accounts import ensure_account
from dialtone.api.app import create_app
from dialtone.api.scope import ApiServices
from dialtone.calls.control import CallControlError, ModifyRequest, OriginateRequest
from dialtone.calls.records import CallRecords
from dialtone.clock import SystemClock
from dialtone.config import Settings
from dialtone.storage.database import Database
from dialtone.storage.models import Account

OTHER_ACCOUNT = "AC" + "0" * 31 + "2"


@dataclass
class FakeControl:
    """Records requests and keeps the Call rows as the call layer would; dials nothing."""

    records: CallRecords
    clock: SystemClock
    originated: list[OriginateRequest] = field(default_factory=list)
    modified: list[ModifyRequest] = field(default_factory=list)
    refusal: CallControlError | None = None
    move_on_to: str | None = None  # status the call reaches before originate returns

    async def originate(self, request: OriginateRequest) -> str:
        """Write the queued outbound-api row, then return its CallSid."""
        self.originated.append(request)
        if self.refusal is not None:
            raise self.refusal
        sid = ids.new_sid(ids.CALL)
        created = self.records.create(
            sid,
            account_sid=request.account_sid,
            direction="outbound-api",
            from_=request.from_,
            to=request.to,
            status="queued",
            api_version=request.api_version,
            start_time=self.clock.utcnow(),
        )
        assert await created
        if self.move_on_to == "ringing":
            assert await self.records.update(sid, status="ringing")
        elif self.move_on_to is not None:
            assert await self.records.finish(sid, self.move_on_to, self.clock.utcnow(), 480)
        return sid

    async def modify(self, request: ModifyRequest) -> None:
        """End the row on a Status; new RCML changes nothing stored."""
        self.modified.append(request)
        if self.refusal is not None:
            raise self.refusal
        if request.status is not None:
            code = 487 if request.status == "canceled" else 200
            assert await self.records.finish(
                request.call_sid, request.status, self.clock.utcnow(), code
            )

    async def seed(self, account_sid: str, status: str) -> str:
        """An inbound call of ``account_sid`` in ``status`` (for the modify tests)."""
        sid = ids.new_sid(ids.CALL)
        common: dict[str, Any] = {"api_version": "2010-04-01", "start_time": self.clock.utcnow()}
        receipt = self.records.create(
            sid,
            account_sid=account_sid,
            direction="inbound",
            from_="+15557654321",
            to="+15550001111",
            status="ringing",
            **common,
        )
        assert await receipt
        if status == "in-progress":
            assert await self.records.update(sid, status=status, answer_time=self.clock.utcnow())
        elif status != "ringing":
            assert await self.records.finish(sid, status, self.clock.utcnow(), 200)
        return sid


class AppServer:
    """The REST app with a fake call control, served by uvicorn in a thread."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.account_sid = "AC" + secrets.token_hex(16)
        self.auth_token = secrets.token_hex(16)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="app-server", daemon=True)
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.services: ApiServices | None = None
        self.control: FakeControl | None = None
        self._failure: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}"

    @property
    def restcomm_api(self) -> str:
        return f"{self.base_url}/restcomm/2012-04-24/Accounts/{self.account_sid}"

    def start(self) -> AppServer:
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("the app server did not start")
        if self._failure is not None:
            raise RuntimeError("the app server failed") from self._failure
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(20)
        self._socket.close()
        if self._failure is not None:
            raise RuntimeError("the app server failed") from self._failure

    def call_soon(self, work: Any) -> Any:
        """Run a coroutine on the server's loop and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._failure = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        settings = Settings(
            http_port=self.port,
            data_dir=self.data_dir,
            account_sid=self.account_sid,
            auth_token=self.auth_token,
        )
        db = Database(settings.effective_database_url)
        await db.migrate()
        clock = SystemClock()
        boot = await ensure_account(db, settings, clock)
        async with db.session() as session:
            now = clock.utcnow()
            session.add(
                Account(
                    sid=OTHER_ACCOUNT,
                    friendly_name="other",
                    auth_token="e" * 32,
                    status="active",
                    date_created=now,
                    date_updated=now,
                )
            )
        assert boot.account.sid == self.account_sid
        records = CallRecords(db, clock, public_url=settings.effective_public_url)
        self.control = FakeControl(records, clock)
        self.services = ApiServices(
            db=db,
            settings=settings,
            clock=clock,
            call_control=self.control,
            has_outbound_proxy=True,
        )
        config = uvicorn.Config(
            create_app(self.services), log_config=None, access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._ready.set()
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            await records.close()
            await db.dispose()
