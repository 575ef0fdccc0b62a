"""The SIP transaction user: dispatches endpoint events to the registrar (and, later, calls).

It answers what no service owns: OPTIONS to dialtone (SIP-3), methods dialtone does not
implement (501) or does not allow here (405 with Allow), unsupported ``Require`` (420),
in-dialog requests matching no dialog (481).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Final, Protocol

import structlog

from dialtone import __version__
from dialtone.calls.manager import CallManager
from dialtone.registrar.keepalive import KeepAlive
from dialtone.registrar.location import Binding
from dialtone.registrar.service import Registrar
from dialtone.sip.errors import SipParseError, status_for_error
from dialtone.sip.events import (
    CancelReceived,
    Event,
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionTimeout,
    Transport,
    TransportFailed,
)
from dialtone.sip.message import Headers, Request, Response, make_response
from dialtone.sip.randomness import random_hex

log = structlog.get_logger("dialtone.sip")

ALLOW: Final = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO"
ACCEPT: Final = "application/sdp"
SUPPORTED: Final = ""
#: Methods of RFC 3261 and its extensions that dialtone knows but does not serve.
KNOWN_NOT_ALLOWED: Final = frozenset(
    {"SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "REFER", "PRACK", "UPDATE"}
)
#: In-dialog methods that need a dialog (RFC 3261 §12.2.2: none matches → 481).
IN_DIALOG: Final = frozenset({"BYE", "INFO"})


class Endpoint(Protocol):
    """What the application needs of the SIP endpoint driver."""

    def respond(self, transaction: str, response: Response) -> None:
        """Send a response in a server transaction."""
        ...

    def send_request(self, request: Request, peer: Peer) -> str:
        """Send a request in a new client transaction; returns its id."""
        ...

    def new_branch(self) -> str:
        """A fresh RFC 3261 branch (``z9hG4bK…``)."""
        ...

    @property
    def via_host_port(self) -> tuple[str, int]:
        """The host and port dialtone puts in Via and Contact."""
        ...


class SipApplication:
    """Receives every event of the endpoint and routes it."""

    def __init__(
        self,
        *,
        registrar: Registrar,
        keepalive: KeepAlive,
        domain: str,
        mono: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self.registrar = registrar
        self.keepalive = keepalive
        self.domain = domain
        self.mono = mono
        self.wall = wall
        self.endpoint: Endpoint | None = None
        self.calls: CallManager | None = None
        self.server_header = f"dialtone/{__version__}"

    def attach(self, endpoint: Endpoint) -> None:
        """Connect to the endpoint driver (two-phase wiring in the composition root)."""
        self.endpoint = endpoint

    def handle(self, event: Event) -> None:
        """Route one endpoint event."""
        if isinstance(event, RequestReceived):
            if event.transaction is not None:
                self._request(event.request, event.peer, event.transaction)
            elif event.request.method == "ACK" and self.calls is not None:
                self.calls.ack(event.request)  # the ACK of a 2xx (no transaction, §17.2.1)
        elif isinstance(event, ResponseReceived):
            if self.keepalive.is_ping(event.transaction):
                if event.response.status >= 200:
                    assert event.transaction is not None
                    self.keepalive.answered(event.transaction)
            elif self.calls is not None:
                self.calls.response(event)
        elif isinstance(event, TransactionTimeout | TransportFailed):
            if self.calls is not None:
                timeout = isinstance(event, TransactionTimeout)
                self.calls.transaction_failed(event.transaction, timeout=timeout)
            if self.keepalive.is_ping(event.transaction):
                dropped = self.keepalive.failed(event.transaction)
                if dropped is not None:
                    log.info("binding.dropped_unreachable", client_sid=dropped)
                    self.registrar.on_change(dropped)
        elif isinstance(event, CancelReceived) and self.calls is not None:
            self.calls.cancel(event)

    def _respond(self, transaction: str, response: Response) -> None:
        assert self.endpoint is not None
        response.headers.add("Server", self.server_header)
        self.endpoint.respond(transaction, response)

    def _request(self, request: Request, peer: Peer, transaction: str) -> None:
        method = request.method
        try:
            request.ruri  # noqa: B018  # §8.2.2.1: a Request-URI we cannot use is refused
        except SipParseError as exc:
            status = status_for_error(exc)
            self._respond(transaction, make_response(request, status, exc.reason, to_tag=_tag()))
            return
        unsupported = _unsupported(request.headers)
        if unsupported and method not in ("ACK", "CANCEL"):
            self._respond(
                transaction,
                make_response(request, 420, to_tag=_tag(), headers=[("Unsupported", unsupported)]),
            )
            return
        if method not in ("REGISTER", "ACK", "CANCEL") and _to_tag(request):
            # §12.2.2: a request inside a dialog goes to it, or gets 481.
            found = self.calls.in_dialog(request, transaction) if self.calls else None
            self._respond(transaction, found or make_response(request, 481, to_tag=_tag()))
            return
        if method == "INVITE" and self.calls is not None:
            self.calls.invite(request, peer, transaction)
            return
        if method == "REGISTER":
            response = self.registrar.register(request, peer, self.mono(), self.wall())
        elif method == "OPTIONS":
            response = make_response(
                request,
                200,
                to_tag=_tag(),
                headers=[("Allow", ALLOW), ("Accept", ACCEPT)],
            )
        elif method == "INVITE":
            # Calls arrive with the calls issue; until then say so clearly.
            response = make_response(request, 503, "Calls Not Available Yet", to_tag=_tag())
        elif method in IN_DIALOG:
            response = make_response(request, 481, to_tag=_tag())
        elif method in KNOWN_NOT_ALLOWED:
            response = make_response(request, 405, to_tag=_tag(), headers=[("Allow", ALLOW)])
        else:
            response = make_response(request, 501, to_tag=_tag(), headers=[("Allow", ALLOW)])
        self._respond(transaction, response)

    def ping_due_bindings(self) -> int:
        """Send OPTIONS to every binding due a keep-alive (REG-6); return how many."""
        if self.endpoint is None:
            return 0
        now = self.wall()
        due = self.keepalive.due(now)
        for binding in due:
            transaction = self.endpoint.send_request(self._options(binding), _peer_of(binding))
            self.keepalive.sent(transaction, binding, now)
        return len(due)

    def _options(self, binding: Binding) -> Request:
        assert self.endpoint is not None
        host, port = self.endpoint.via_host_port
        transport = binding.transport.upper()
        headers = Headers(
            [
                ("Via", f"SIP/2.0/{transport} {host}:{port};branch={self.endpoint.new_branch()}"),
                ("Max-Forwards", "70"),
                ("From", f"<sip:dialtone@{self.domain}>;tag={_tag()}"),
                ("To", f"<{binding.contact}>"),
                ("Call-ID", secrets.token_hex(12)),
                ("CSeq", "1 OPTIONS"),
                ("User-Agent", self.server_header),
            ]
        )
        return Request("OPTIONS", binding.contact, headers)


def _to_tag(request: Request) -> str | None:
    try:
        return request.to.tag
    except SipParseError:
        return None


def _unsupported(headers: Headers) -> str:
    """The option tags of ``Require`` that dialtone does not support (all of them)."""
    if "Require" not in headers:  # nearly every request: skip the list parse
        return ""
    return ", ".join(v.strip() for v in headers.values("Require") if v.strip())


def _peer_of(binding: Binding) -> Peer:
    transport: Transport = "tcp" if binding.transport == "tcp" else "udp"
    return Peer(transport, binding.source_host, binding.source_port, binding.connection)


def _tag() -> str:
    return random_hex(5)
