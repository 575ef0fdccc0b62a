"""SIP dialogs (RFC 3261 §12): what every dialog does, and the registry of them.

A :class:`Dialog` is one peer-to-peer relationship: its id (Call-ID, local tag, remote
tag), the local and remote URIs, the remote target (the peer's Contact), the route set
and the two CSeq counters (§12).  It builds the requests sent inside it (§12.2.1.1: BYE,
re-INVITE, INFO, OPTIONS, and the ACK of a 2xx, §13.2.2.4), answers those received
(§12.2.2, :meth:`Dialog.handle_request`), and, as the UAS of any INVITE in it,
retransmits the 2xx until its ACK comes (§13.3.1.4).  How a dialog is born is in
:mod:`dialtone.sip.dialog_uas` (an INVITE we answer, §12.1.1) and
:mod:`dialtone.sip.dialog_uac` (responses to our INVITE, with forking, §12.1.2).

Sans-IO like the endpoint: nothing here sends, sleeps or reads a clock.  Methods return
the messages to send (requests with ``endpoint.send_request``, an ACK with
``send_stateless``, responses with ``endpoint.respond``); time arrives as ``now``, and
:meth:`DialogSet.next_deadline`/:meth:`DialogSet.on_timer` drive the 2xx
retransmissions of all dialogs next to the endpoint's own timer.  The secure flag of
§12.1 is not kept: dialtone offers no TLS (spec SIP-1).
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple

from dialtone.sip.endpoint import check_method
from dialtone.sip.errors import SipParseError
from dialtone.sip.events import Peer
from dialtone.sip.headers import NameAddr, parse_name_addr_list
from dialtone.sip.message import Headers, Message, Request, Response, make_response
from dialtone.sip.sdp import (
    Direction,
    MediaChoice,
    SdpError,
    accept_answer,
    negotiate_answer,
    parse_sdp,
)
from dialtone.sip.timers import T1, T2, TIMER_64T1
from dialtone.sip.uri import SipUri, check_twin

if TYPE_CHECKING:
    from dialtone.sip.dialog_set import DialogSet

__all__ = [
    "ALLOW_IN_DIALOG",
    "AckTimeout",
    "Dialog",
    "DialogId",
    "DialogSet",
    "DialogState",
    "DialogStateError",
    "DtmfInfo",
    "Handled",
    "Resend",
    "TimerEvent",
    "UacResult",
    "contact_target",
    "parse_dtmf_relay",
    "peer_for",
    "record_route",
]

ALLOW_IN_DIALOG: Final = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE")
"""The methods a dialog serves (spec SIP-11); others get 405/501 with this ``Allow``."""

_SDP: Final = "application/sdp"
_TARGET_REFRESH: Final = frozenset({"INVITE", "UPDATE"})  # §12.2, RFC 3311 §5.1
_DTMF_EVENTS: Final = "0123456789*#ABCD"  # RFC 4733 §3.2: event codes 0-15


_WireTexts = tuple[str, tuple[str, ...], str, str]
# What the texts were made from (local_party, remote_party, remote_target, route_set),
# and the texts: see Dialog._wire_texts.
_Wire = tuple[NameAddr, NameAddr, SipUri, tuple[NameAddr, ...], _WireTexts]


_new_tuple = tuple.__new__


class DialogState(enum.Enum):
    """§12: a dialog is early (1xx with To tag), confirmed (2xx), then terminated."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


EARLY, CONFIRMED, TERMINATED = DialogState.EARLY, DialogState.CONFIRMED, DialogState.TERMINATED


class DialogStateError(RuntimeError):
    """The caller asked a dialog for something its state forbids (a BYE after the BYE)."""


class DialogId(NamedTuple):
    """§12: Call-ID, local tag, remote tag (``""`` for an RFC 2543 peer without tag)."""

    call_id: str
    local_tag: str
    remote_tag: str


@dataclass(frozen=True, slots=True)
class Resend:
    """Send ``response`` (a 2xx to an INVITE) again: ``endpoint.respond(transaction, r)``.

    ``transaction`` is what the caller passed with the 2xx; None when it passed none
    (then ``endpoint.send_stateless(r, response_peer(invite.top_via, source))``).
    """

    dialog: Dialog
    response: Response
    transaction: str | None


@dataclass(frozen=True, slots=True)
class AckTimeout:
    """No ACK for a 2xx in 64*T1 (§13.3.1.4): the caller ends the session with a BYE."""

    dialog: Dialog


TimerEvent = Resend | AckTimeout


@dataclass(frozen=True, slots=True)
class DtmfInfo:
    """A digit from an INFO ``application/dtmf-relay`` body (spec VRB-5)."""

    digit: str
    duration_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Handled:
    """The answer to an in-dialog request and what it means for the call.

    ``ended``: a BYE ended the dialog.  ``dtmf``: an INFO carried a digit.  ``media``:
    a re-INVITE/UPDATE offer was accepted, these are the new media parameters (a hold
    gives ``direction`` ``recvonly`` or ``inactive``: stop sending).
    """

    response: Response
    ended: bool = False
    dtmf: DtmfInfo | None = None
    media: MediaChoice | None = None


@dataclass(frozen=True, slots=True)
class UacResult:
    """What to do with a response to our INVITE (:mod:`dialtone.sip.dialog_uac`).

    Send ``ack`` with ``endpoint.send_stateless`` and then ``bye`` with
    ``endpoint.send_request``, both to ``peer_for(dialog.next_hop())`` (or the flow the
    INVITE went by).  ``answered`` is true once, for the 2xx the branch keeps;
    ``retransmission`` for a 2xx already ACKed (only the ACK is sent again).
    """

    dialog: Dialog | None = None
    ack: Request | None = None
    bye: Request | None = None
    answered: bool = False
    retransmission: bool = False


class _UacResultTwin:
    __slots__ = ("ack", "answered", "bye", "dialog", "retransmission")
    dialog: Dialog | None
    ack: Request | None
    bye: Request | None
    answered: bool
    retransmission: bool


class _HandledTwin:
    __slots__ = ("dtmf", "ended", "media", "response")
    response: Response
    ended: bool
    dtmf: DtmfInfo | None
    media: MediaChoice | None


check_twin(_UacResultTwin, UacResult)
check_twin(_HandledTwin, Handled)


def uac_result(
    dialog: Dialog | None, ack: Request | None = None, *, answered: bool = False
) -> UacResult:
    """``UacResult(dialog, ack=ack, answered=answered)`` for the per-response results of
    :mod:`dialtone.sip.dialog_uac`, without the frozen dataclass's ``__init__``."""
    result = _UacResultTwin()
    result.dialog = dialog
    result.ack = ack
    result.bye = None
    result.answered = answered
    result.retransmission = False
    result.__class__ = UacResult  # type: ignore[assignment]  # see uri.check_twin
    return result  # type: ignore[return-value]


def _handled(response: Response, ended: bool = False) -> Handled:
    # Handled(response, ended=ended), likewise (a BYE's answer).
    handled = _HandledTwin()
    handled.response = response
    handled.ended = ended
    handled.dtmf = None
    handled.media = None
    handled.__class__ = Handled  # type: ignore[assignment]  # see uri.check_twin
    return handled  # type: ignore[return-value]


class _Pending2xx:
    """A 2xx to an INVITE awaiting its ACK (§13.3.1.4); ``due`` None: reliable transport."""

    __slots__ = ("due", "give_up", "interval", "response", "seq", "transaction")

    def __init__(
        self, seq: int, response: Response, transaction: str | None, now: float, reliable: bool
    ) -> None:
        self.seq = seq
        self.response = response
        self.transaction = transaction
        self.interval = T1
        self.due: float | None = None if reliable else now + T1
        self.give_up = now + TIMER_64T1


class Dialog:
    """The state of one dialog (§12) and the requests and responses it makes.

    ``local_party``/``remote_party`` are the From/To values of our requests in it (URI,
    display name and tag); ``route_set`` is in the order Route headers get (§12.1.1,
    §12.1.2: reversed for a UAC); ``local_seq`` is the CSeq of our last request (None:
    none yet) and ``remote_seq`` the peer's; ``local_sdp`` is our current session
    description (the last offer or answer we sent).
    """

    __slots__ = (
        "_ack",
        "_acked_seq",
        "_invite_pending",
        "_local_tag",
        "_offer_seq",
        "_pending",
        "_registry",
        "_remote_tag",
        "_wire",
        "call_id",
        "local_contact",
        "local_party",
        "local_sdp",
        "local_seq",
        "remote_party",
        "remote_seq",
        "remote_target",
        "route_set",
        "state",
    )

    def __init__(
        self,
        *,
        call_id: str,
        local_party: NameAddr,
        remote_party: NameAddr,
        remote_target: SipUri,
        route_set: Iterable[NameAddr] = (),
        local_seq: int | None = None,
        remote_seq: int | None = None,
        local_contact: str | None = None,
        local_sdp: bytes | None = None,
        state: DialogState = EARLY,
    ) -> None:
        self.call_id = call_id
        self.local_party = local_party
        self.remote_party = remote_party
        self.remote_target = remote_target
        self.route_set = tuple(route_set)
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.local_contact = local_contact
        self.local_sdp = local_sdp
        self.state = state
        self._pending: _Pending2xx | None = None
        self._acked_seq: int | None = None
        self._ack: Request | None = None  # the ACK of our last 2xx-answered INVITE
        self._invite_pending = False  # our own re-INVITE awaits its final response
        self._offer_seq: int | None = None  # the offerless re-INVITE our 2xx offered in
        self._registry: DialogSet | None = None
        self._local_tag: tuple[NameAddr, str] | None = None  # see local_tag
        self._remote_tag: tuple[NameAddr, str] | None = None
        self._wire: _Wire | None = None  # see _wire_texts

    # -- identity ------------------------------------------------------------------------

    @property
    def id(self) -> DialogId:
        """(Call-ID, local tag, remote tag): the key of :class:`DialogSet`."""
        # DialogId(...) without the NamedTuple's Python-level __new__.
        return _new_tuple(DialogId, (self.call_id, self.local_tag, self.remote_tag))

    # The tags are read for every message of the dialog (matching, the DialogSet key):
    # each is kept with the party it was read from, which is immutable, so it is read
    # again only when the attribute is given another party.

    @property
    def local_tag(self) -> str:
        """Our tag (From of our requests, To of theirs)."""
        party = self.local_party
        known = self._local_tag
        if known is None or known[0] is not party:
            known = self._local_tag = (party, party.tag or "")
        return known[1]

    @property
    def remote_tag(self) -> str:
        """The peer's tag; ``""`` when it sent none (RFC 2543, §12.2.2)."""
        party = self.remote_party
        known = self._remote_tag
        if known is None or known[0] is not party:
            known = self._remote_tag = (party, party.tag or "")
        return known[1]

    def match(self, message: Message) -> bool:
        """True when ``message`` belongs here: a request from the peer (To tag = ours), or
        a response to one of our requests (From tag = ours)."""
        try:
            if isinstance(message, Request):
                local, remote = message.to.tag, message.from_.tag
            else:
                local, remote = message.from_.tag, message.to.tag
            call_id = message.call_id
        except SipParseError:
            return False
        return (
            call_id == self.call_id
            and (local or "") == self.local_tag
            and (remote or "") == self.remote_tag
        )

    def next_hop(self) -> SipUri:
        """Where our requests go (§8.1.2, §12.2.1.1): the first route, else the remote
        target.  Resolve it with :func:`peer_for` (or send by the INVITE's flow)."""
        return self.route_set[0].uri if self.route_set else self.remote_target

    def terminate(self) -> None:
        """End the dialog without a message (§12.3): after a BYE, a 481/408 to a request
        in it (§12.2.1.2), a non-2xx final on an early dialog.  Idempotent."""
        if self.state is TERMINATED:
            return
        self.state = TERMINATED
        self._set_pending(None)
        if self._registry is not None:
            self._registry._forget(self)

    # -- our requests (§12.2.1) ----------------------------------------------------------

    def build_request(
        self,
        method: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        content_type: str | None = None,
    ) -> Request:
        """A new request in this dialog (§12.2.1.1), with the next local CSeq.

        Request-URI and Route follow the route set: loose routing (``;lr``, §16.12) sends
        to the remote target through every route; a strict router first (RFC 2543) gets
        the Request-URI and the remote target goes last in Route.  Target refreshes
        (INVITE, UPDATE) carry our Contact.  A body without ``content_type`` is SDP.
        """
        if method in ("ACK", "CANCEL"):
            raise ValueError(f"{method} is not a new request: use build_ack / the endpoint")
        if self.state is TERMINATED:
            raise DialogStateError(f"{method} on a terminated dialog")
        if method == "INVITE":
            if self.state is EARLY:  # §14.1: a re-INVITE needs a confirmed dialog
                raise DialogStateError("re-INVITE on an early dialog")
            if self._invite_pending or self._pending is not None:
                raise DialogStateError("an INVITE is in progress in this dialog (§14.1)")
            self._invite_pending = True
        self.local_seq = seq = (self.local_seq or 0) + 1
        return self._new_request(method, seq, headers, body, content_type)

    def build_bye(self, headers: Iterable[tuple[str, str]] = ()) -> Request:
        """The BYE that ends this dialog (§15.1.1); the dialog is terminated at once."""
        request = self.build_request("BYE", headers)
        self.terminate()
        return request

    def build_ack(
        self, response: Response, body: bytes = b"", *, content_type: str | None = None
    ) -> Request:
        """The ACK of a 2xx to an INVITE of ours (§13.2.2.4): in-dialog routing, the
        INVITE's CSeq number, method ACK, no Via (the endpoint adds one with a new
        branch).  A retransmitted 2xx gets the very same ACK (same branch)."""
        seq = response.cseq.seq
        ack = self._ack
        if ack is not None and ack.cseq.seq == seq:
            return ack
        if self.state is TERMINATED:
            raise DialogStateError("ACK on a terminated dialog")
        ack = self._new_request("ACK", seq, self._ack_headers(seq), body, content_type)
        self._ack = ack
        return ack

    def acked(self, seq: int) -> bool:
        """True when our INVITE ``seq`` got a 2xx we ACKed (its retransmissions re-ACK)."""
        return self._ack is not None and self._ack.cseq.seq == seq

    def response_received(self, response: Response) -> Request | None:
        """A response to our request in this dialog; returns the ACK to send, if any.

        A 2xx to a re-INVITE is ACKed (§13.2.2.4) and, like a 2xx to UPDATE, refreshes
        the remote target (§12.2.1.2); a 481 or 408 ends the dialog (§12.2.1.2).
        """
        status, method = response.status, response.cseq.method
        if status < 200:
            return None
        if method == "INVITE":
            self._invite_pending = False
        if status in (408, 481):
            self.terminate()
            return None
        if status >= 300 or method not in _TARGET_REFRESH:
            return None
        self.remote_target = contact_target(response, self.remote_target)
        return self.build_ack(response) if method == "INVITE" else None

    def _ack_headers(self, seq: int) -> Iterable[tuple[str, str]]:
        """Extra headers of the ACK for INVITE ``seq`` (a UAC adds its credentials)."""
        return ()

    def _new_request(
        self,
        method: str,
        seq: int,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        content_type: str | None,
    ) -> Request:
        uri, routes, local, remote = self._wire_texts()
        lines = [("Route", route) for route in routes]
        lines += (("From", local), ("To", remote), ("Call-ID", self.call_id))
        lines.append(("CSeq", f"{seq} {method}"))
        if method in _TARGET_REFRESH and self.local_contact is not None:
            lines.append(("Contact", self.local_contact))  # §12.2.1.1, RFC 3311 §5.1
        h = Headers(lines)
        for name, value in headers:
            h.add(name, value)
        if body and "Content-Type" not in h:
            h.add("Content-Type", content_type or _SDP)
        return Request(method, uri, h, body)

    def _wire_texts(self) -> _WireTexts:
        """Request-URI, Route values, From and To of our requests, as text.

        Serialised once per dialog and kept while the objects they come from are the
        same ones (each is immutable: NameAddr and SipUri are frozen, the route set a
        tuple of them), so an ACK and a BYE do not serialise the same URIs twice.
        """
        local, remote, target, routes = (
            self.local_party,
            self.remote_party,
            self.remote_target,
            self.route_set,
        )
        wire = self._wire
        if (
            wire is not None
            and wire[0] is local
            and wire[1] is remote
            and wire[2] is target
            and wire[3] is routes
        ):
            return wire[4]
        uri, route_lines = self._request_uri_and_routes()
        texts = (uri, tuple(route_lines), str(local), str(remote))
        if type(routes) is tuple:  # a list put there by hand could change under us
            self._wire = (local, remote, target, routes, texts)
        return texts

    def _request_uri_and_routes(self) -> tuple[str, list[str]]:
        target = _as_request_uri(self.remote_target)
        if not self.route_set:
            return str(target), []
        first = self.route_set[0]
        if first.uri.has_param("lr"):  # loose routing (§16.12): Route as it is
            return str(target), [str(route) for route in self.route_set]
        # §12.2.1.1 strict routing: the first route is the Request-URI, the remote
        # target goes last in Route.
        routes = [str(route) for route in self.route_set[1:]]
        routes.append(f"<{target}>")
        return str(_as_request_uri(first.uri)), routes

    # -- their requests (§12.2.2) --------------------------------------------------------

    def handle_request(
        self, request: Request, now: float, *, transaction: str | None = None
    ) -> Handled:
        """Answer a request the peer sent in this dialog (not ACK, not CANCEL).

        Out-of-order CSeq → 500 (§12.2.2); BYE → 200, terminated (§15.1.2); re-INVITE
        and UPDATE → 200 with our current SDP, the offer's hold direction mirrored (spec
        SIP-11; no common codec → 488, session unchanged, §14.2); INFO → 200, with a
        dtmf-relay digit in ``dtmf``; OPTIONS → 200; other methods 405/501.  A 2xx to a
        re-INVITE is retransmitted until its ACK (:meth:`on_timer`; ``transaction``
        is handed back in :class:`Resend`).  Send ``.response`` in the request's server
        transaction.
        """
        method = request.method
        if method in ("ACK", "CANCEL"):
            raise ValueError(f"{method} is not answered by the dialog")
        if self.state is TERMINATED or not self.match(request):
            return Handled(make_response(request, 481))
        seq = request.cseq.seq
        if self.remote_seq is not None and seq <= self.remote_seq:
            # §12.2.2: lower is out of order.  Equal is not "in order" either: it is a
            # request whose transaction ended (an INVITE retransmitted after Timer L).
            return Handled(make_response(request, 500, "CSeq Out of Order"))
        self.remote_seq = seq
        if method == "BYE":
            self.terminate()
            return _handled(make_response(request, 200), True)
        if method in _TARGET_REFRESH:
            return self._refresh(request, now, transaction)
        if method == "INFO":
            return Handled(make_response(request, 200), dtmf=_info_dtmf(request))
        if method == "OPTIONS":  # §11.2
            allow = ("Allow", ", ".join(ALLOW_IN_DIALOG))
            return Handled(make_response(request, 200, headers=[allow, ("Accept", _SDP)]))
        refused = check_method(request, ALLOW_IN_DIALOG, to_tag=self.local_tag)
        return Handled(refused or make_response(request, 200))

    def _refresh(self, request: Request, now: float, transaction: str | None) -> Handled:
        """re-INVITE or UPDATE (§14.2, RFC 3311): answered locally (spec SIP-11)."""
        invite = request.method == "INVITE"
        if invite and self.state is EARLY:
            # §14.2: an INVITE before the final response to the first one.
            retry = ("Retry-After", str(secrets.randbelow(11)))
            return Handled(make_response(request, 500, headers=[retry]))
        if invite and self._invite_pending:
            return Handled(make_response(request, 491))  # §14.2: glare
        body, choice, offered = b"", None, False
        try:
            if request.body:
                if request.content_type != _SDP:  # §8.2.3
                    return Handled(make_response(request, 415, headers=[("Accept", _SDP)]))
                body, choice = _answer(self.local_sdp, request.body)
            elif invite and self.local_sdp:
                body = _reoffer(self.local_sdp)  # an offerless re-INVITE: we offer (§14.2)
                offered = True
        except SdpError as err:
            status = 488 if err.no_common_codec else 400
            return Handled(make_response(request, status, "Bad SDP" if status == 400 else None))
        headers = [("Contact", self.local_contact)] if self.local_contact else []
        response = make_response(request, 200, headers=headers)
        if body:
            response.body = body
            response.headers.add("Content-Type", _SDP)
            self.local_sdp = body
        self.remote_target = contact_target(request, self.remote_target)  # §12.2.2
        if invite:
            # A new INVITE means the peer is done with the previous one (§14.1): its ACK,
            # if still awaited, was lost; this 2xx takes over the retransmissions.
            self._offer_seq = request.cseq.seq if offered else None
            self._start_2xx(request, response, transaction, now)
        return Handled(response, media=choice)

    # -- 2xx retransmission, UAS side (§13.3.1.4) --------------------------------------

    def _start_2xx(
        self, invite: Request, response: Response, transaction: str | None, now: float
    ) -> None:
        """Retransmit ``response``, our 2xx to ``invite``, until its ACK (§13.3.1.4).

        Over UDP only: a reliable transport delivers the 2xx itself (as Timer G is not
        run on TCP, §17.2.1); the ACK is awaited 64*T1 on every transport.
        """
        pending = _Pending2xx(invite.cseq.seq, response, transaction, now, _reliable(invite))
        self._set_pending(pending)

    def ack_received(self, ack: Request) -> bool:
        """An ACK from the peer: True when it ACKs one of our 2xx (same CSeq number as
        the INVITE, §13.3.1.4); the first one stops the retransmissions."""
        if ack.method != "ACK" or not self.match(ack):
            return False
        seq = ack.cseq.seq
        pending = self._pending
        if pending is not None and pending.seq == seq:
            self._acked_seq = seq
            self._set_pending(None)
            return True
        return seq == self._acked_seq  # the ACK of a 2xx retransmission

    def answer_in_ack(self, ack: Request) -> MediaChoice | None:
        """The media the peer's answer in ``ack`` agrees, when our 2xx to its offerless
        re-INVITE carried the offer (RFC 3261 §14.2, RFC 3264 §4); else None.

        A retransmitted ACK gives the same answer again (configuring it twice is
        harmless); an answer that cannot be used is None and the session stays as it was.
        """
        if self._offer_seq is None or ack.cseq.seq != self._offer_seq or not ack.body:
            return None
        if not self.match(ack) or ack.content_type != _SDP:
            return None
        try:
            return accept_answer(parse_sdp(ack.body))
        except SdpError:
            return None

    @property
    def awaiting_ack(self) -> bool:
        """True while a 2xx of ours waits for its ACK."""
        return self._pending is not None

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` must run next; None when no 2xx waits for an ACK."""
        pending = self._pending
        if pending is None:
            return None
        due = pending.due
        return pending.give_up if due is None else min(due, pending.give_up)

    def on_timer(self, now: float) -> list[TimerEvent]:
        """Fire what is due: a :class:`Resend` of the 2xx at T1, 2*T1, ... capped at T2
        (UDP only), an :class:`AckTimeout` at 64*T1 (§13.3.1.4)."""
        pending = self._pending
        if pending is None:
            return []
        if now >= pending.give_up:
            self._set_pending(None)
            return [AckTimeout(self)]
        due = pending.due
        if due is None or now < due:
            return []
        while due <= now:  # a late call resends once and catches up with the schedule
            pending.interval = min(2 * pending.interval, T2)
            due += pending.interval
        pending.due = due
        return [Resend(self, pending.response, pending.transaction)]

    def _set_pending(self, pending: _Pending2xx | None) -> None:
        self._pending = pending
        if self._registry is not None:
            self._registry._timing(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.state.value} {tuple(self.id)}>"


# ---------------------------------------------------------------------------- helpers


def record_route(message: Message, *, strict: bool = True) -> list[NameAddr]:
    """Every Record-Route value of ``message``, in order (§12.1.1, §20.30).

    ``strict=False`` (for responses: a 2xx must still be ACKed) returns ``[]`` when they
    do not parse instead of raising ``SipParseError``.
    """
    try:
        lines = message.headers.get_all("Record-Route")
        return [route for line in lines for route in parse_name_addr_list(line)]
    except SipParseError:
        if strict:
            raise
        return []


def contact_target(message: Message, fallback: SipUri) -> SipUri:
    """The URI of the single Contact of ``message`` (§12.1), else ``fallback``."""
    try:
        contacts = message.contacts
    except SipParseError:
        return fallback
    if len(contacts) != 1 or contacts[0].is_wildcard:
        return fallback
    return contacts[0].uri


def peer_for(uri: SipUri, default_transport: str = "udp") -> Peer:
    """The transport address of ``uri`` without DNS (RFC 3263 is the caller's): its
    host (an IP address), port (default 5060) and ``transport`` parameter.  ``sips:``
    needs TLS, which dialtone does not offer: ValueError."""
    if uri.is_secure:
        raise ValueError("a sips: URI needs TLS")
    transport = uri.transport or default_transport
    if transport not in ("udp", "tcp"):
        raise ValueError(f"transport {transport!r} is not supported")
    host = uri.host[1:-1] if uri.host.startswith("[") else uri.host
    return Peer("udp" if transport == "udp" else "tcp", host, uri.port or 5060)


def parse_dtmf_relay(body: bytes) -> DtmfInfo | None:
    """The digit of an ``application/dtmf-relay`` body (``Signal=5``, ``Duration=160``).

    Signals are ``0-9 * # A-D`` or their RFC 4733 event codes (``10`` is ``*``); anything
    else gives None.
    """
    fields: dict[str, str] = {}
    for line in body.decode("ascii", "replace").splitlines():
        key, eq, value = line.partition("=")
        if eq:
            fields[key.strip().lower()] = value.strip()
    digit = _dtmf_digit(fields.get("signal", ""))
    if digit is None:
        return None
    duration = fields.get("duration", "")
    ms = int(duration) if duration.isascii() and duration.isdigit() and len(duration) < 9 else None
    return DtmfInfo(digit, ms)


def _dtmf_digit(signal: str) -> str | None:
    signal = signal.upper()
    if len(signal) == 1 and signal in _DTMF_EVENTS:
        return signal
    if signal.isascii() and signal.isdigit() and len(signal) == 2 and int(signal) < 16:
        return _DTMF_EVENTS[int(signal)]
    return None


def _info_dtmf(request: Request) -> DtmfInfo | None:
    ctype = request.content_type
    if ctype == "application/dtmf-relay":
        return parse_dtmf_relay(request.body)
    if ctype == "application/dtmf":  # a bare digit
        digit = _dtmf_digit(request.body.decode("ascii", "replace").strip())
        return None if digit is None else DtmfInfo(digit)
    return None


def _reliable(request: Request) -> bool:
    """Whether the response to ``request`` goes over a reliable transport (§17.2.1)."""
    try:
        return request.top_via.transport != "UDP"
    except SipParseError:
        return False


def _as_request_uri(uri: SipUri) -> SipUri:
    """§19.1.1 Table 1: no ``method`` parameter and no headers in a Request-URI."""
    if uri.has_param("method"):
        uri = uri.without_params("method")
    return uri.replace(headers=()) if uri.headers else uri


def dialog_from_response(response: Response) -> Dialog:
    """A UAC dialog (§12.1.2) from a 2xx alone, to ACK and BYE an unwanted answer."""
    return Dialog(
        call_id=response.call_id,
        local_party=response.from_,
        remote_party=response.to,
        remote_target=contact_target(response, response.to.uri),
        route_set=reversed(record_route(response, strict=False)),
        local_seq=response.cseq.seq,
        state=CONFIRMED,
    )


# ---------------------------------------------------------------------------- SDP


def _local_media(sdp: bytes) -> tuple[str, int, int, int]:
    """Our media address, port, o= session id and version from our current SDP."""
    ours = parse_sdp(sdp)
    for media in ours.media:
        connection = media.connection or ours.connection
        if media.media == "audio" and media.port and connection is not None:
            origin = ours.origin
            if not (origin.session_id.isdigit() and origin.session_version.isdigit()):
                break
            return connection.host, media.port, int(origin.session_id), int(origin.session_version)
    # Not the peer's fault: answered 488 (session unchanged) rather than 400.
    raise SdpError("our own SDP has no audio stream", no_common_codec=True)


def _answer(local_sdp: bytes | None, offer_body: bytes) -> tuple[bytes, MediaChoice]:
    """Answer a new offer in the dialog at our current address (spec SIP-11, SIP-12).

    :func:`negotiate_answer` mirrors the offered direction (sendonly → recvonly,
    inactive → inactive); the o= version goes up by one only when the description
    changed (RFC 3264 §8).
    """
    if not local_sdp:
        raise SdpError("no local SDP to answer with", no_common_codec=True)
    offer = parse_sdp(offer_body)
    address, port, session_id, version = _local_media(local_sdp)
    answer = negotiate_answer(offer, address, port, session_id=session_id, version=version)
    data = answer.sdp.to_bytes()
    if data != local_sdp:
        answer = negotiate_answer(offer, address, port, session_id=session_id, version=version + 1)
        data = answer.sdp.to_bytes()
    return data, answer


def _reoffer(local_sdp: bytes) -> bytes:
    """Our offer in the 2xx of an offerless re-INVITE: the current SDP, sendrecv again
    (dialtone never holds), the o= version bumped when that changes it (RFC 3264 §8)."""
    try:
        ours = parse_sdp(local_sdp)
    except SdpError:
        return local_sdp
    ours.direction = None
    for media in ours.media:
        media.direction = Direction.SENDRECV
    data = ours.to_bytes()
    if data != local_sdp and ours.origin.session_version.isdigit():
        ours.origin.session_version = str(int(ours.origin.session_version) + 1)
        data = ours.to_bytes()
    return data
