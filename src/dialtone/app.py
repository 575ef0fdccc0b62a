"""The composition root: the only place that builds concrete objects and wires them together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import structlog
import uvicorn

from dialtone.accounts import ensure_account
from dialtone.api.app import create_app
from dialtone.api.scope import ApiServices
from dialtone.clock import Clock, SystemClock
from dialtone.config import Settings
from dialtone.errors import StartupError
from dialtone.listen import bind_tcp, url_host
from dialtone.sipstack import SipStack
from dialtone.storage.database import Database

log = structlog.get_logger("dialtone")


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn inside our own loop: dialtone owns the signals and the shutdown order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signal handling to :func:`run`."""
        yield


class Server:
    """One dialtone process: database, REST API and (with the SIP issue) SIP and media."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.db: Database | None = None
        self._http: _EmbeddedUvicorn | None = None
        self._http_socket: socket.socket | None = None
        self._http_task: asyncio.Task[None] | None = None
        self.http_address: tuple[str, int] | None = None
        self.sip: SipStack | None = None

    async def start(self) -> None:
        """Open storage, create or load the account, and start listening."""
        settings = self.settings
        if not settings.database_url:
            check_data_dir(settings.data_dir)
        self.db = Database(settings.effective_database_url)
        await self.db.migrate()
        boot = await ensure_account(self.db, settings, self.clock)
        if boot.created and not settings.auth_token:
            announce_credentials(boot.account.sid, boot.account.auth_token)
        self._http_socket = bind_tcp(settings.http_host, settings.http_port, "HTTP")
        self.http_address = self._http_socket.getsockname()[:2]
        self.sip = SipStack(
            settings,
            self.db,
            self.clock,
            account_sid=boot.account.sid,
            auth_token=boot.account.auth_token,
        )
        await self.sip.start()
        services = ApiServices(
            db=self.db,
            settings=settings,
            clock=self.clock,
            directory=self.sip.directory,
            stats=self.stats,
            changed=self.sip.routing.invalidate,
            call_control=self.sip.calls,
        )
        config = uvicorn.Config(
            create_app(services),
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
        )
        config.load()
        self._http = _EmbeddedUvicorn(config)
        self._http.lifespan = config.lifespan_class(config)
        await self._http.startup(sockets=[self._http_socket])
        self._http_task = asyncio.create_task(self._http.main_loop(), name="http")
        host, port = self.http_address
        assert self.sip.address is not None
        sip_host, sip_port = self.sip.address
        sip = f"{url_host(sip_host)}:{sip_port}"
        log.info(
            "dialtone.ready",
            sip=f"udp:{sip},tcp:{sip}",
            http=f"http://{url_host(host)}:{port}",
            public_url=settings.effective_public_url,
            domain=settings.effective_domain,
            account_sid=boot.account.sid,
        )

    def stats(self) -> dict[str, int]:
        """Live counts of API-60 (calls, dialogs and media come with the calls issue)."""
        counts = {
            "calls": 0,
            "sip_dialogs": 0,
            "sip_transactions": 0,
            "media_ports": 0,
            "webhook_lanes": 0,
            "timers": 0,
        }
        if self.sip is not None:
            counts.update(self.sip.stats())
        return counts

    async def stop(self) -> None:
        """Stop listening, finish in-flight requests, close SIP and storage."""
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            await self._http_task
            await self._http.shutdown(sockets=[self._http_socket] if self._http_socket else None)
        if self._http_socket is not None:
            self._http_socket.close()
        if self.sip is not None:
            await self.sip.stop()
        if self.db is not None:
            await self.db.dispose()
        log.info("dialtone.stopped")


async def serve(settings: Settings) -> None:
    """Run a server until SIGINT or SIGTERM."""
    server = Server(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (2, 15):  # SIGINT, SIGTERM
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
        settle_heap()
        await stop.wait()
    finally:
        await server.stop()


GC_THRESHOLD = (10_000, 10, 10)
"""The collector's thresholds once serving (CPython's: 700, 10, 10).  A call's objects mostly
die within a call; with a young generation of 10,000 far fewer survive into the older ones,
and Dial at 300 calls/s took 3.4-3.6 ms of CPU per call instead of 4.0-4.1 (2026-12-02)."""


def settle_heap() -> None:
    """Once started: collect, then freeze what start-up built out of the cyclic GC's sight.

    Modules, the ASGI app, compiled statements and caches live as long as the process; left in
    the collector's oldest generation, every full collection walks them all again (about 80 ms
    on the benchmark machine, a pause every call in progress feels).  ``gc.freeze`` moves them
    to a permanent generation, as CPython's documentation advises for servers; then the
    thresholds become :data:`GC_THRESHOLD`.  Only ``dialtone serve`` calls this: a test
    process starts many servers and must not pin them.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    log.info("heap.settled", frozen_objects=gc.get_freeze_count(), threshold=GC_THRESHOLD)


def check_data_dir(path: Path) -> None:
    """Create the data directory if needed and prove it is writable."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StartupError(f"data directory {str(path)!r} is not writable: {reason}") from None


def announce_credentials(account_sid: str, auth_token: str) -> None:
    """Print a new account's credentials once (``dialtone account`` prints them again)."""
    print(
        "dialtone: created the account. Keep these credentials:\n"
        f"  AccountSid: {account_sid}\n"
        f"  AuthToken:  {auth_token}\n"
        "  (`dialtone account` prints them again)",
        flush=True,
    )
