"""Assembly of the SIP side of a server: sockets, endpoint, registrar, periodic jobs.

Called only from the composition root (:mod:`dialtone.app`); it builds the concrete objects
of the SIP layers and owns their lifetime (start, periodic housekeeping, stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

import structlog

from dialtone.calls.audio import AudioCache
from dialtone.calls.dial import DialSettings
from dialtone.calls.lookup import StorageDirectory
from dialtone.calls.manager import CallManager
from dialtone.calls.records import CallRecords
from dialtone.calls.services import CallServices
from dialtone.clock import Clock
from dialtone.config import Settings
from dialtone.errors import StartupError
from dialtone.listen import bind_error, bind_tcp
from dialtone.media.local import LocalMediaEngine
from dialtone.media.ports import PortPool
from dialtone.media.tts import SpeechEngine
from dialtone.registrar.auth import Authenticator
from dialtone.registrar.directory import RegistrarDirectory, credentials_of
from dialtone.registrar.keepalive import KeepAlive
from dialtone.registrar.location import Location
from dialtone.registrar.service import Registrar
from dialtone.registrar.store import BindingStore
from dialtone.sip.endpoint import SipEndpoint
from dialtone.sipapp import SipApplication
from dialtone.storage.database import Database
from dialtone.storage.repository import Clients
from dialtone.transports.driver import SipDriver
from dialtone.transports.tcp import TcpTransport
from dialtone.transports.udp import UdpTransport, bind_udp
from dialtone.webhooks.client import WebhookClient, WebhookError
from dialtone.webhooks.dispatcher import CallbackDispatcher

log = structlog.get_logger("dialtone.sip")

HOUSEKEEPING_INTERVAL = 1.0


class SipStack:
    """Everything SIP in one process, built by :meth:`start`."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        clock: Clock,
        *,
        account_sid: str,
        auth_token: str,
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.wall: Callable[[], float] = lambda: clock.utcnow().timestamp()
        wall = self.wall
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.domain = settings.effective_domain
        self.auth = Authenticator(self.domain, settings.digest_algorithms)
        self.location = Location()
        self.store = BindingStore(db, self.location)
        self.registrar = Registrar(
            domain=self.domain,
            local_hosts={settings.sip_host, "localhost"},
            auth=self.auth,
            location=self.location,
            on_change=self.store.mark,
        )
        self.keepalive = KeepAlive(self.location)
        self.directory = RegistrarDirectory(self.registrar, self.auth, self.store, wall)
        self.driver: SipDriver | None = None
        self.address: tuple[str, int] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.calls: CallManager | None = None
        self.records = CallRecords(db, clock, public_url=settings.effective_public_url)
        self.routing = StorageDirectory(db)
        """Numbers and Clients calls route by; the API invalidates it after each write."""
        self.webhooks = WebhookClient()
        self.callbacks = CallbackDispatcher(self.webhooks, on_failure=self._callback_failed)
        self.media = LocalMediaEngine(PortPool.parse(settings.rtp_ports), host=settings.sip_host)
        self.speech = SpeechEngine()
        self.audio = AudioCache()

    async def start(self) -> None:
        """Load credentials and bindings, bind UDP and TCP, start the housekeeping."""
        await self._load()
        loop = asyncio.get_running_loop()
        udp_sock, tcp_sock = _bind_pair(self.settings.sip_host, self.settings.sip_port)
        host, port = udp_sock.getsockname()[:2]
        self.address = (host, port)
        endpoint = SipEndpoint(local_host=host, local_port=port)
        app = SipApplication(
            registrar=self.registrar,
            keepalive=self.keepalive,
            domain=self.domain,
            mono=loop.time,
            wall=self.wall,
        )
        driver = SipDriver(endpoint, app.handle)
        app.attach(driver)
        app.calls = self.calls = self._call_manager(driver, host, port)
        driver.udp = UdpTransport(udp_sock, driver.feed, driver.pump)
        driver.udp.start()
        driver.tcp = TcpTransport(
            driver.feed, driver.pump, driver.connection_closed, driver.unreachable
        )
        await driver.tcp.listen(tcp_sock)
        self.driver = driver
        self._app = app
        self._tasks = [
            loop.create_task(self.store.run(1.0, self.wall), name="bindings-writer"),
            loop.create_task(self._housekeeping(), name="sip-housekeeping"),
        ]

    def _call_manager(self, driver: SipDriver, host: str, port: int) -> CallManager:
        loop = asyncio.get_running_loop()
        services = CallServices(
            account_sid=self.account_sid,
            auth_token=self.auth_token,
            public_url=self.settings.effective_public_url,
            records=self.records,
            webhooks=self.webhooks,
            callbacks=self.callbacks,
            speech=self.speech,
            audio=self.audio,
            respond=driver.respond,
            send_request=driver.send_request,
            loop_time=loop.time,
            utcnow=self.clock.utcnow,
            dialog_changed=lambda: None,
            forget=lambda call: None,
            send_stateless=driver.send_stateless,
            cancel=driver.cancel,
        )
        sip_host = f"[{host}]" if ":" in host else host

        def contact(transport: str) -> str:
            suffix = ";transport=tcp" if transport == "tcp" else ""
            return f"sip:dialtone@{sip_host}:{port}{suffix}"

        location = self.location

        def client_sid(login: str) -> str | None:
            credentials = self.auth.lookup(login)
            return credentials.client_sid if credentials is not None else None

        dial = DialSettings(
            domain=self.domain,
            proxy=self.settings.outbound_proxy,
            whisper_timeout=self.settings.whisper_timeout,
            client_sid=client_sid,
            bindings=lambda sid: location.bindings(sid, self.wall()),
        )
        return CallManager(
            services,
            auth=self.auth,
            directory=self.routing,
            media=self.media,
            domain=self.domain,
            local_hosts={self.settings.sip_host, "localhost"},
            contact=contact,
            dial=dial,
        )

    def _callback_failed(self, error: WebhookError, sequence_number: int) -> None:
        """CB-12: a status callback finally failed: warning Notification 15003."""
        self.records.notify(
            self.account_sid,
            error.call_sid,
            log=1,
            error_code=15003,
            message_text=f"status callback {sequence_number} not delivered: {error.message}",
            request_url=error.url,
            request_method=error.method,
            request_variables=list(error.params),
        )

    async def _load(self) -> None:
        async with self.db.session() as session:
            clients = await Clients(session).all_with_realm()
        stale = [c.login for c in clients if c.ha1_realm != self.domain]
        if stale:
            log.warning(
                "clients.realm_mismatch",
                domain=self.domain,
                clients=len(stale),
                hint="their passwords were set under another --domain; set them again",
            )
        self.auth.load(credentials_of(c) for c in clients if c.ha1_realm == self.domain)
        restored = await self.store.load(self.wall())
        log.info("registrar.loaded", clients=len(clients), bindings=restored)

    async def _housekeeping(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)
            now = self.wall()
            for client_sid in self.location.expire(now):
                self.store.mark(client_sid)
            self.auth.prune(loop.time())
            self._app.ping_due_bindings()

    def stats(self) -> dict[str, int]:
        """Live counts for ``/dialtone/stats.json`` (API-60)."""
        endpoint = self.driver.endpoint if self.driver else None
        records = self.records.stats()
        return {
            "records_pending": records["pending"],
            "records_lost": records["failed"] + records["dropped"],
            "calls_refused_overload": self.calls.overload_refusals if self.calls else 0,
            "calls": self.calls.count() if self.calls else 0,
            "sip_dialogs": self.calls.dialogs.count() if self.calls else 0,
            "media_ports": self.media.in_use(),
            "webhook_lanes": self.callbacks.lane_count(),
            "sip_transactions": endpoint.transaction_count() if endpoint else 0,
            "timers": endpoint.timer_count() if endpoint else 0,
            "bindings": self.location.count(),
            "tcp_connections": self.driver.tcp.connection_count()
            if self.driver and self.driver.tcp
            else 0,
        }

    async def stop(self) -> None:
        """End calls (CB-13), stop housekeeping, write the last changes, close the sockets."""
        if self.calls is not None:
            await self.calls.shutdown(self.settings.shutdown_grace)
        await self.callbacks.drain(self.settings.shutdown_grace)
        await self.media.close()
        await self.webhooks.aclose()
        await self.audio.aclose()
        await self.speech.aclose()
        await self.records.close(self.settings.shutdown_grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.store.flush(self.wall())
        if self.driver is not None:
            self.driver.close()
            if self.driver.udp is not None:
                self.driver.udp.close()
            if self.driver.tcp is not None:
                await self.driver.tcp.close()


def _bind_pair(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """Bind UDP and TCP on the same port (port 0: let the OS pick one free for both)."""
    for _ in range(20 if port == 0 else 1):
        try:
            udp = bind_udp(host, port)
        except OSError as exc:
            raise StartupError(bind_error("SIP", "UDP", host, port, exc)) from None
        actual = udp.getsockname()[1]
        try:
            tcp = bind_tcp(host, actual, "SIP")
        except StartupError:
            udp.close()
            if port == 0:
                continue
            raise
        return udp, tcp
    raise StartupError(f"no port on {host} is free for both SIP UDP and TCP")
