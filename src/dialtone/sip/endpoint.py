"""The sans-IO SIP endpoint: bytes and ``now`` in; bytes, events and a deadline out.

:class:`SipEndpoint` is the transport layer (RFC 3261 §18.2, RFC 3581) and the
transaction layer (§17, RFC 6026) of a user agent, in the style of aioquic's
``QuicConnection``: the driver feeds it datagrams or framed stream messages with
:meth:`~SipEndpoint.receive`, sends what :meth:`~SipEndpoint.datagrams_to_send` returns,
hands :meth:`~SipEndpoint.next_event` to the TU and calls
:meth:`~SipEndpoint.handle_timer` at :meth:`~SipEndpoint.next_timer`.  It never does
I/O and never reads a clock.

What the endpoint settles before the TU hears of a request: malformed messages (400,
505, 513, 416 when answerable, else dropped: spec SIP-2), ``Max-Forwards: 0`` (483),
retransmissions (answered from the transaction), ACKs of non-2xx responses (absorbed),
CANCEL (200 and :class:`~dialtone.sip.events.CancelReceived`, or 481: §9.2).  Methods
are the TU's business (:func:`check_method` helps it answer 501/405).

TU calls (:meth:`~SipEndpoint.respond`, :meth:`~SipEndpoint.send_request`,
:meth:`~SipEndpoint.cancel`) take an optional ``now``; without it the timers they start
are anchored at the endpoint's next call that brings the time (the driver's
``datagrams_to_send(loop.time())`` right after), so a TU never needs a clock.
"""

from __future__ import annotations

import dataclasses
import re
from collections import deque
from collections.abc import Collection, Iterable
from typing import Final

from dialtone.sip.errors import SipParseError, status_for_error
from dialtone.sip.events import (
    CancelReceived,
    Event,
    Outgoing,
    Peer,
    ResponseReceived,
)
from dialtone.sip.headers import Via, split_quoted
from dialtone.sip.message import (
    KNOWN_METHODS,
    MAX_MESSAGE_SIZE,
    Headers,
    Request,
    Response,
    make_response,
    parse_message,
)
from dialtone.sip.randomness import random_hex
from dialtone.sip.timers import TIMER_64T1, TimerHeap
from dialtone.sip.transaction import (
    MAGIC_COOKIE,
    ClientTransaction,
    ServerTransaction,
    TimerKey,
    Transaction,
    _request_received,
    build_cancel,
    client_key,
    new_outgoing,
    server_key,
)
from dialtone.sip.transitions import CALLING, ICT, IST, NICT, NIST, PROCEEDING, Input

__all__ = ["DEFAULT_ALLOW", "SipEndpoint", "check_method", "random_hex", "response_peer"]

# Enum members as globals: reading ``Input.X`` goes through the enum metaclass.
_RECV_REQUEST, _SEND_1XX, _SEND_2XX = Input.RECV_REQUEST, Input.SEND_1XX, Input.SEND_2XX
_SEND_FAILURE, _START, _RECV_ACK = Input.SEND_FAILURE, Input.START, Input.RECV_ACK
_RECV_1XX, _RECV_2XX, _RECV_FAILURE = Input.RECV_1XX, Input.RECV_2XX, Input.RECV_FAILURE

# Parameters of the first via-parm a server rewrites (§18.2.1, RFC 3581 §4); the Via
# parsed already, so these only have to find them in text known to be well formed.
_RPORT_RE: Final = re.compile(r"[ \t]*;[ \t]*rport(?:[ \t]*=[ \t]*[0-9]*)?(?=[ \t]*(?:;|$))", re.I)
_RECEIVED_RE: Final = re.compile(r"[ \t]*;[ \t]*received[ \t]*=[ \t]*[^; \t]*", re.I)

DEFAULT_ALLOW: Final = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "INFO")
"""The methods dialtone serves (spec SIP-3)."""

# §8.2.6 / SIP-2: a malformed To or From gets 400 before the TU sees the request, so TUs
# can read them without guarding.  The servers of these methods never read From (a
# registrar works on To, §10.3), and parsing it would cost a tenth of a REGISTER.
_FROM_UNREAD: Final = frozenset({"REGISTER", "OPTIONS"})

_COUNTERS: Final = (
    "received",
    "dropped",  # unparseable and unanswerable (SIP-2), or a response without branch
    "rejected",  # answered statelessly: 400, 505, 513, 416 ...
    "retransmissions",  # requests matched to an existing server transaction
    "stray_responses",  # responses matching no client transaction
    "late_responses",  # TU responses for a transaction that has ended
)


def response_peer(via: Via, source: Peer) -> Peer:
    """Where a response to a request from ``source`` with top Via ``via`` goes (§18.2.2).

    Over TCP: back on the request's connection.  Over UDP: to the source address (the
    ``received``), at the source port when the client asked for it with ``rport``
    (RFC 3581 §4), else at the sent-by port (default 5060).  ``maddr`` is not honoured.
    """
    if source.transport != "udp" or via.has_rport:
        return source
    port = via.port or 5060
    return source if port == source.port else Peer("udp", source.host, port)


def check_method(
    request: Request, allowed: Collection[str] = DEFAULT_ALLOW, *, to_tag: str
) -> Response | None:
    """The TU's answer to a method it does not serve, or None when ``allowed`` has it.

    An unknown method gets ``501 Not Implemented``, a known one ``405 Method Not
    Allowed`` (§8.2.1); both list ``Allow`` (spec SIP-2).
    """
    if request.method in allowed:
        return None
    status = 405 if request.method in KNOWN_METHODS else 501
    return make_response(request, status, to_tag=to_tag, headers=[("Allow", ", ".join(allowed))])


class SipEndpoint:
    """One SIP user agent's transport and transaction layers, sans I/O (module docstring).

    ``local_host``/``local_port`` go into the Via of requests that have none;
    ``transports`` are the ones requests may be sent over; ``user_agent`` is added as
    ``User-Agent`` to requests and ``Server`` to responses lacking one (None: never);
    larger messages than ``max_message_size`` get 513 or are dropped.
    """

    def __init__(
        self,
        *,
        local_host: str,
        local_port: int,
        transports: Iterable[str] = ("udp", "tcp"),
        user_agent: str | None = "dialtone",
        max_message_size: int = MAX_MESSAGE_SIZE,
    ) -> None:
        self.local_host = local_host
        self.local_port = local_port
        self.transports = frozenset(transports)
        self.user_agent = user_agent
        self.max_message_size = max_message_size
        self.timers: TimerHeap[TimerKey] = TimerHeap()
        self._servers: dict[str, ServerTransaction] = {}
        self._clients: dict[str, ClientTransaction] = {}
        # ICTs that ended recently: a 2xx for one still goes to the TU (which ACKs and
        # BYEs it), with transaction None.  The deque holds them in expiry order.
        self._graveyard: dict[str, float] = {}
        self._graveyard_order: deque[tuple[float, str]] = deque()
        self._out: list[Outgoing] = []
        self._events: deque[Event] = deque()
        self._now = float("-inf")
        self._counts = dict.fromkeys(_COUNTERS, 0)
        via_host = f"[{local_host}]" if ":" in local_host and local_host[0] != "[" else local_host
        self._sent_by = f"{via_host}:{local_port}"

    # -- identifiers (RFC 3261 §8.1.1.7, §19.3) ---------------------------------------------

    @staticmethod
    def new_branch() -> str:
        """A fresh RFC 3261 branch: the magic cookie and 64 random bits."""
        return MAGIC_COOKIE + random_hex(8)

    @staticmethod
    def new_tag() -> str:
        """A fresh From/To tag (48 random bits)."""
        return random_hex(6)

    @staticmethod
    def new_call_id() -> str:
        """A fresh Call-ID (128 random bits)."""
        return random_hex(16)

    # -- input from the transports -----------------------------------------------------------

    def receive(self, data: bytes, peer: Peer, now: float) -> None:
        """Take one datagram (or one framed stream message) from ``peer``.  Never raises."""
        self._tick(now)
        counts = self._counts
        counts["received"] += 1
        if data[:1] in (b"\r", b"\n") and not data.strip(b"\r\n"):
            # RFC 5626 §4.4.1 keep-alive: a double CRLF ping gets a CRLF pong on streams.
            if peer.transport != "udp" and data.startswith(b"\r\n\r\n"):
                self._out.append(Outgoing(b"\r\n", peer))
            return
        if len(data) > self.max_message_size:
            self._too_large(data, peer)
            return
        try:
            message = parse_message(data)
        except SipParseError as err:
            self._reject(err, peer)
            return
        try:
            if isinstance(message, Request):
                self._on_request(message, peer, now)
            else:
                self._on_response(message, peer, now)
        except SipParseError as err:  # a header the endpoint reads lazily is malformed
            if isinstance(message, Request):
                self._reject(err.with_partial(message), peer)
            else:
                counts["dropped"] += 1

    def connection_lost(self, connection: int, now: float | None = None) -> None:
        """A stream connection closed: client transactions waiting on it fail (§18.3)."""
        lost = [t for t in self._clients.values() if t.peer.connection == connection]
        for txn in lost:
            txn.feed(Input.TRANSPORT_ERROR, now)

    def transport_error(self, peer: Peer, now: float | None = None) -> None:
        """Sending to ``peer`` failed (ICMP unreachable, refused connect): fail its clients."""
        failed = [t for t in self._clients.values() if t.peer == peer]
        for txn in failed:
            txn.feed(Input.TRANSPORT_ERROR, now)

    # -- output to the transports and the TU ---------------------------------------------

    def datagrams_to_send(self, now: float) -> list[Outgoing]:
        """Return (and forget) everything to send, in order."""
        self._tick(now)
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        """Return the next event for the TU, None when there is none."""
        return self._events.popleft() if self._events else None

    def next_timer(self) -> float | None:
        """The earliest deadline at which :meth:`handle_timer` must be called."""
        return self.timers.next_deadline()

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        self._tick(now)
        servers, clients = self._servers, self._clients
        for txn_id, timer in self.timers.pop_due(now):
            txn: Transaction | None = (servers if txn_id[0] == "s" else clients).get(txn_id)
            if txn is not None:
                txn.fire(timer, now)
        order, graveyard = self._graveyard_order, self._graveyard
        while order and order[0][0] <= now:
            expiry, key = order.popleft()
            if graveyard.get(key) == expiry:
                del graveyard[key]

    # -- the TU's side ---------------------------------------------------------------------

    def respond(self, transaction: str, response: Response, now: float | None = None) -> None:
        """Send ``response`` in server transaction ``transaction``.

        A 2xx to an INVITE moves it to Accepted (RFC 6026): the 2xx retransmissions are
        the TU's (§13.3.1.4), with ``respond`` again while Accepted (64*T1, the whole
        retransmission window) or :meth:`send_stateless`.  A transaction that has ended
        is ignored (counted as ``late_responses``: a race with a timer is no TU bug); a
        response its state cannot take (a 1xx after the final) raises
        ``TransactionStateError``.
        """
        txn = self._servers.get(transaction)
        if txn is None:
            self._counts["late_responses"] += 1
            return
        if self.user_agent is not None and "Server" not in response.headers:
            response.headers.add("Server", self.user_agent)
        status = response.status
        if status < 200:
            txn.feed(_SEND_1XX, now, response)
        elif status < 300:
            txn.feed(_SEND_2XX, now, response)
        else:
            txn.feed(_SEND_FAILURE, now, response)

    def send_request(self, request: Request, peer: Peer, now: float | None = None) -> str:
        """Send ``request`` to ``peer`` in a new client transaction; return its id.

        Fills in what RFC 3261 §8.1.1 asks of a UAC and the TU left out: a top Via with
        a ``z9hG4bK`` branch and ``rport`` (or just the branch), Max-Forwards 70, the
        User-Agent.  ACK has no client transaction (:meth:`send_stateless`).
        """
        method = request.method
        if method == "ACK":
            raise ValueError("an ACK has no client transaction: use send_stateless")
        if peer.transport not in self.transports:
            raise ValueError(f"transport {peer.transport!r} is not enabled")
        if request.cseq.method != method:
            raise ValueError(f"CSeq method {request.cseq.method!r} is not {method!r}")
        branch = self._prepare(request, peer)
        key = client_key(branch, method)
        if key in self._clients:
            raise ValueError(f"a client transaction with branch {branch!r} exists")
        txn = ClientTransaction(self, ICT if method == "INVITE" else NICT, key, peer, request)
        self._clients[key] = txn
        txn.feed(_START, now)
        return key

    def cancel(self, invite_transaction: str, now: float | None = None) -> str | None:
        """CANCEL a pending INVITE (§9.1); return the CANCEL's transaction id.

        The CANCEL goes out only once a provisional response has arrived; before that
        the wish is kept and the CANCEL sent with the first provisional.  None when the
        INVITE already has its final response (or is unknown).
        """
        txn = self._clients.get(invite_transaction)
        if txn is None or txn.kind is not ICT or txn.state not in (CALLING, PROCEEDING):
            return None
        assert txn.request is not None
        branch = txn.request.top_via.branch or ""
        if txn.state is PROCEEDING:
            if not txn.cancel_sent:
                self._send_cancel(txn, now)
        else:
            txn.cancel_wanted = True
        return client_key(branch, "CANCEL")

    def send_stateless(self, message: Request | Response, peer: Peer) -> None:
        """Send outside any transaction: the TU's 2xx retransmissions and ACKs of 2xx.

        A request gets the same fill-ins as :meth:`send_request` (a new branch when its
        Via has none: §17.1.1.3, an ACK of a 2xx is a transaction of its own).  A
        response goes to ``peer`` as given: ``response_peer(request.top_via,
        event.peer)`` is where its server transaction sent it.
        """
        if isinstance(message, Request):
            self._prepare(message, peer)
        self._out.append(new_outgoing(message.to_bytes(), peer))

    # -- counters (/dialtone/stats.json) ---------------------------------------------------

    def transaction_count(self) -> int:
        """Live transactions, client and server."""
        return len(self._servers) + len(self._clients)

    def timer_count(self) -> int:
        """Scheduled timers."""
        return len(self.timers)

    def stats(self) -> dict[str, int]:
        """Message counters (see ``_COUNTERS``) and the two counts above."""
        return {
            **self._counts,
            "server_transactions": len(self._servers),
            "client_transactions": len(self._clients),
            "timers": len(self.timers),
        }

    # -- TransactionHost -------------------------------------------------------------------

    def transmit(self, data: bytes, peer: Peer) -> None:
        """Queue bytes for :meth:`datagrams_to_send` (used by the transactions)."""
        self._out.append(new_outgoing(data, peer))

    def emit(self, event: Event) -> None:
        """Queue an event for :meth:`next_event` (used by the transactions)."""
        self._events.append(event)

    def terminated(self, transaction: Transaction, now: float | None) -> None:
        """Forget a transaction that reached Terminated (used by the transactions)."""
        if isinstance(transaction, ServerTransaction):
            self._servers.pop(transaction.id, None)
            return
        self._clients.pop(transaction.id, None)
        if transaction.kind is ICT:
            expiry = (self._now if now is None else now) + TIMER_64T1
            self._graveyard[transaction.id] = expiry
            self._graveyard_order.append((expiry, transaction.id))

    # -- requests --------------------------------------------------------------------------

    def _on_request(self, request: Request, peer: Peer, now: float) -> None:
        try:
            via = request.top_via
        except SipParseError:  # nowhere to send an answer (SIP-2): drop
            self._counts["dropped"] += 1
            return
        _stamp_via(request, via, peer)  # before anything else: responses copy it
        method = request.method
        if method == "ACK":
            self._on_ack(request, via, peer, now)
            return
        key = server_key(request, via, method)
        txn = self._servers.get(key)
        if txn is not None:  # a retransmission (§17.2.3): the transaction answers it
            self._counts["retransmissions"] += 1
            txn.feed(_RECV_REQUEST, now, request, peer)
            return
        mf = request.max_forwards
        try:  # _check_address, inline
            request.to  # noqa: B018
        except SipParseError:
            raise SipParseError("Bad To") from None
        if method not in _FROM_UNREAD:
            _check_address(request, "From")
        # Everything that can raise SipParseError (-> 400) is read by now.
        invite_key = server_key(request, via, "INVITE") if method == "CANCEL" else ""
        kind = IST if method == "INVITE" else NIST
        txn = ServerTransaction(self, kind, key, response_peer(via, peer), request)
        self._servers[key] = txn
        if mf == 0:  # §16.3 step 3, kept simple for a UA: every request (spec SIP-2)
            txn.feed(_SEND_FAILURE, now, self._local_response(request, 483))
        elif method == "CANCEL":
            self._on_cancel(txn, request, invite_key, peer, now)
        else:
            txn.feed(_RECV_REQUEST, now, request, peer)

    def _on_ack(self, request: Request, via: Via, peer: Peer, now: float) -> None:
        # §17.2.3: the ACK of a non-2xx has the INVITE's branch and ends in its IST
        # (Completed -> Confirmed, or absorbed); an IST in Accepted passes it on.  An ACK
        # of a 2xx has a branch of its own and goes to the dialog layer.
        txn = self._servers.get(server_key(request, via, "INVITE"))
        if txn is not None:
            txn.feed(_RECV_ACK, now, request, peer)
        else:
            self._events.append(_request_received(request, peer, None))

    def _on_cancel(
        self, txn: ServerTransaction, request: Request, invite_key: str, peer: Peer, now: float
    ) -> None:
        # §9.2: a CANCEL matches the INVITE whose key it shares but for the method.  The
        # UAS answers the CANCEL itself; the TU answers the INVITE (487).
        invite = self._servers.get(invite_key)
        if invite is None:
            txn.feed(Input.SEND_FAILURE, now, self._local_response(request, 481))
            return
        tag = invite.to_tag or self.new_tag()  # §9.2: the INVITE's To tag, when it has one
        txn.feed(Input.SEND_2XX, now, self._local_response(request, 200, tag))
        if invite.state is PROCEEDING:
            self._events.append(CancelReceived(request, peer, invite.id))

    def _local_response(self, request: Request, status: int, tag: str | None = None) -> Response:
        response = make_response(request, status, to_tag=tag or self.new_tag())
        if self.user_agent is not None:
            response.headers.add("Server", self.user_agent)
        return response

    def _reject(self, err: SipParseError, peer: Peer) -> None:
        """Answer an unparseable request statelessly when it has a usable Via, else drop."""
        request = err.partial
        if request is None or request.method == "ACK":  # an ACK is never answered
            self._counts["dropped"] += 1
            return
        try:
            via = request.top_via
            _stamp_via(request, via, peer)
        except SipParseError:
            self._counts["dropped"] += 1
            return
        self._counts["rejected"] += 1
        response = make_response(request, status_for_error(err), err.reason, to_tag=self.new_tag())
        if self.user_agent is not None:
            response.headers.add("Server", self.user_agent)
        self._out.append(Outgoing(response.to_bytes(), response_peer(via, peer)))

    def _too_large(self, data: bytes, peer: Peer) -> None:
        # §18.1.1 / SIP-2: parse the head alone so a request can still get its 513.
        end = data.find(b"\r\n\r\n", 0, self.max_message_size)
        partial: Request | None = None
        if end > 0:
            try:
                head = parse_message(data[: end + 4])
            except SipParseError as err:
                partial = err.partial
            else:
                partial = head if isinstance(head, Request) else None
        self._reject(SipParseError("Message Too Large", too_large=True, partial=partial), peer)

    # -- responses -------------------------------------------------------------------------

    def _on_response(self, response: Response, peer: Peer, now: float) -> None:
        try:
            branch = response.top_via.branch
        except SipParseError:
            branch = None
        if not branch:
            self._counts["dropped"] += 1
            return
        key = client_key(branch, response.cseq.method)  # §17.1.3
        txn = self._clients.get(key)
        status = response.status
        event = _RECV_1XX if status < 200 else _RECV_2XX if status < 300 else _RECV_FAILURE
        if txn is None:
            if event is _RECV_2XX and key in self._graveyard:
                # A 2xx for an INVITE that ended (Timer M, B, D): the call layer ACKs it
                # and hangs up (RFC 6026 §8.1 leaves it to the TU).
                self._events.append(ResponseReceived(response, peer, None))
            else:
                self._counts["stray_responses"] += 1
            return
        if peer.connection is not None and txn.peer.connection is None:
            # The transport opened a connection for the request: the ACK, the CANCEL and
            # connection_lost() go by it (§18.1.1).
            txn.peer = dataclasses.replace(txn.peer, connection=peer.connection)
        txn.feed(event, now, response, peer)
        if txn.cancel_wanted and not txn.cancel_sent and txn.state is PROCEEDING:
            self._send_cancel(txn, now)

    def _send_cancel(self, invite: ClientTransaction, now: float | None) -> None:
        assert invite.request is not None
        invite.cancel_sent = True
        request = build_cancel(invite.request)
        if self.user_agent is not None:
            request.headers.add("User-Agent", self.user_agent)
        key = client_key(invite.request.top_via.branch or "", "CANCEL")
        txn = ClientTransaction(self, NICT, key, invite.peer, request)
        self._clients[key] = txn
        txn.feed(_START, now)

    # -- helpers ---------------------------------------------------------------------------

    def _tick(self, now: float) -> None:
        if now > self._now:
            self._now = now
        if self.timers._pending:  # anchor() only has work when a TU scheduled blind
            self.timers.anchor(now)

    def _prepare(self, request: Request, peer: Peer) -> str:
        """Fill in the UAC's mandatory bits (§8.1.1); return the top Via branch."""
        headers = request.headers
        if "Via" not in headers:
            branch = self.new_branch()
            proto = peer.transport.upper()
            headers.add("Via", f"SIP/2.0/{proto} {self._sent_by};branch={branch};rport", first=True)
        else:
            via = request.top_via
            branch = via.branch or ""
            if not branch:
                branch = self.new_branch()
                _replace_top_via(headers, via.with_param("branch", branch))
        if "Max-Forwards" not in headers:
            headers.add("Max-Forwards", "70")
        if self.user_agent is not None and "User-Agent" not in headers:
            headers.add("User-Agent", self.user_agent)
        return branch


def _stamp_via(request: Request, via: Via, peer: Peer) -> None:
    """§18.2.1 and RFC 3581 §4: record the source address (and port, when asked) in Via.

    Always adds ``received`` (RFC 3581 requires it with ``rport`` even when it equals
    sent-by; without, it is harmless) so every response says where it was sent.  Works
    on the raw first Via line: re-serialising the parsed Via would cost more than the
    rest of the transaction layer.
    """
    headers = request.headers
    keys = headers._keys
    single = keys.count("via") == 1
    line = headers._items[keys.index("via")][1]
    pieces = split_quoted(line, ",") if "," in line else [line]
    top = pieces[0]
    received = rport = False
    for name, _ in via.params:  # Via.received and Via.has_rport, in one pass
        lname = name if name == "rport" or name == "branch" else name.lower()
        if lname == "rport":
            rport = True
        elif lname == "received":
            received = True
    if received:
        top = _RECEIVED_RE.sub("", top, count=1)
    if rport:
        if (
            top.endswith(";rport")
            and top[-7:-6] not in (" ", "\t")
            and "rport" not in top[:-6].lower()
        ):
            # The usual "...;branch=z9hG4bK...;rport": the trailing flag is the one
            # match _RPORT_RE could find (no other "rport", no LWS before the ';').
            top = f"{top[:-6]};rport={peer.port}"
        else:
            top = _RPORT_RE.sub(f";rport={peer.port}", top, count=1)
    pieces[0] = f"{top};received={peer.host}"
    if single:  # in place, as _set_first_line's set() would
        headers.replace_first("Via", ", ".join(pieces) if len(pieces) > 1 else pieces[0])
        return
    _set_first_line(headers, "Via", headers.get_all("Via"), ", ".join(pieces))


def _replace_top_via(headers: Headers, via: Via) -> None:
    lines = headers.get_all("Via")
    line = lines[0]
    pieces = split_quoted(line, ",") if "," in line else [line]
    pieces[0] = str(via)
    _set_first_line(headers, "Via", lines, ", ".join(pieces))


def _set_first_line(headers: Headers, name: str, lines: list[str], first: str) -> None:
    if len(lines) == 1:
        headers.set(name, first)  # in place
        return
    lines[0] = first
    headers.remove(name)
    for line in reversed(lines):  # Via order is significant: keep it, on top (§20.42)
        headers.add(name, line, first=True)


def _check_address(request: Request, name: str) -> None:
    # The parsed value stays cached on the request, so the TU reads it for free.
    try:
        if name == "From":
            request.from_  # noqa: B018
        else:
            request.to  # noqa: B018
    except SipParseError:
        raise SipParseError(f"Bad {name}") from None
