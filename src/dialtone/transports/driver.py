"""The pump between sockets and the sans-IO endpoint (aioquic ``asyncio/protocol.py`` style).

Transports call :meth:`SipDriver.feed` per message and :meth:`SipDriver.pump` after a
batch; the pump drains the endpoint's events into the application, sends what the endpoint
wants sent, and arms one ``loop.call_at`` for the endpoint's next deadline.  The endpoint's
clock is ``loop.time()`` (monotonic).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from dialtone.sip.endpoint import SipEndpoint
from dialtone.sip.events import Event, Peer
from dialtone.sip.message import Request, Response
from dialtone.transports.tcp import TcpTransport
from dialtone.transports.udp import UdpTransport

log = structlog.get_logger("dialtone.transports")


class SipDriver:
    """Owns the endpoint's I/O: feeding, pumping, sending and its single timer."""

    def __init__(self, endpoint: SipEndpoint, on_event: Callable[[Event], None]) -> None:
        self.endpoint = endpoint
        self._on_event = on_event
        self._loop = asyncio.get_running_loop()
        self.udp: UdpTransport | None = None
        self.tcp: TcpTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pump_scheduled = False
        self.via_host_port: tuple[str, int] = (endpoint.local_host, endpoint.local_port)

    # -- from transports ---------------------------------------------------------------

    def feed(self, data: bytes, peer: Peer) -> None:
        """One received message (a datagram or a framed stream message)."""
        self.endpoint.receive(data, peer, self._loop.time())

    def connection_closed(self, connection: int) -> None:
        """A TCP connection went away: its client transactions fail."""
        self.endpoint.connection_lost(connection, self._loop.time())
        self.schedule_pump()

    def unreachable(self, peer: Peer) -> None:
        """A connection to ``peer`` could not be opened: its client transactions fail."""
        self.endpoint.transport_error(peer, self._loop.time())
        self.schedule_pump()

    # -- from the application --------------------------------------------------------------

    def respond(self, transaction: str, response: Response) -> None:
        """Send a response in a server transaction."""
        self.endpoint.respond(transaction, response, self._loop.time())
        self.schedule_pump()

    def send_request(self, request: Request, peer: Peer) -> str:
        """Send a request in a new client transaction."""
        transaction = self.endpoint.send_request(request, peer, self._loop.time())
        self.schedule_pump()
        return transaction

    def send_stateless(self, request: Request, peer: Peer) -> None:
        """Send outside any transaction (the ACK of a 2xx)."""
        self.endpoint.send_stateless(request, peer)
        self.schedule_pump()

    def cancel(self, invite_transaction: str) -> str | None:
        """CANCEL a pending INVITE (held until a provisional, RFC 3261 §9.1)."""
        transaction = self.endpoint.cancel(invite_transaction, self._loop.time())
        self.schedule_pump()
        return transaction

    def new_branch(self) -> str:
        """A fresh branch for a Via."""
        return self.endpoint.new_branch()

    # -- pumping ---------------------------------------------------------------------------

    def schedule_pump(self) -> None:
        """Pump once at the end of this loop iteration (batches many sends)."""
        if not self._pump_scheduled:
            self._pump_scheduled = True
            self._loop.call_soon(self.pump)

    def pump(self) -> None:
        """Deliver events, send datagrams, re-arm the timer; repeat until quiet."""
        self._pump_scheduled = False
        endpoint = self.endpoint
        for _ in range(10_000):
            event = endpoint.next_event()
            if event is None:
                break
            try:
                self._on_event(event)
            except Exception:  # one bad event must not stop SIP for everyone (DOC-13)
                log.exception("sip.event_failed", event=type(event).__name__)
        for out in endpoint.datagrams_to_send(self._loop.time()):
            self._send(out.data, out.peer)
        self._arm_timer()

    def _send(self, data: bytes, peer: Peer) -> None:
        if peer.transport == "udp":
            if self.udp is not None:
                self.udp.send(data, peer)
        elif self.tcp is not None:
            self.tcp.send(data, peer)

    def _arm_timer(self) -> None:
        deadline = self.endpoint.next_timer()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.endpoint.handle_timer(self._loop.time())
        self.pump()

    def close(self) -> None:
        """Cancel the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
