"""The dialog layer (RFC 3261 §12-§15) between two real endpoints on the fake network.

:class:`Agent` is a minimal call layer over one :class:`SipEndpoint` and a
:class:`DialogSet` (the recipe of the module docs, as a scripted TU): it rings and
answers INVITEs as a UAS, places INVITEs as a UAC, answers in-dialog requests, ACKs 2xx
and resends its own 2xx when the dialog timers say so.  :class:`Harness` runs the
network and both agents' dialog timers on the fake clock: no test sleeps.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest

from dialtone.sip.dialog import (
    ALLOW_IN_DIALOG,
    AckTimeout,
    Dialog,
    DialogState,
    DialogStateError,
    DtmfInfo,
    Handled,
    Resend,
    UacResult,
    parse_dtmf_relay,
    peer_for,
)
from dialtone.sip.dialog_set import DialogSet
from dialtone.sip.dialog_uac import UacDialog, UacInvite
from dialtone.sip.dialog_uas import UasDialog, reject_invite
from dialtone.sip.endpoint import SipEndpoint
from dialtone.sip.errors import SipParseError
from dialtone.sip.events import (
    CancelReceived,
    Event,
    Peer,
    RequestReceived,
    ResponseReceived,
    Transport,
)
from dialtone.sip.message import Headers, Request, Response, make_response, parse_message
from dialtone.sip.sdp import Direction, build_offer, negotiate_answer, parse_sdp
from dialtone.sip.uri import parse_uri
from dialtone.testing.fakenet import FakeNetwork, Packet

ALICE = "10.0.0.1"  # a phone
DT = "10.0.0.2"  # dialtone
BOB = "10.0.0.3"  # a callee behind a forking proxy
_ids = itertools.count(1)


def _offer(direction: Direction = Direction.SENDRECV, version: int = 1) -> bytes:
    return build_offer(ALICE, 40000, session_id=7, version=version, direction=direction).to_bytes()


def _dt_answer(offer: bytes) -> bytes:
    return negotiate_answer(parse_sdp(offer), DT, 20000, session_id=9, version=1).sdp.to_bytes()


def _direction(sdp: bytes) -> Direction:
    return parse_sdp(sdp).media[0].direction


def _version(sdp: bytes) -> str:
    return parse_sdp(sdp).origin.session_version


class Agent:
    """A tiny call layer: one endpoint, its dialogs, scripted answers."""

    def __init__(
        self,
        net: FakeNetwork,
        name: str,
        host: str,
        *,
        transport: Transport = "udp",
        answer: bool = True,
    ) -> None:
        self.net = net
        self.endpoint = SipEndpoint(local_host=host, local_port=5060)
        net.add(self.endpoint, handler=self)
        self.dialogs = DialogSet()
        self.transport = transport
        suffix = ";transport=tcp" if transport == "tcp" else ""
        self.contact = f"sip:{name}@{host}:5060{suffix}"
        self.name, self.host = name, host
        self.answer = answer
        self.outbound: dict[str, UacInvite] = {}  # INVITE client transaction -> INVITE
        self.inbound: dict[str, UasDialog] = {}  # INVITE server transaction -> dialog
        self.results: list[UacResult] = []
        self.handled: list[Handled] = []
        self.acks: list[Dialog] = []
        self.timeouts: list[AckTimeout] = []
        self.responses: list[Response] = []

    def now(self) -> float:
        return self.net.clock.monotonic()

    # -- UAC -----------------------------------------------------------------------------

    def call(self, peer: Peer, sdp: bytes, *, extra: Iterable[tuple[str, str]] = ()) -> str:
        n = next(_ids)
        h = Headers(
            [
                ("From", f"<sip:{self.name}@{self.host}>;tag={self.name}{n}"),
                ("To", f"<sip:callee@{peer.host}>"),
                ("Call-ID", f"{self.name}-call-{n}"),
                ("CSeq", "1 INVITE"),
                ("Contact", f"<{self.contact}>"),
                *extra,
                ("Content-Type", "application/sdp"),
            ]
        )
        invite = Request("INVITE", f"sip:callee@{peer.host}:{peer.port}", h, sdp)
        txn = self.endpoint.send_request(invite, peer, self.now())
        self.outbound[txn] = UacInvite(invite, dialogs=self.dialogs)
        return txn

    def send(self, request: Request, dialog: Dialog) -> None:
        """Send ``request`` of ``dialog`` to the dialog's next hop."""
        peer = peer_for(dialog.next_hop(), self.transport)
        if request.method == "ACK":
            self.endpoint.send_stateless(request, peer)
        else:
            self.endpoint.send_request(request, peer, self.now())

    def _apply(self, result: UacResult) -> None:
        self.results.append(result)
        if result.dialog is not None:
            if result.ack is not None:
                self.send(result.ack, result.dialog)
            if result.bye is not None:
                self.send(result.bye, result.dialog)

    # -- the TU ----------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            self._request(event.request, event.transaction)
        elif isinstance(event, CancelReceived):
            dialog = self.inbound[event.invite_transaction]
            self.endpoint.respond(event.invite_transaction, dialog.reject(487), self.now())
        elif isinstance(event, ResponseReceived):
            response = event.response
            self.responses.append(response)
            invite = self.outbound.get(event.transaction or "")
            if invite is not None:
                self._apply(invite.on_response(response))
            elif event.transaction is None:
                self._apply(self.dialogs.on_stray_2xx(response))
            else:
                found = self.dialogs.find(response)
                ack = found.response_received(response) if found is not None else None
                if found is not None and ack is not None:
                    self.send(ack, found)

    def _request(self, request: Request, txn: str | None) -> None:
        now = self.now()
        if txn is None:  # an ACK of a 2xx
            dialog = self.dialogs.ack_received(request)
            if dialog is not None:
                self.acks.append(dialog)
            return
        if request.method == "INVITE" and request.to.tag is None:
            dialog = UasDialog.from_invite(request, self.endpoint.new_tag(), self.contact)
            self.dialogs.add(dialog)
            self.inbound[txn] = dialog
            self.endpoint.respond(txn, dialog.provisional(180), now)
            if self.answer:
                self.endpoint.respond(
                    txn, dialog.answer(_dt_answer(request.body), now, transaction=txn), now
                )
            return
        handled = self.dialogs.handle_request(request, now, transaction=txn)
        if handled is None:
            self.endpoint.respond(txn, make_response(request, 481), now)
            return
        self.handled.append(handled)
        self.endpoint.respond(txn, handled.response, now)

    def on_timer(self, now: float) -> None:
        for event in self.dialogs.on_timer(now):
            if isinstance(event, Resend):
                assert event.transaction is not None
                self.endpoint.respond(event.transaction, event.response, now)
            else:  # §13.3.1.4: no ACK -> end the session with a BYE
                self.timeouts.append(event)
                self.send(event.dialog.build_bye(), event.dialog)


class Harness:
    """The fake network plus the agents' dialog timers on one fake clock."""

    def __init__(self, *agents: tuple[str, str], transport: Transport = "udp") -> None:
        self.net = FakeNetwork()
        self.agents = [Agent(self.net, n, h, transport=transport) for n, h in agents]

    def run(self, seconds: float | None = None) -> None:
        clock = self.net.clock
        end = None if seconds is None else clock.monotonic() + seconds
        for _ in range(10_000):
            self.net.pump()
            sources = [a.endpoint.next_timer() for a in self.agents]
            sources += [a.dialogs.next_deadline() for a in self.agents]
            deadlines = [d for d in sources if d is not None]
            if not deadlines or (end is not None and min(deadlines) > end):
                break
            clock.advance_to(min(deadlines))
            now = clock.monotonic()
            for agent in self.agents:
                deadline = agent.endpoint.next_timer()
                if deadline is not None and deadline <= now:
                    agent.endpoint.handle_timer(now)
                agent.on_timer(now)
        if end is not None:
            clock.advance_to(end)

    def sent(self, prefix: bytes) -> list[Packet]:
        return self.net.sent(prefix)


def _udp(host: str) -> Peer:
    return Peer("udp", host, 5060)


def _parse(packet: Packet) -> Request | Response:
    return parse_message(packet.data)


def _call(transport: Transport = "udp") -> tuple[Harness, Agent, Agent]:
    """alice calls dialtone, which rings and answers at once."""
    h = Harness(("alice", ALICE), ("dialtone", DT), transport=transport)
    alice, dt = h.agents
    alice.call(Peer(transport, DT, 5060), _offer())
    return h, alice, dt


def _kept(agent: Agent) -> UacDialog:
    (invite,) = agent.outbound.values()
    assert invite.kept is not None
    return invite.kept


def _inbound(agent: Agent) -> UasDialog:
    (dialog,) = agent.inbound.values()
    return dialog


# ---------------------------------------------------------------------------- UAS 2xx


def test_answer_is_retransmitted_until_the_ack() -> None:
    h, alice, dt = _call()
    t0 = h.net.clock.monotonic()
    h.net.drop_starting(b"SIP/2.0 200", times=3)  # the 200 and two retransmissions
    h.run()
    oks = h.sent(b"SIP/2.0 200")
    assert [p.time - t0 for p in oks] == [0, 0.5, 1.5, 3.5]
    assert [p.delivered for p in oks] == [False, False, False, True]
    assert len({p.data for p in oks}) == 1  # the same 2xx each time
    assert len(h.sent(b"ACK")) == 1 and dt.acks == [_inbound(dt)]
    assert not _inbound(dt).awaiting_ack and dt.timeouts == []
    assert _inbound(dt).state is _kept(alice).state is DialogState.CONFIRMED
    assert dt.dialogs.count() == alice.dialogs.count() == 1


def test_no_ack_schedule_then_ack_timeout_and_bye() -> None:
    h, alice, dt = _call()
    t0 = h.net.clock.monotonic()
    h.net.drop_starting(b"ACK", times=100)
    h.run()
    times = [p.time - t0 for p in h.sent(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1")]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == [0.5, 1, 2, 4, 4, 4, 4, 4, 4, 4]  # T1, 2*T1 ... capped at T2
    assert times[-1] == 31.5
    assert len(dt.timeouts) == 1 and dt.timeouts[0].dialog is _inbound(dt)
    (bye,) = h.sent(b"BYE")
    assert bye.time - t0 == 32 and bye.destination == (ALICE, 5060)  # 64*T1
    # alice ACKed every 2xx with the same ACK (a retransmission is re-ACKed, §13.2.2.4)
    acks = h.sent(b"ACK")
    assert len(acks) == 11 and len({p.data for p in acks}) == 1
    assert sum(r.retransmission for r in alice.results) == 10
    assert [r.answered for r in alice.results].count(True) == 1
    assert alice.handled[-1].ended and alice.dialogs.count() == dt.dialogs.count() == 0


def test_tcp_answer_is_not_retransmitted() -> None:
    h, _alice, dt = _call("tcp")
    h.run()
    assert len(h.sent(b"SIP/2.0 200")) == 1 and len(h.sent(b"ACK")) == 1
    assert dt.acks == [_inbound(dt)] and dt.timeouts == []
    assert dt.dialogs.next_deadline() is None


def test_tcp_ack_timeout_after_32s() -> None:
    h, _alice, dt = _call("tcp")
    t0 = h.net.clock.monotonic()
    h.net.drop_starting(b"ACK", times=100)
    h.run()
    assert len(h.sent(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 10.0.0.1")) == 1
    assert len(dt.timeouts) == 1
    (bye,) = h.sent(b"BYE")
    assert bye.time - t0 == 32


def test_late_timer_resends_once_and_keeps_the_schedule() -> None:
    invite = _invite()
    dialog = UasDialog.from_invite(invite, "dt1", f"sip:dt@{DT}")
    dialog.answer(_dt_answer(_offer()), 100.0, transaction="t")
    assert dialog.next_deadline() == 100.5
    events = dialog.on_timer(102.0)  # 0.5 and 1.5 are both due: one resend
    assert len(events) == 1 and isinstance(events[0], Resend) and events[0].transaction == "t"
    assert dialog.next_deadline() == 103.5
    assert dialog.on_timer(103.0) == []
    assert [type(e) for e in dialog.on_timer(132.0)] == [AckTimeout]
    assert dialog.next_deadline() is None and dialog.on_timer(140.0) == []


# ---------------------------------------------------------------------------- BYE


def test_caller_hangs_up() -> None:
    h, alice, dt = _call()
    h.run()
    dialog = _kept(alice)
    alice.send(dialog.build_bye(), dialog)
    h.run()
    assert dialog.state is DialogState.TERMINATED
    (handled,) = dt.handled
    assert handled.ended and handled.response.status == 200
    assert alice.responses[-1].status == 200 and alice.responses[-1].cseq.method == "BYE"
    assert dt.dialogs.count() == alice.dialogs.count() == 0
    assert _inbound(dt).state is DialogState.TERMINATED


def test_dialtone_hangs_up() -> None:
    h, alice, dt = _call()
    h.run()
    dialog = _inbound(dt)
    bye = dialog.build_bye()
    assert bye.uri == alice.contact and bye.cseq.seq == 1  # local CSeq starts at 1
    assert bye.headers.get("To") == _inbound(dt).invite.headers.get("From")
    dt.send(bye, dialog)
    h.run()
    assert alice.handled[-1].ended and dt.responses[-1].status == 200
    assert dt.dialogs.count() == alice.dialogs.count() == 0
    with pytest.raises(DialogStateError):
        dialog.build_bye()


def test_request_after_the_peer_ended_gets_481() -> None:
    h, alice, dt = _call()
    h.run()
    dialog = _kept(alice)
    alice.send(dialog.build_request("BYE"), dialog)  # a BYE that does not end alice's side
    h.run()
    alice.send(dialog.build_request("INFO"), dialog)
    h.run()
    assert [(r.cseq.method, r.status) for r in alice.responses[-2:]] == [
        ("BYE", 200),
        ("INFO", 481),
    ]
    assert dt.dialogs.count() == 0
    # the 481 ends the dialog on alice's side too (§12.2.1.2)
    assert _state(dialog) is DialogState.TERMINATED and alice.dialogs.count() == 0


# ---------------------------------------------------------------------------- re-INVITE


def _reinvite(h: Harness, alice: Agent, direction: Direction, version: int) -> Handled:
    dialog = _kept(alice)
    alice.send(dialog.build_request("INVITE", body=_offer(direction, version)), dialog)
    h.run()
    return h.agents[1].handled[-1]


def test_reinvite_hold_and_unhold_are_mirrored() -> None:
    h, alice, dt = _call()
    h.run()
    first = _inbound(dt).local_sdp
    assert first is not None and _version(first) == "1"
    hold = _reinvite(h, alice, Direction.SENDONLY, 2)
    assert hold.response.status == 200 and hold.media is not None
    assert hold.media.direction is Direction.RECVONLY  # do not send while held
    assert _direction(hold.response.body) is Direction.RECVONLY
    assert _version(hold.response.body) == "2"  # changed: version + 1 (RFC 3264 §8)
    assert hold.response.headers.get("Contact") == f"<{dt.contact}>"
    inactive = _reinvite(h, alice, Direction.INACTIVE, 3)
    assert inactive.media is not None and inactive.media.direction is Direction.INACTIVE
    assert _version(inactive.response.body) == "3"
    resume = _reinvite(h, alice, Direction.SENDRECV, 4)
    assert resume.media is not None and resume.media.direction is Direction.SENDRECV
    assert _direction(resume.response.body) is Direction.SENDRECV
    again = _reinvite(h, alice, Direction.SENDRECV, 4)  # the same offer: unchanged answer
    assert again.response.body == resume.response.body
    assert parse_sdp(again.response.body).origin.session_id == "9"
    # every 2xx to a re-INVITE was ACKed (CSeq 2..5) and none is awaiting one
    assert [d.id for d in dt.acks] == [_inbound(dt).id] * 5
    assert [p.delivered for p in h.sent(b"ACK")] == [True] * 5
    assert len(h.sent(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1")) == 5  # no resends
    assert _inbound(dt).remote_seq == 5 and _kept(alice).local_seq == 5


def test_reinvite_without_sdp_gets_our_offer_sendrecv() -> None:
    h, alice, dt = _call()
    h.run()
    _reinvite(h, alice, Direction.SENDONLY, 2)
    dialog = _kept(alice)
    alice.send(dialog.build_request("INVITE"), dialog)
    h.run()
    handled = dt.handled[-1]
    assert handled.media is None and handled.response.headers.get("Content-Type") == (
        "application/sdp"
    )
    assert _direction(handled.response.body) is Direction.SENDRECV
    assert _version(handled.response.body) == "3"


def _ack_with(dialog: Dialog, seq: int, body: bytes, ctype: str = "application/sdp") -> Request:
    ack = _ack_for(dialog, seq)
    ack.body = body
    ack.headers.add("Content-Type", ctype)
    return ack


def test_the_answer_to_our_offer_in_a_2xx_comes_in_the_ack() -> None:
    """RFC 3261 §14.2, RFC 3264 §4: an offerless re-INVITE gets our offer in the 2xx; the
    ACK carries the answer, and the media moves to where it says."""
    dialog = _confirmed_uas()
    offerless = _in_dialog(dialog, "INVITE")
    assert offerless.media is None and offerless.response.body
    seq = dialog.remote_seq
    assert seq is not None
    moved = build_offer(ALICE, 40100, session_id=7, version=2).to_bytes()
    ack = _ack_with(dialog, seq, moved)
    assert dialog.ack_received(ack) and not dialog.awaiting_ack
    choice = dialog.answer_in_ack(ack)
    assert choice is not None and (choice.remote_address, choice.remote_port) == (ALICE, 40100)
    assert dialog.answer_in_ack(ack) is not None  # a retransmitted ACK: the same answer
    assert dialog.answer_in_ack(_ack_for(dialog, seq)) is None  # no body: nothing moves
    assert dialog.answer_in_ack(_ack_with(dialog, seq, b"v=1\r\n")) is None  # unusable
    assert dialog.answer_in_ack(_ack_with(dialog, seq, moved, "text/plain")) is None


def test_an_ack_body_after_a_re_invite_with_an_offer_is_not_an_answer() -> None:
    dialog = _confirmed_uas()
    handled = _in_dialog(dialog, "INVITE", _offer(Direction.SENDRECV, 2))
    assert handled.media is not None
    seq = dialog.remote_seq
    assert seq is not None
    ack = _ack_with(dialog, seq, build_offer(ALICE, 40100, session_id=7, version=3).to_bytes())
    assert dialog.ack_received(ack) and dialog.answer_in_ack(ack) is None
    assert dialog.answer_in_ack(_ack_with(dialog, 1, _offer())) is None  # the first INVITE


def test_reinvite_failures_leave_the_session() -> None:
    dialog = _confirmed_uas()
    before = dialog.local_sdp
    no_codec = _offer().replace(b"RTP/AVP 0 8 101", b"RTP/AVP 18").replace(b"PCMU", b"G729")
    assert _in_dialog(dialog, "INVITE", no_codec).response.status == 488
    assert _in_dialog(dialog, "INVITE", b"v=1\r\n").response.status == 400
    text = _in_dialog(dialog, "INVITE", b"hello", ctype="text/plain").response
    assert text.status == 415 and text.headers.get("Accept") == "application/sdp"
    assert dialog.local_sdp == before and not dialog.awaiting_ack
    update = _in_dialog(dialog, "UPDATE", _offer(Direction.SENDONLY, 2))
    assert update.response.status == 200 and _direction(update.response.body) is (
        Direction.RECVONLY
    )
    assert not dialog.awaiting_ack  # an UPDATE's 200 is not retransmitted by the TU


def test_reinvite_on_early_dialog_and_glare() -> None:
    invite = _invite()
    dialog = UasDialog.from_invite(invite, "dt1", f"sip:dt@{DT}")
    early = _in_dialog(dialog, "INVITE", _offer()).response
    assert early.status == 500 and 0 <= int(early.headers.get("Retry-After") or "x") <= 10
    dialog.answer(_dt_answer(_offer()), 0.0)
    dialog.ack_received(_ack_for(dialog, 1))
    ours = dialog.build_request("INVITE", body=dialog.local_sdp or b"")
    assert _in_dialog(dialog, "INVITE", _offer()).response.status == 491  # §14.2
    with pytest.raises(DialogStateError):
        dialog.build_request("INVITE")  # one INVITE at a time (§14.1)
    ok = make_response(ours, 200, headers=[("Contact", "<sip:alice@10.0.0.1:5062>")])
    ack = dialog.response_received(ok)
    assert ack is not None and ack.method == "ACK" and ack.cseq.seq == ours.cseq.seq
    assert dialog.remote_target == parse_uri("sip:alice@10.0.0.1:5062")  # target refresh
    assert ack.uri == "sip:alice@10.0.0.1:5062"
    assert dialog.response_received(ok) is ack  # the 2xx again: the same ACK


# ---------------------------------------------------------------------------- INFO etc.


def test_info_dtmf_relay_digit() -> None:
    h, alice, dt = _call()
    h.run()
    dialog = _kept(alice)
    body = b"Signal=5\r\nDuration=160\r\n"
    info = dialog.build_request("INFO", body=body, content_type="application/dtmf-relay")
    alice.send(info, dialog)
    h.run()
    handled = dt.handled[-1]
    assert handled.response.status == 200 and handled.dtmf == DtmfInfo("5", 160)
    assert alice.responses[-1].status == 200


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"Signal=5\r\nDuration=160\r\n", DtmfInfo("5", 160)),
        (b"signal= *\nduration=100", DtmfInfo("*", 100)),
        (b"Signal=#", DtmfInfo("#", None)),
        (b"Signal=10\r\n", DtmfInfo("*", None)),
        (b"Signal=a\r\nDuration=x", DtmfInfo("A", None)),
        (b"Signal=16", None),
        (b"Duration=160", None),
        (b"\xff\xfe", None),
    ],
)
def test_parse_dtmf_relay(body: bytes, expected: DtmfInfo | None) -> None:
    assert parse_dtmf_relay(body) == expected


def test_options_info_and_other_methods() -> None:
    dialog = _confirmed_uas()
    options = _in_dialog(dialog, "OPTIONS").response
    assert options.status == 200 and options.headers.get("Allow") == ", ".join(ALLOW_IN_DIALOG)
    assert _in_dialog(dialog, "INFO", b"x", ctype="application/foo").dtmf is None
    bare = _in_dialog(dialog, "INFO", b"7", ctype="application/dtmf")
    assert bare.response.status == 200 and bare.dtmf == DtmfInfo("7")
    refer = _in_dialog(dialog, "REFER").response
    assert refer.status == 405 and "BYE" in (refer.headers.get("Allow") or "")
    assert _in_dialog(dialog, "FROBNICATE").response.status == 501
    with pytest.raises(ValueError, match="ACK"):
        dialog.handle_request(_in_dialog_request(dialog, "ACK"), 0.0)


def test_lower_cseq_gets_500() -> None:
    h, alice, dt = _call()
    h.run()
    dialog = _kept(alice)
    alice.send(dialog.build_request("INFO"), dialog)  # CSeq 2
    alice.send(dialog.build_request("INFO"), dialog)  # CSeq 3
    h.run()
    dialog.local_seq = 1
    alice.send(dialog.build_request("INFO"), dialog)  # CSeq 2 again: out of order
    h.run()
    assert [x.response.status for x in dt.handled] == [200, 200, 500]
    assert _inbound(dt).remote_seq == 3 and _inbound(dt).state is DialogState.CONFIRMED
    assert alice.responses[-1].status == 500


# ---------------------------------------------------------------------------- UAS misc


def test_inbound_cancel_gets_487_and_ends_the_early_dialog() -> None:
    h = Harness(("alice", ALICE), ("dialtone", DT))
    alice, dt = h.agents
    dt.answer = False
    txn = alice.call(_udp(DT), _offer())
    h.run(1)
    (invite,) = alice.outbound.values()
    assert len(invite.early()) == 1 and dt.dialogs.count() == 1
    alice.endpoint.cancel(txn, h.net.clock.monotonic())
    h.run()
    assert [r.status for r in alice.responses] == [100, 180, 200, 487]
    assert invite.early() == [] and alice.dialogs.count() == dt.dialogs.count() == 0
    assert _inbound(dt).final_status == 487


def test_uas_responses() -> None:
    invite = _invite(
        ("Record-Route", "<sip:p2.example;lr>, <sip:p1.example;lr>"),
        ("Record-Route", "<sip:p0.example;lr>"),
    )
    dialog = UasDialog.from_invite(invite, "dt1", f"sip:dt@{DT}")
    assert dialog.id == ("c1", "dt1", "a1") and dialog.state is DialogState.EARLY
    ringing = dialog.provisional()
    assert ringing.status == 180 and ringing.to.tag == "dt1"
    assert ringing.headers.get("Contact") == f"<sip:dt@{DT}>"
    assert ringing.headers.get_all("Record-Route") == invite.headers.get_all("Record-Route")
    progress = dialog.provisional(183, b"v=0\r\n")
    assert progress.headers.get("Content-Type") == "application/sdp" and progress.body
    with pytest.raises(ValueError, match="provisional"):
        dialog.provisional(100)
    with pytest.raises(DialogStateError):
        dialog.build_bye()  # §15: the callee does not BYE an early dialog
    ok = dialog.answer(b"v=0\r\n", 0.0)
    assert ok.status == 200 and ok.to.tag == "dt1" and ok.body == b"v=0\r\n"
    assert ok.headers.get("Content-Type") == "application/sdp"
    assert ok.headers.get_all("Record-Route") == invite.headers.get_all("Record-Route")
    assert dialog.answered and _state(dialog) is DialogState.CONFIRMED
    with pytest.raises(DialogStateError):
        dialog.reject(486)
    # §12.1.1: the UAS keeps the route set in order; loose routing keeps the target
    bye = dialog.build_bye()
    assert bye.headers.get_all("Route") == [
        "<sip:p2.example;lr>",
        "<sip:p1.example;lr>",
        "<sip:p0.example;lr>",
    ]
    assert bye.uri == "sip:alice@10.0.0.1:5060" and dialog.next_hop() == parse_uri(
        "sip:p2.example;lr"
    )


def test_reject_with_warning() -> None:
    dialog = UasDialog.from_invite(_invite(), "dt1", f"sip:dt@{DT}")
    busy = dialog.reject(486, headers=[("Retry-After", "60")], warning="all lines busy")
    assert busy.status == 486 and busy.to.tag == "dt1"
    assert busy.headers.get("Warning") == '399 dialtone "all lines busy"'
    assert busy.headers.get("Retry-After") == "60"
    assert dialog.state is DialogState.TERMINATED and dialog.final_status == 486
    with pytest.raises(DialogStateError):
        dialog.answer(b"", 0.0)
    no_dialog = reject_invite(_invite(), 603, to_tag="x", warning='say "no"')
    assert no_dialog.headers.get("Warning") == '399 dialtone "say \\"no\\""'
    with pytest.raises(ValueError, match="failure"):
        reject_invite(_invite(), 200, to_tag="x")


def test_bye_on_early_dialog_then_487() -> None:
    dialog = UasDialog.from_invite(_invite(), "dt1", f"sip:dt@{DT}")
    handled = _in_dialog(dialog, "BYE")
    assert handled.ended and handled.response.status == 200
    assert dialog.reject(487).status == 487  # §15.1.2: the INVITE still gets its answer


def test_from_invite_refuses() -> None:
    with pytest.raises(SipParseError, match="Missing Contact"):
        UasDialog.from_invite(_invite(contact=None), "t", "sip:dt@10.0.0.2")
    with pytest.raises(SipParseError, match="Bad Contact"):
        UasDialog.from_invite(_invite(contact="*"), "t", "sip:dt@10.0.0.2")
    tagged = _invite()
    tagged.headers.set("To", "<sip:dt@10.0.0.2>;tag=x")
    with pytest.raises(ValueError, match="To tag"):
        UasDialog.from_invite(tagged, "t", "sip:dt@10.0.0.2")
    with pytest.raises(SipParseError):
        UasDialog.from_invite(_invite(("Record-Route", "<sip:x")), "t", "sip:dt@10.0.0.2")


# ---------------------------------------------------------------------------- UAC


class Forker:
    """bob behind a forking proxy: two forks ring (tags f1, f2) and answer on demand."""

    def __init__(self, net: FakeNetwork) -> None:
        self.endpoint = SipEndpoint(local_host=BOB, local_port=5060)
        net.add(self.endpoint, handler=self)
        self.invite: Request | None = None
        self.txn = ""
        self.requests: list[Request] = []
        self.record_route: list[str] = []

    def response(self, status: int, fork: str) -> Response:
        assert self.invite is not None
        headers = [("Record-Route", rr) for rr in self.record_route]
        headers.append(("Contact", f"<sip:{fork}@{BOB}:5060>"))
        return make_response(self.invite, status, to_tag=fork, headers=headers)

    def __call__(self, event: Event) -> None:
        if not isinstance(event, RequestReceived):
            return
        self.requests.append(event.request)
        if event.transaction is None:
            return
        if event.request.method == "INVITE":
            self.invite, self.txn = event.request, event.transaction
            for fork in ("f1", "f2"):
                self.endpoint.respond(self.txn, self.response(180, fork))
        else:
            self.endpoint.respond(event.transaction, make_response(event.request, 200))

    def answer(self, fork: str) -> None:
        self.endpoint.respond(self.txn, self.response(200, fork))

    def methods(self) -> list[tuple[str, str | None]]:
        return [(r.method, r.to.tag) for r in self.requests]


def _outbound() -> tuple[Harness, Agent, Forker, UacInvite, str]:
    h = Harness(("dialtone", DT))
    (dt,) = h.agents
    bob = Forker(h.net)
    txn = dt.call(_udp(BOB), _offer())
    h.run(0.1)
    return h, dt, bob, dt.outbound[txn], txn


def test_forked_early_dialogs_one_kept_one_byed() -> None:
    h, dt, bob, invite, _ = _outbound()
    assert sorted(d.remote_tag for d in invite.early()) == ["f1", "f2"]
    assert dt.dialogs.count() == 2
    bob.answer("f2")
    bob.answer("f1")
    h.run()
    assert invite.kept is invite.dialogs["f2"] and invite.kept.state is DialogState.CONFIRMED
    assert invite.dialogs["f1"].state is DialogState.TERMINATED
    assert bob.methods() == [("INVITE", None), ("ACK", "f2"), ("ACK", "f1"), ("BYE", "f1")]
    answered = [r for r in dt.results if r.answered]
    assert len(answered) == 1 and answered[0].dialog is invite.kept
    assert dt.dialogs.count() == 1 and list(dt.dialogs) == [invite.kept]
    ack = bob.requests[1]
    assert ack.uri == f"sip:f2@{BOB}:5060" and ack.cseq.seq == 1  # the INVITE's number
    assert ack.top_via.branch != bob.requests[0].top_via.branch  # a new transaction


def test_record_route_reversed_for_the_uac() -> None:
    h = Harness(("dialtone", DT))
    (dt,) = h.agents
    bob = Forker(h.net)
    bob.record_route = ["<sip:10.0.0.9;lr>", f"<sip:{BOB}:5060;lr>"]
    dt.call(_udp(BOB), _offer(), extra=[("Proxy-Authorization", 'Digest username="dt"')])
    h.run(0.1)
    bob.answer("f1")
    h.run()
    (invite,) = dt.outbound.values()
    dialog = invite.kept
    assert dialog is not None and dialog.next_hop() == parse_uri(f"sip:{BOB}:5060;lr")
    ack = bob.requests[1]
    assert ack.method == "ACK" and ack.uri == f"sip:f1@{BOB}:5060"
    assert ack.headers.get_all("Route") == [f"<sip:{BOB}:5060;lr>", "<sip:10.0.0.9;lr>"]
    assert ack.headers.get("Proxy-Authorization") == 'Digest username="dt"'  # §13.2.2.4
    dt.send(dialog.build_bye(), dialog)
    h.run()
    bye = bob.requests[-1]
    assert bye.method == "BYE" and bye.cseq.seq == 2 and bye.uri == f"sip:f1@{BOB}:5060"
    assert bye.headers.get_all("Route") == [f"<sip:{BOB}:5060;lr>", "<sip:10.0.0.9;lr>"]
    assert "Proxy-Authorization" not in bye.headers


def test_retransmitted_2xx_is_reacked_before_and_after_timer_m() -> None:
    h, dt, bob, _invite, _ = _outbound()
    bob.answer("f1")
    h.run(1)
    ok = bob.response(200, "f1")
    bob.endpoint.send_stateless(ok, _udp(DT))  # while the ICT is Accepted
    h.run()  # Timer M ends the ICT
    assert dt.endpoint.transaction_count() == 0
    bob.endpoint.send_stateless(ok, _udp(DT))  # now transactionless (RFC 6026 §8.1)
    h.run()
    acks = [p.data for p in h.sent(b"ACK")]
    assert len(acks) == 3 and len(set(acks)) == 1  # the same ACK every time
    assert [r.retransmission for r in dt.results if r.ack is not None] == [False, True, True]
    assert h.sent(b"BYE") == [] and dt.dialogs.count() == 1


def test_late_fork_2xx_after_timer_m_is_acked_and_byed() -> None:
    h, dt, bob, _invite, _ = _outbound()
    bob.answer("f1")
    h.run()
    bob.endpoint.send_stateless(bob.response(200, "f3"), _udp(DT))
    h.run()
    assert bob.methods()[-2:] == [("ACK", "f3"), ("BYE", "f3")]
    assert dt.dialogs.count() == 1


def test_cancel_race_200_after_cancel_gets_ack_and_bye() -> None:
    h, dt, bob, invite, txn = _outbound()
    assert invite.end() == []  # DIAL-23: nothing confirmed yet; CANCEL it
    assert invite.early() == [] and dt.dialogs.count() == 0
    dt.endpoint.cancel(txn, h.net.clock.monotonic())
    bob.answer("f1")  # bob answered before the CANCEL reached him
    h.run()
    lines = [p.start_line.split(" ")[0] for p in h.net.log]
    assert lines.index("CANCEL") < lines.index("ACK") < lines.index("BYE")
    # bob's endpoint answered the CANCEL itself (200: the INVITE is Accepted, §9.2)
    cseqs = [_parse(p).cseq for p in h.sent(b"SIP/2.0 200")]
    assert [c.method for c in cseqs] == ["INVITE", "CANCEL", "BYE"]
    assert bob.methods()[1:] == [("ACK", "f1"), ("BYE", "f1")]
    assert not any(r.answered for r in dt.results)  # DIAL-24: no 'answered'
    assert invite.kept is None and dt.dialogs.count() == 0


def test_end_after_answer_byes_the_kept_dialog() -> None:
    h, dt, bob, invite, _ = _outbound()
    bob.answer("f1")
    h.run(1)
    byes = invite.end()
    assert [b.method for b in byes] == ["BYE"] and invite.kept is not None
    dt.send(byes[0], invite.kept)
    bob.answer("f2")  # a second fork answers afterwards: ACK + BYE
    h.run()
    assert bob.methods()[1:] == [("ACK", "f1"), ("BYE", "f1"), ("ACK", "f2"), ("BYE", "f2")]
    assert dt.dialogs.count() == 0


def test_uac_unit_rules() -> None:
    invite = _our_invite()
    uac = UacInvite(invite)
    trying = make_response(invite, 100)
    assert uac.on_response(trying) == UacResult()
    untagged = make_response(invite, 180)
    assert uac.on_response(untagged).dialog is None  # §12.1: no To tag, no dialog
    other = _our_invite()
    assert uac.on_response(make_response(other, 180, to_tag="x")) == UacResult()
    ring = uac.on_response(_with_contact(make_response(invite, 180, to_tag="r1")))
    assert isinstance(ring.dialog, UacDialog) and ring.dialog.state is DialogState.EARLY
    assert ring.dialog.remote_target == parse_uri("sip:r1@10.0.0.3")
    assert ring.dialog.route_set == ()
    again = _with_contact(make_response(invite, 183, to_tag="r1"), "sip:moved@10.0.0.4")
    assert uac.on_response(again).dialog is ring.dialog
    assert ring.dialog.remote_target == parse_uri("sip:moved@10.0.0.4")  # refreshed
    busy = uac.on_response(make_response(invite, 486, to_tag="r2"))
    assert busy == UacResult() and uac.final_status == 486
    assert _state(ring.dialog) is DialogState.TERMINATED  # §12.3
    with pytest.raises(ValueError, match="no dialog"):
        UacDialog.from_response(invite, make_response(invite, 180))
    with pytest.raises(ValueError, match="creates no dialog"):
        UacDialog.from_response(invite, make_response(invite, 486, to_tag="x"))
    with pytest.raises(ValueError, match="not an INVITE"):
        UacInvite(_in_dialog_request(_confirmed_uas(), "BYE"))


def test_2xx_without_to_tag_and_without_contact() -> None:
    invite = _our_invite()
    uac = UacInvite(invite)
    result = uac.on_response(make_response(invite, 200))  # an RFC 2543 UAS
    assert result.answered and result.dialog is not None
    assert result.dialog.remote_tag == "" and result.ack is not None
    assert result.ack.uri == invite.uri  # no Contact: back to the Request-URI


def test_stray_2xx_unknown_dialog_is_acked_and_byed() -> None:
    invite = _our_invite()
    ok = make_response(
        invite,
        200,
        to_tag="zz",
        headers=[
            ("Contact", "<sip:zz@10.0.0.3>"),
            ("Record-Route", "<sip:p2.example;lr>, <sip:p1.example;lr>"),
        ],
    )
    dialogs = DialogSet()
    result = dialogs.on_stray_2xx(ok)
    assert result.ack is not None and result.bye is not None and not result.answered
    assert result.dialog is not None and result.dialog.match(ok) and dialogs.count() == 0
    assert result.ack.uri == "sip:zz@10.0.0.3" and result.ack.cseq.seq == invite.cseq.seq
    assert result.bye.headers.get_all("Route") == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert result.bye.cseq.seq == invite.cseq.seq + 1


# ---------------------------------------------------------------------------- routing, set


def test_strict_router_first() -> None:
    dialog = UasDialog.from_invite(
        _invite(("Record-Route", "<sip:old.example;method=INVITE>, <sip:p1.example;lr>")),
        "dt1",
        f"sip:dt@{DT}",
    )
    dialog.answer(b"", 0.0)
    bye = dialog.build_bye()
    # §12.2.1.1: the strict router is the Request-URI, the remote target goes last
    assert bye.uri == "sip:old.example"
    assert bye.headers.get_all("Route") == ["<sip:p1.example;lr>", "<sip:alice@10.0.0.1:5060>"]


def test_stray_2xx_of_a_live_dialog_is_only_acked() -> None:
    dialogs = DialogSet()
    dialog = _confirmed_uas()
    dialogs.add(dialog)
    reinvite = dialog.build_request("INVITE", body=dialog.local_sdp or b"")
    ok = make_response(reinvite, 200)  # its ICT ended before the call layer ACKed it
    result = dialogs.on_stray_2xx(ok)
    assert result.ack is not None and result.bye is None and not result.retransmission
    assert dialogs.on_stray_2xx(ok).ack is result.ack  # and again: the same ACK
    assert dialogs.on_stray_2xx(ok).retransmission
    assert repr(dialog).startswith("<UasDialog confirmed")


def test_dialog_set_lookup_and_count() -> None:
    dialogs = DialogSet()
    dialog = _confirmed_uas()
    dialogs.add(dialog)
    with pytest.raises(ValueError, match="exists"):
        dialogs.add(dialog)
    request = _in_dialog_request(dialog, "INFO")
    assert dialogs.find(request) is dialog and dialog in dialogs and dialogs.count() == 1
    assert dialogs.get(dialog.id) is dialog
    stranger = _in_dialog_request(dialog, "INFO")
    stranger.headers.set("From", "<sip:alice@10.0.0.1>;tag=other")
    assert dialogs.find(stranger) is None and dialogs.handle_request(stranger, 0.0) is None
    assert dialog.handle_request(stranger, 0.0).response.status == 481
    bye = dialogs.handle_request(_in_dialog_request(dialog, "BYE"), 0.0)
    assert bye is not None and bye.ended and dialogs.count() == 0 and dialog not in dialogs
    with pytest.raises(ValueError, match="terminated"):
        dialogs.add(dialog)
    assert dialog.handle_request(_in_dialog_request(dialog, "INFO"), 0.0).response.status == 481


def test_dialog_set_timers() -> None:
    dialogs = DialogSet()
    a = UasDialog.from_invite(_invite(), "a", f"sip:dt@{DT}")
    b = UasDialog.from_invite(_invite(), "b", f"sip:dt@{DT}")
    dialogs.add(a)
    dialogs.add(b)
    assert dialogs.next_deadline() is None
    a.answer(b"", 10.0, transaction="ta")
    b.answer(b"", 10.2, transaction="tb")
    assert dialogs.next_deadline() == 10.5
    assert [(type(e), e.dialog) for e in dialogs.on_timer(10.6)] == [(Resend, a)]
    assert dialogs.next_deadline() == 10.7
    assert dialogs.ack_received(_ack_for(b, 1)) is b
    assert dialogs.ack_received(_ack_for(b, 1)) is b  # a repeated ACK still matches
    assert dialogs.ack_received(_ack_for(b, 7)) is None
    assert dialogs.next_deadline() == 11.5
    a.terminate()  # e.g. a BYE crossed the ACK
    assert dialogs.next_deadline() is None and dialogs.count() == 1


def test_build_request_rules() -> None:
    dialog = _confirmed_uas()
    with pytest.raises(ValueError, match="ACK"):
        dialog.build_request("ACK")
    info = dialog.build_request("INFO", [("X-Foo", "1")], b"hi", content_type="text/plain")
    assert info.headers.get("Content-Type") == "text/plain" and info.headers.get("X-Foo") == "1"
    assert "Contact" not in info.headers  # not a target refresh
    update = dialog.build_request("UPDATE", body=b"v=0\r\n")
    assert update.headers.get("Contact") == f"<sip:dt@{DT}>"
    assert update.headers.get("Content-Type") == "application/sdp"
    assert [info.cseq.seq, update.cseq.seq] == [1, 2]
    dialog.terminate()
    with pytest.raises(DialogStateError):
        dialog.build_request("INFO")


def test_response_received_408_ends_the_dialog() -> None:
    dialog = _confirmed_uas()
    info = dialog.build_request("INFO")
    assert dialog.response_received(make_response(info, 100)) is None
    assert dialog.response_received(make_response(info, 200)) is None
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.response_received(make_response(info, 408)) is None
    assert _state(dialog) is DialogState.TERMINATED


def test_peer_for() -> None:
    assert peer_for(parse_uri("sip:a@10.0.0.1")) == Peer("udp", "10.0.0.1", 5060)
    assert peer_for(parse_uri("sip:a@10.0.0.1:5070;transport=TCP")) == Peer("tcp", "10.0.0.1", 5070)
    assert peer_for(parse_uri("sip:[2001:db8::1]:5062")) == Peer("udp", "2001:db8::1", 5062)
    with pytest.raises(ValueError, match="ws"):
        peer_for(parse_uri("sip:a@10.0.0.1;transport=ws"))
    with pytest.raises(ValueError, match="TLS"):
        peer_for(parse_uri("sips:a@10.0.0.1"))


# ---------------------------------------------------------------------------- helpers


def _state(dialog: Dialog) -> DialogState:
    """The state, read through a call (mypy keeps no narrowing across it)."""
    return dialog.state


def _invite(*extra: tuple[str, str], contact: str | None = "<sip:alice@10.0.0.1:5060>") -> Request:
    h = Headers(
        [
            ("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx1;received=10.0.0.1"),
            ("From", '"Alice" <sip:alice@10.0.0.1>;tag=a1'),
            ("To", "<sip:+15551234@10.0.0.2>"),
            ("Call-ID", "c1"),
            ("CSeq", "1 INVITE"),
            *extra,
        ]
    )
    if contact is not None:
        h.add("Contact", contact)
    return Request("INVITE", "sip:+15551234@10.0.0.2", h)


def _our_invite() -> Request:
    n = next(_ids)
    h = Headers(
        [
            ("From", f"<sip:dt@{DT}>;tag=d{n}"),
            ("To", f"<sip:bob@{BOB}>"),
            ("Call-ID", f"out-{n}"),
            ("CSeq", "4 INVITE"),
            ("Via", f"SIP/2.0/UDP {DT}:5060;branch=z9hG4bKo{n}"),
            ("Contact", f"<sip:dt@{DT}>"),
        ]
    )
    return Request("INVITE", f"sip:bob@{BOB}", h)


def _with_contact(response: Response, uri: str | None = None) -> Response:
    response.headers.add("Contact", f"<{uri or 'sip:' + (response.to.tag or '') + '@' + BOB}>")
    return response


def _confirmed_uas() -> UasDialog:
    dialog = UasDialog.from_invite(_invite(), "dt1", f"sip:dt@{DT}")
    dialog.answer(_dt_answer(_offer()), 0.0)
    dialog.ack_received(_ack_for(dialog, 1))
    return dialog


_peer_seq = itertools.count(2)


def _in_dialog_request(dialog: Dialog, method: str) -> Request:
    """A request from the peer in ``dialog`` (what the peer's dialog would build)."""
    h = Headers(
        [
            ("Via", f"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp{next(_ids)}"),
            ("From", str(dialog.remote_party)),
            ("To", str(dialog.local_party)),
            ("Call-ID", dialog.call_id),
            ("CSeq", f"{next(_peer_seq)} {method}"),
            ("Contact", "<sip:alice@10.0.0.1:5060>"),
        ]
    )
    return Request(method, str(dialog.local_party.uri), h)


def _in_dialog(
    dialog: Dialog, method: str, body: bytes = b"", *, ctype: str = "application/sdp"
) -> Handled:
    request = _in_dialog_request(dialog, method)
    if body:
        request.body = body
        request.headers.add("Content-Type", ctype)
    return dialog.handle_request(request, 0.0, transaction="t")


def _ack_for(dialog: Dialog, seq: int) -> Request:
    ack = _in_dialog_request(dialog, "ACK")
    ack.headers.set("CSeq", f"{seq} ACK")
    return ack
