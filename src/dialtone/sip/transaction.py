"""The SIP transaction machines (RFC 3261 §17, RFC 6026): matching keys and interpreters.

The transitions themselves are one table in :mod:`dialtone.sip.transitions`; the
:class:`ClientTransaction` and :class:`ServerTransaction` here feed it inputs and carry
out its actions (send, retransmit, start/stop a timer, pass to the TU, report, end).
Nothing here does I/O or reads a clock: time arrives as ``now`` and timers are deadlines
in the endpoint's :class:`~dialtone.sip.timers.TimerHeap`.  The endpoint
(:mod:`dialtone.sip.endpoint`) owns the transactions and matches messages to them by
the keys of :func:`client_key` and :func:`server_key` (§17.1.3, §17.2.3).
"""

from __future__ import annotations

from typing import Final, Protocol

from dialtone.sip.errors import SipParseError
from dialtone.sip.events import (
    Event,
    Outgoing,
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionTimeout,
    TransportFailed,
)
from dialtone.sip.headers import Via, parse_name_addr
from dialtone.sip.message import Headers, Request, Response, make_response, trying_bytes
from dialtone.sip.timers import T2, TimerHeap
from dialtone.sip.transitions import (
    DURATIONS,
    INIT,
    IST,
    RETRANSMIT_TIMERS,
    TIMER_INPUTS,
    TRANSITIONS,
    TU_INPUTS,
    Backoff,
    Do,
    Input,
    Kind,
    Start,
    State,
    Stop,
    Timer,
    TransactionStateError,
)
from dialtone.sip.uri import check_twin

__all__ = [
    "MAGIC_COOKIE",
    "ClientTransaction",
    "Kind",
    "ServerTransaction",
    "State",
    "Timer",
    "TimerKey",
    "Transaction",
    "TransactionHost",
    "TransactionStateError",
    "build_ack",
    "build_cancel",
    "client_key",
    "server_key",
]

MAGIC_COOKIE: Final = "z9hG4bK"
"""Branches starting with this were made by RFC 3261 elements and are unique (§8.1.1.7)."""

# Enum members as module globals: reading ``Do.TO_TU`` goes through the enum metaclass
# (~0.15 µs), and the interpreters below compare every action of every row with them.
_SEND_REQUEST, _RESEND_REQUEST, _SEND_ACK = Do.SEND_REQUEST, Do.RESEND_REQUEST, Do.SEND_ACK
_SEND_TRYING, _SEND_RESPONSE = Do.SEND_TRYING, Do.SEND_RESPONSE
_RESEND_RESPONSE, _TO_TU, _DROP_REQUEST = Do.RESEND_RESPONSE, Do.TO_TU, Do.DROP_REQUEST
_REPORT_TIMEOUT, _REPORT_TRANSPORT_ERROR = Do.REPORT_TIMEOUT, Do.REPORT_TRANSPORT_ERROR
_TERMINATE, _FIRST = Do.TERMINATE, Backoff.FIRST

# ---------------------------------------------------------------------------- events

# Every request and response builds one of each; see uri.check_twin for the technique.


class _OutgoingTwin:
    __slots__ = ("data", "peer")
    data: bytes
    peer: Peer


class _RequestReceivedTwin:
    __slots__ = ("peer", "request", "transaction")
    request: Request
    peer: Peer
    transaction: str | None


class _ResponseReceivedTwin:
    __slots__ = ("peer", "response", "transaction")
    response: Response
    peer: Peer
    transaction: str | None


check_twin(_OutgoingTwin, Outgoing)
check_twin(_RequestReceivedTwin, RequestReceived)
check_twin(_ResponseReceivedTwin, ResponseReceived)


def new_outgoing(data: bytes, peer: Peer) -> Outgoing:
    """``Outgoing(data, peer)``, built twice as fast."""
    out = _OutgoingTwin()
    out.data = data
    out.peer = peer
    out.__class__ = Outgoing  # type: ignore[assignment]
    return out  # type: ignore[return-value]


def _request_received(request: Request, peer: Peer, transaction: str | None) -> RequestReceived:
    event = _RequestReceivedTwin()
    event.request = request
    event.peer = peer
    event.transaction = transaction
    event.__class__ = RequestReceived  # type: ignore[assignment]
    return event  # type: ignore[return-value]


def _response_received(response: Response, peer: Peer, transaction: str | None) -> ResponseReceived:
    event = _ResponseReceivedTwin()
    event.response = response
    event.peer = peer
    event.transaction = transaction
    event.__class__ = ResponseReceived  # type: ignore[assignment]
    return event  # type: ignore[return-value]


# ---------------------------------------------------------------------------- keys


def client_key(branch: str, method: str) -> str:
    """The client transaction a response belongs to (§17.1.3): top-Via branch + CSeq method.

    It is also the transaction's id.  Only branches we generated reach here, so the
    branch alone is unique; the method tells the INVITE from its CANCEL.
    """
    return f"c {branch} {method}"


def server_key(request: Request, via: Via, method: str) -> str:
    """The server transaction ``request`` belongs to (§17.2.3); also the transaction id.

    ``method`` is the request's method, except ``"INVITE"`` to find the INVITE an ACK
    (or, per §9.2, a CANCEL) refers to.  With an RFC 3261 branch the key is branch +
    sent-by + method; otherwise the RFC 2543 rule applies: Request-URI, From tag,
    Call-ID, CSeq number and top Via (the To tag is left out, so an ACK, which carries
    the response's tag, still finds its INVITE).  Raises ``SipParseError`` when From or
    CSeq do not parse.
    """
    branch = via.branch
    sent_by = via.sent_by.lower()
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return f"s {branch} {sent_by} {method}"
    from_tag = request.from_.tag or "-"
    seq = request.cseq.seq
    return f"s2543 {request.uri} {from_tag} {request.call_id} {seq} {sent_by} {branch} {method}"


# ---------------------------------------------------------------------------- messages


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK of a non-2xx final response (§17.1.1.3), built by the client transaction.

    Request-URI, Call-ID, From and the CSeq number of the INVITE, To of the response
    (with its tag), the INVITE's top Via only, and its Route headers.
    """
    h = _common_headers(invite)
    # The response's To as received, like make_response copies a request's lines: not
    # re-validated by Headers.add, whose ValueError for a bare CR in it would escape
    # SipEndpoint.receive (the ACK is sent all the same, §17.1.1.3).
    h._items.append(("To", response.headers.get("To") or ""))
    h._keys.append("to")
    h._changed("to")
    h.add("CSeq", f"{invite.cseq.seq} ACK")
    return Request("ACK", invite.uri, h)


def build_cancel(invite: Request) -> Request:
    """The CANCEL of a pending INVITE (§9.1).

    Request-URI, Call-ID, To, From and the CSeq number of the INVITE, its top Via only
    (the INVITE's branch is how the server finds the INVITE to cancel, §9.2) and its
    Route headers.
    """
    h = _common_headers(invite)
    h.add("To", invite.headers.get("To") or "")
    h.add("CSeq", f"{invite.cseq.seq} CANCEL")
    return Request("CANCEL", invite.uri, h)


def _common_headers(invite: Request) -> Headers:
    h = Headers()
    h.add("Via", str(invite.top_via))
    for route in invite.headers.get_all("Route"):
        h.add("Route", route)
    h.add("Max-Forwards", "70")
    h.add("From", invite.headers.get("From") or "")
    h.add("Call-ID", invite.call_id)
    return h


# ---------------------------------------------------------------------------- machines

TimerKey = tuple[str, Timer]
"""What the endpoint's heap holds: (transaction id, timer)."""


class TransactionHost(Protocol):
    """What a transaction needs from its endpoint."""

    timers: TimerHeap[TimerKey]

    def transmit(self, data: bytes, peer: Peer) -> None:
        """Queue bytes for the transport."""

    def emit(self, event: Event) -> None:
        """Queue an event for the TU."""

    def terminated(self, transaction: Transaction, now: float | None) -> None:
        """Forget a transaction that reached Terminated."""


class Transaction:
    """State and timers of one transaction; subclasses interpret the :class:`Do` actions.

    ``id`` is the matching key (:func:`client_key`, :func:`server_key`).  ``peer`` is
    where this side sends: the request's destination for a client, the response's
    (RFC 3261 §18.2.2, RFC 3581) for a server.
    """

    __slots__ = (
        "_host",
        "_interval",
        "_resend",
        "_wait",
        "_zero",
        "id",
        "kind",
        "peer",
        "request",
        "state",
    )

    def __init__(
        self, host: TransactionHost, kind: Kind, txn_id: str, peer: Peer, request: Request
    ) -> None:
        self._host = host
        self.kind = kind
        self.id = txn_id
        self.peer = peer
        self.request: Request | None = request
        self.state = INIT
        # The table runs at most one retransmission timer (A, E, G) and one other timer
        # at a time: two slots of (timer, heap handle) instead of a dict per
        # transaction, a fifth of a completed NIST's memory.
        self._resend: tuple[Timer, int] | None = None
        self._wait: tuple[Timer, int] | None = None
        self._interval = 0.0  # the current A/E/G interval
        self._zero: Timer | None = None  # a zero-duration timer to fire after the row

    def feed(
        self,
        event: Input,
        now: float | None,
        message: Request | Response | None = None,
        peer: Peer | None = None,
    ) -> bool:
        """Apply one input; return False when it was absorbed (no row, rule 3).

        ``message``/``peer`` are the message that caused the input and where it came
        from.  ``now`` None (a TU call that did not say the time) leaves the timers it
        starts to be anchored by the endpoint at its next call that brings the time.
        Raises :class:`TransactionStateError` for a TU input with no row.
        """
        row = TRANSITIONS.get((self.kind, self.state, event))
        if row is None:
            if event in TU_INPUTS:
                raise TransactionStateError(f"{self.kind.value} in {self.state.value}: {event}")
            return False
        self.state = row.next_state
        for action in row.actions:
            if type(action) is Start:
                self._start(action, now)
            elif type(action) is Stop:
                self._stop(action.timer)
            else:
                self._do(action, now, message, peer)  # type: ignore[arg-type]
        zero = self._zero
        if zero is not None:  # rule 1: D, I, J, K of zero fire right away
            self._zero = None
            self.feed(TIMER_INPUTS[zero], now)
        return True

    def fire(self, timer: Timer, now: float) -> None:
        """Feed the expiry of ``timer`` (called by the endpoint for due heap keys)."""
        if timer in RETRANSMIT_TIMERS:
            slot = self._resend
            if slot is None or slot[0] is not timer:
                return
            self._resend = None
        else:
            slot = self._wait
            if slot is None or slot[0] is not timer:
                return
            self._wait = None
        self.feed(TIMER_INPUTS[timer], now)

    def timer_running(self, timer: Timer) -> bool:
        """True while ``timer`` is scheduled."""
        slot = self._resend if timer in RETRANSMIT_TIMERS else self._wait
        return slot is not None and slot[0] is timer

    def _start(self, start: Start, now: float | None) -> None:
        timer = start.timer
        unreliable, reliable = DURATIONS[timer]
        first = unreliable if self.peer.transport == "udp" else reliable
        if first is None:
            return
        backoff = start.backoff
        if backoff is _FIRST:
            duration = first
        elif backoff is Backoff.DOUBLE:
            duration = 2 * self._interval
        elif backoff is Backoff.DOUBLE_TO_T2:
            duration = min(2 * self._interval, T2)
        else:
            duration = T2
        resend = timer in RETRANSMIT_TIMERS
        if resend:
            self._interval = duration
        if duration <= 0:
            self._zero = timer
            return
        timers = self._host.timers
        old = self._resend if resend else self._wait
        if old is not None:  # defensive: fire() and the rows Stop before a Start
            timers.cancel(old[1])
        key = (self.id, timer)
        if now is None:
            handle = timers.schedule_later(duration, key)
        else:
            handle = timers.schedule(now + duration, key)
        if resend:
            self._resend = (timer, handle)
        else:
            self._wait = (timer, handle)

    def _stop(self, timer: Timer) -> None:
        if timer in RETRANSMIT_TIMERS:
            slot = self._resend
            if slot is not None and slot[0] is timer:
                self._resend = None
                self._host.timers.cancel(slot[1])
        else:
            slot = self._wait
            if slot is not None and slot[0] is timer:
                self._wait = None
                self._host.timers.cancel(slot[1])

    def _terminate(self, now: float | None) -> None:
        timers = self._host.timers
        if self._resend is not None:
            timers.cancel(self._resend[1])
            self._resend = None
        if self._wait is not None:
            timers.cancel(self._wait[1])
            self._wait = None
        self._host.terminated(self, now)

    def _do(
        self, action: Do, now: float | None, message: Request | Response | None, peer: Peer | None
    ) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind.name} {self.state.name} {self.id}>"


class ClientTransaction(Transaction):
    """An ICT or NICT: sends the request, retransmits it, matches responses to the TU.

    ``cancel_wanted``/``cancel_sent`` belong to the endpoint's CANCEL rule (§9.1: a
    CANCEL only after a provisional response).
    """

    __slots__ = ("_ack", "_data", "cancel_sent", "cancel_wanted")

    def __init__(
        self, host: TransactionHost, kind: Kind, txn_id: str, peer: Peer, request: Request
    ) -> None:
        super().__init__(host, kind, txn_id, peer, request)
        self._data = request.to_bytes()
        self._ack: bytes | None = None
        self.cancel_wanted = False
        self.cancel_sent = False

    def _do(
        self, action: Do, now: float | None, message: Request | Response | None, peer: Peer | None
    ) -> None:
        host = self._host
        if action is _SEND_REQUEST or action is _RESEND_REQUEST:
            host.transmit(self._data, self.peer)
        elif action is _TO_TU:
            assert isinstance(message, Response)
            host.emit(_response_received(message, peer or self.peer, self.id))
        elif action is _SEND_ACK:
            # §17.1.1.3: the same ACK for every retransmission of the final response,
            # to the same address, port and transport (connection) as the INVITE.
            if self._ack is None:
                assert isinstance(message, Response) and self.request is not None
                self._ack = build_ack(self.request, message).to_bytes()
            host.transmit(self._ack, self.peer)
        elif action is _REPORT_TIMEOUT:
            assert self.request is not None
            host.emit(TransactionTimeout(self.id, self.request))
        elif action is _REPORT_TRANSPORT_ERROR:
            assert self.request is not None
            host.emit(TransportFailed(self.id, self.request))
        elif action is _TERMINATE:
            self._terminate(now)
        else:  # pragma: no cover - the table gives clients no other action
            raise AssertionError(action)


class ServerTransaction(Transaction):
    """An IST or NIST: passes the request up, sends the TU's responses, absorbs retransmits.

    ``to_tag`` is the To tag of the IST's first tagged response, for the 200 to a CANCEL
    (§9.2: "SHOULD be the same").
    """

    __slots__ = ("_last", "_to_lines", "_to_tag")

    def __init__(
        self, host: TransactionHost, kind: Kind, txn_id: str, peer: Peer, request: Request
    ) -> None:
        # Transaction.__init__, inline: one server transaction per request received.
        self._host = host
        self.kind = kind
        self.id = txn_id
        self.peer = peer
        self.request: Request | None = request
        self.state = INIT
        self._resend: tuple[Timer, int] | None = None
        self._wait: tuple[Timer, int] | None = None
        self._interval = 0.0
        self._zero: Timer | None = None
        self._last: bytes | None = None
        self._to_tag: str | None = None
        # The To lines of the IST's responses above 100 not looked at yet, in order:
        # only a CANCEL wants the tag, so the To is parsed when to_tag is read (with
        # the parse being a function of the line, reading it later is the same).
        self._to_lines: list[str | None] | None = None

    @property
    def to_tag(self) -> str | None:
        """The To tag of the first response above 100 that had one (IST only)."""
        lines = self._to_lines
        if self._to_tag is None and lines:
            self._to_lines = None
            for line in lines:
                tag = _line_tag(line)
                if tag is not None:
                    self._to_tag = tag
                    break
        return self._to_tag

    @property
    def last_response(self) -> bytes | None:
        """The bytes of the last response sent (what a retransmission gets)."""
        return self._last

    def _do(
        self, action: Do, now: float | None, message: Request | Response | None, peer: Peer | None
    ) -> None:
        host = self._host
        if action is _SEND_RESPONSE:
            assert isinstance(message, Response)
            self._last = data = message.to_bytes()
            host.transmit(data, self.peer)
            if self.kind is IST and self._to_tag is None and message.status > 100:
                self._note_to(message)
        elif action is _RESEND_RESPONSE:
            if self._last is not None:
                host.transmit(self._last, self.peer)
        elif action is _TO_TU:
            assert isinstance(message, Request)
            txn = None if message.method == "ACK" else self.id
            host.emit(_request_received(message, peer or self.peer, txn))
        elif action is _SEND_TRYING:
            assert self.request is not None
            built = trying_bytes(self.request)  # what the lines below give, built directly
            if built is None:  # a Timestamp that Headers.add refuses: its ValueError
                trying = make_response(self.request, 100)
                timestamp = self.request.headers.get("Timestamp")
                if timestamp is not None:  # §8.2.6.1: a 100 copies Timestamp
                    trying.headers.add("Timestamp", timestamp)
                built = trying.to_bytes()
            self._last = built
            host.transmit(built, self.peer)
        elif action is _DROP_REQUEST:
            self.request = None
        elif action is _REPORT_TIMEOUT:
            assert self.request is not None
            host.emit(TransactionTimeout(self.id, self.request))
        elif action is _REPORT_TRANSPORT_ERROR:
            if self.request is not None:
                host.emit(TransportFailed(self.id, self.request))
        elif action is _TERMINATE:
            self._terminate(now)
        else:  # pragma: no cover - the table gives servers no other action
            raise AssertionError(action)

    def _note_to(self, response: Response) -> None:
        # What to_tag will parse: the first To line (Message.to's), None when absent.
        line = response.headers.get("To")
        lines = self._to_lines
        if lines is None:
            self._to_lines = [line]
        elif lines[-1] != line:  # a retransmitted 2xx adds nothing
            lines.append(line)
            if len(lines) > 8:  # bounded: look at them now
                self.to_tag  # noqa: B018


def _line_tag(line: str | None) -> str | None:
    # response.to.tag of a response whose first To line is ``line``; None on an error.
    if line is None:
        return None
    try:
        return parse_name_addr(line).tag
    except SipParseError:
        return None
