"""Two SipEndpoints back to back over the fake network, with the fake clock.

alice (10.0.0.1) is a UAC whose events the tests read; bob (10.0.0.2) runs a scripted
TU (:class:`Script`) that answers each request with the statuses it was given.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialtone.sip.endpoint import SipEndpoint, check_method
from dialtone.sip.events import (
    CancelReceived,
    Event,
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionTimeout,
    TransportFailed,
)
from dialtone.sip.message import Headers, Request, Response, make_response, parse_message
from dialtone.sip.transaction import TransactionStateError
from dialtone.testing.clock import FakeClock
from dialtone.testing.fakenet import FakeNetwork

ALICE = ("10.0.0.1", 5060)
BOB = ("10.0.0.2", 5060)
TO_BOB = Peer("udp", *BOB)
_ids = itertools.count(1)


class Script:
    """bob's TU: answers each new request with ``answers[method]``, in order."""

    def __init__(self, endpoint: SipEndpoint, answers: dict[str, list[int]]) -> None:
        self.endpoint = endpoint
        self.answers = answers
        self.events: list[Event] = []
        self.invites: dict[str, Request] = {}

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, RequestReceived) and event.transaction is not None:
            if event.request.method == "INVITE":
                self.invites[event.transaction] = event.request
            for status in self.answers.get(event.request.method, []):
                response = make_response(event.request, status, to_tag="b0b")
                self.endpoint.respond(event.transaction, response)
        elif isinstance(event, CancelReceived):
            invite = self.invites[event.invite_transaction]
            response = make_response(invite, 487, to_tag="b0b")
            self.endpoint.respond(event.invite_transaction, response)

    def requests(self, method: str) -> list[RequestReceived]:
        return [
            e for e in self.events if isinstance(e, RequestReceived) and e.request.method == method
        ]


def _setup(
    answers: dict[str, list[int]] | None = None, *, alice_public: tuple[str, int] | None = None
) -> tuple[FakeNetwork, SipEndpoint, SipEndpoint, Script]:
    net = FakeNetwork()
    alice = SipEndpoint(local_host=ALICE[0], local_port=ALICE[1])
    bob = SipEndpoint(local_host=BOB[0], local_port=BOB[1])
    script = Script(bob, answers or {})
    net.add(alice, public=alice_public)
    net.add(bob, handler=script)
    return net, alice, bob, script


def _request(method: str, *, headers: Iterable[tuple[str, str]] = ()) -> Request:
    n = next(_ids)
    h = Headers(
        [
            ("From", f"<sip:alice@{ALICE[0]}>;tag=a{n}"),
            ("To", f"<sip:bob@{BOB[0]}>"),
            ("Call-ID", f"call-{n}"),
            ("CSeq", f"1 {method}"),
            ("Contact", f"<sip:alice@{ALICE[0]}>"),
            *headers,
        ]
    )
    return Request(method, f"sip:bob@{BOB[0]}", h)


def _wire(method: str, branch: str, *, via: str = "10.0.0.9:5060;rport", extra: str = "") -> bytes:
    return (
        f"{method} sip:bob@{BOB[0]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via};branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:x@10.0.0.9>;tag=x1\r\n"
        f"To: <sip:bob@{BOB[0]}>\r\n"
        f"Call-ID: {branch}-call\r\n"
        f"CSeq: 1 {method}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _responses(events: list[Event]) -> list[tuple[int, str | None]]:
    return [(e.response.status, e.transaction) for e in events if isinstance(e, ResponseReceived)]


def _parse_response(data: bytes) -> Response:
    message = parse_message(data)
    assert isinstance(message, Response)
    return message


def _ack_of_2xx(invite: Request, ok: Response) -> Request:
    """What the dialog layer sends for a 2xx (§13.2.2.4): a new transaction."""
    h = Headers(
        [
            ("From", invite.headers.get("From") or ""),
            ("To", ok.headers.get("To") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq.seq} ACK"),
        ]
    )
    return Request("ACK", invite.uri, h)


# ---------------------------------------------------------------------------- REGISTER


def test_register_200_and_cleanup() -> None:
    net, alice, bob, script = _setup({"REGISTER": [200]})
    txn = alice.send_request(_request("REGISTER"), TO_BOB)
    net.pump()
    assert _responses(net.events(alice)) == [(200, txn)]
    assert [e.transaction is not None for e in script.requests("REGISTER")] == [True]
    assert [p.start_line.split(" ")[0] for p in net.log] == ["REGISTER", "SIP/2.0"]
    assert bob.transaction_count() == 1 and bob.timer_count() == 1  # Timer J
    start = net.clock.monotonic()
    net.run()
    assert net.clock.monotonic() == start + 32  # J is 64*T1 on UDP
    assert alice.transaction_count() == bob.transaction_count() == 0
    assert alice.timer_count() == bob.timer_count() == 0


def test_request_gets_via_max_forwards_and_user_agent() -> None:
    net, alice, _bob, script = _setup({"OPTIONS": [200]})
    alice.send_request(_request("OPTIONS"), TO_BOB)
    net.pump()
    request = script.requests("OPTIONS")[0].request
    via = request.top_via
    assert via.branch is not None and via.branch.startswith("z9hG4bK")
    assert via.sent_by == "10.0.0.1:5060" and via.transport == "UDP"
    assert request.max_forwards == 70 and request.headers.get("User-Agent") == "dialtone"


def test_retransmitted_request_answered_from_the_transaction() -> None:
    net, alice, _bob, script = _setup({"REGISTER": [200]})
    net.drop_starting(b"SIP/2.0 200")
    txn = alice.send_request(_request("REGISTER"), TO_BOB)
    net.run(1.0)
    # Timer E retransmitted the REGISTER at 0.5 s; bob's NIST answered it with the
    # bytes it kept, without a second event for the TU.
    assert len(net.sent(b"REGISTER")) == 2
    oks = net.sent(b"SIP/2.0 200")
    assert [p.delivered for p in oks] == [False, True] and oks[0].data == oks[1].data
    assert len(script.requests("REGISTER")) == 1
    assert _responses(net.events(alice)) == [(200, txn)]
    assert alice.stats()["stray_responses"] == 0


def test_retransmission_before_the_tu_answers_is_absorbed() -> None:
    net, alice, bob, script = _setup()
    alice.send_request(_request("REGISTER"), TO_BOB)
    net.run(2.0)  # retransmissions at 0.5 and 1.5
    assert len(net.sent(b"REGISTER")) == 3 and net.sent(b"SIP/2.0") == []
    assert len(script.requests("REGISTER")) == 1 and bob.stats()["retransmissions"] == 2
    event = script.requests("REGISTER")[0]
    assert event.transaction is not None
    bob.respond(event.transaction, make_response(event.request, 200, to_tag="t"))
    net.pump()
    assert [e.response.status for e in net.events(alice) if isinstance(e, ResponseReceived)] == [
        200
    ]


def test_client_timeout_after_32s() -> None:
    net = FakeNetwork()
    alice = SipEndpoint(local_host=ALICE[0], local_port=ALICE[1])
    net.add(alice)
    request = _request("OPTIONS")
    txn = alice.send_request(request, TO_BOB)  # nobody at bob's address
    net.run()
    assert net.events(alice) == [TransactionTimeout(txn, request)]
    assert len(net.sent(b"OPTIONS")) == 11  # at 0, 0.5, 1.5, 3.5, 7.5, 11.5 ... 31.5


# ---------------------------------------------------------------------------- INVITE


def test_invite_ringing_ok_ack() -> None:
    net, alice, bob, script = _setup({"INVITE": [180, 200]})
    invite = _request("INVITE")
    txn = alice.send_request(invite, TO_BOB)
    net.pump()
    events = net.events(alice)
    assert _responses(events) == [(100, txn), (180, txn), (200, txn)]
    ok = events[-1]
    assert isinstance(ok, ResponseReceived)
    alice.send_stateless(_ack_of_2xx(invite, ok.response), TO_BOB)
    net.pump()
    acks = script.requests("ACK")
    assert len(acks) == 1 and acks[0].transaction is None  # for the dialog layer
    assert acks[0].request.top_via.branch != invite.top_via.branch  # its own branch

    # RFC 6026: bob's IST (Accepted) absorbs INVITE retransmissions...
    invite_bytes = net.sent(b"INVITE")[0].data
    net.inject(invite_bytes, to=bob, source=Peer("udp", *ALICE))
    net.pump()
    assert len(script.requests("INVITE")) == 1 and len(net.sent(b"SIP/2.0 200")) == 1
    # ... and alice's ICT (Accepted) passes the TU's 2xx retransmissions on.
    bob.send_stateless(ok.response, Peer("udp", *ALICE))
    net.pump()
    assert _responses(net.events(alice)) == [(200, txn)]
    net.run()
    assert alice.transaction_count() == bob.transaction_count() == 0
    # After Timer M, a late 2xx still reaches the TU (to ACK and BYE), transactionless.
    bob.send_stateless(ok.response, Peer("udp", *ALICE))
    net.pump()
    assert _responses(net.events(alice)) == [(200, None)]


def test_invite_busy_ack_absorbed() -> None:
    net, alice, bob, script = _setup({"INVITE": [486]})
    net.drop_starting(b"ACK")  # the first ACK is lost: bob retransmits the 486
    txn = alice.send_request(_request("INVITE"), TO_BOB)
    net.run(1.0)
    assert _responses(net.events(alice)) == [(100, txn), (486, txn)]  # the 486 once
    assert len(net.sent(b"SIP/2.0 486")) == 2 and len(net.sent(b"ACK")) == 2
    ack = net.sent(b"ACK")[1]
    assert ack.delivered and b"CSeq: 1 ACK" in ack.data and b"tag=b0b" in ack.data
    assert script.requests("ACK") == []  # absorbed by bob's IST
    net.run()
    assert alice.transaction_count() == bob.transaction_count() == 0
    assert not [e for e in script.events if isinstance(e, TransactionTimeout)]


def test_invite_without_ack_times_out_on_timer_h() -> None:
    net, alice, _bob, script = _setup({"INVITE": [486]})
    net.drop(lambda p: p.data.startswith(b"ACK"), times=100)
    alice.send_request(_request("INVITE"), TO_BOB)
    net.run()
    timeouts = [e for e in script.events if isinstance(e, TransactionTimeout)]
    assert len(timeouts) == 1 and timeouts[0].request.method == "INVITE"


# ---------------------------------------------------------------------------- CANCEL


def test_cancel_after_provisional() -> None:
    net, alice, _bob, script = _setup({"INVITE": [180]})
    invite = _request("INVITE")
    txn = alice.send_request(invite, TO_BOB)
    net.pump()
    cancel_txn = alice.cancel(txn)
    assert cancel_txn is not None
    net.pump()
    cancel = parse_message(net.sent(b"CANCEL")[0].data)
    assert isinstance(cancel, Request)
    assert cancel.top_via.branch == invite.top_via.branch and str(cancel.cseq) == "1 CANCEL"
    assert cancel.uri == invite.uri and cancel.call_id == invite.call_id
    cancelled = [e for e in script.events if isinstance(e, CancelReceived)]
    assert len(cancelled) == 1 and cancelled[0].invite_transaction in script.invites
    ok = _parse_response(net.sent(b"SIP/2.0 200")[0].data)
    assert ok.cseq.method == "CANCEL" and ok.to.tag == "b0b"  # §9.2: the INVITE's tag
    assert sorted(_responses(net.events(alice)), key=str) == sorted(
        [(100, txn), (180, txn), (200, cancel_txn), (487, txn)], key=str
    )
    assert len(net.sent(b"ACK")) == 1 and script.requests("ACK") == []
    assert alice.cancel(txn) is None  # completed now


def test_cancel_before_provisional_waits_for_it() -> None:
    net, alice, _bob, script = _setup()
    net.drop_starting(b"SIP/2.0 100")  # the first 100 Trying is lost
    txn = alice.send_request(_request("INVITE"), TO_BOB)
    net.pump()
    cancel_txn = alice.cancel(txn)
    assert cancel_txn is not None and alice.cancel(txn) == cancel_txn
    net.pump()
    assert net.sent(b"CANCEL") == []  # §9.1: not before a provisional response
    net.run(0.5)  # Timer A: the INVITE again; bob's IST resends its 100
    assert len(net.sent(b"CANCEL")) == 1
    assert [e for e in script.events if isinstance(e, CancelReceived)]
    events = net.events(alice)
    assert (100, txn) in _responses(events) and (487, txn) in _responses(events)
    assert (200, cancel_txn) in _responses(events)


def test_cancel_of_completed_invite_is_none() -> None:
    net, alice, _bob, _script = _setup({"INVITE": [603]})
    txn = alice.send_request(_request("INVITE"), TO_BOB)
    net.pump()
    assert alice.cancel(txn) is None and alice.cancel("c nothing INVITE") is None


def test_unmatched_cancel_gets_481() -> None:
    net, _alice, bob, script = _setup()
    net.inject(_wire("CANCEL", "z9hG4bKnone"), to=bob, source=Peer("udp", "10.0.0.9", 5060))
    net.pump()
    answer = _parse_response(net.sent(b"SIP/2.0")[0].data)
    assert answer.status == 481 and answer.to.tag is not None
    assert script.events == []


# ---------------------------------------------------------------------------- robustness


def test_max_forwards_zero_gets_483() -> None:
    net, alice, bob, script = _setup({"REGISTER": [200], "INVITE": [200]})
    for method in ("REGISTER", "INVITE"):
        alice.send_request(_request(method, headers=[("Max-Forwards", "0")]), TO_BOB)
    net.pump()
    assert [p.start_line for p in net.sent(b"SIP/2.0")] == ["SIP/2.0 483 Too Many Hops"] * 2
    assert len(net.sent(b"ACK")) == 1  # alice ACKs the INVITE's 483; bob absorbs it
    assert script.events == []
    assert {s for s, _ in _responses(net.events(alice))} == {483}
    net.run()
    assert bob.transaction_count() == 0


def test_stray_responses_dropped() -> None:
    net, alice, _bob, _script = _setup()
    stray = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKstray\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: s\r\nCSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    net.inject(stray, to=alice, source=TO_BOB)
    net.inject(stray.replace(b";branch=z9hG4bKstray", b""), to=alice, source=TO_BOB)
    net.pump()
    assert net.events(alice) == []
    assert alice.stats()["stray_responses"] == 1 and alice.stats()["dropped"] == 1


def test_rport_and_received_behind_nat() -> None:
    net, alice, _bob, script = _setup({"REGISTER": [200]}, alice_public=("203.0.113.7", 40000))
    txn = alice.send_request(_request("REGISTER"), TO_BOB)
    net.pump()
    event = script.requests("REGISTER")[0]
    assert event.peer == Peer("udp", "203.0.113.7", 40000)
    via = event.request.top_via
    assert via.received == "203.0.113.7" and via.rport == 40000
    ok = net.sent(b"SIP/2.0 200")[0]
    assert ok.destination == ("203.0.113.7", 40000) and ok.delivered
    assert b"rport=40000;received=203.0.113.7" in ok.data
    assert _responses(net.events(alice)) == [(200, txn)]


def test_without_rport_the_response_goes_to_the_sent_by_port() -> None:
    bob = SipEndpoint(local_host=BOB[0], local_port=BOB[1])
    bob.receive(
        _wire("OPTIONS", "z9hG4bKp", via="10.0.0.9:5062"), Peer("udp", "10.0.0.9", 40001), 1.0
    )
    event = bob.next_event()
    assert isinstance(event, RequestReceived) and event.transaction is not None
    assert event.request.top_via.received == "10.0.0.9" and event.request.top_via.rport is None
    bob.respond(event.transaction, make_response(event.request, 200, to_tag="t"))
    (out,) = bob.datagrams_to_send(1.0)
    assert out.peer == Peer("udp", "10.0.0.9", 5062)  # §18.2.2


def test_tcp_responses_use_the_request_connection() -> None:
    net, alice, bob, script = _setup({"REGISTER": [200]})
    txn = alice.send_request(_request("REGISTER"), Peer("tcp", *BOB))
    assert alice.timer_count() == 1  # Timer F only: no retransmissions over TCP
    net.pump()
    (conn,) = net.connections()
    event = script.requests("REGISTER")[0]
    assert event.peer == Peer("tcp", "10.0.0.1", 49152, conn)
    assert event.request.top_via.transport == "TCP"
    ok = net.sent(b"SIP/2.0 200")[0]
    assert ok.connection == conn and ok.destination == ALICE and ok.transport == "tcp"
    assert _responses(net.events(alice)) == [(200, txn)]
    # J and K are zero on TCP: both transactions are gone at once.
    assert alice.transaction_count() == bob.transaction_count() == 0
    assert alice.timer_count() == bob.timer_count() == 0


def test_connection_lost_fails_client_transactions() -> None:
    net, alice, _bob, _script = _setup({"INVITE": [180]})
    invite = _request("INVITE")
    txn = alice.send_request(invite, Peer("tcp", *BOB))
    net.pump()
    assert _responses(net.events(alice)) == [(100, txn), (180, txn)]
    (conn,) = net.connections()
    net.close(conn)
    assert alice.next_event() == TransportFailed(txn, invite)
    assert alice.transaction_count() == 0


def test_transport_error_fails_udp_client_transaction() -> None:
    alice = SipEndpoint(local_host=ALICE[0], local_port=ALICE[1])
    request = _request("OPTIONS")
    txn = alice.send_request(request, TO_BOB, now=5.0)
    alice.transport_error(TO_BOB)
    assert alice.next_event() == TransportFailed(txn, request)
    assert alice.timer_count() == 0


def test_garbage_is_dropped_and_the_next_message_served() -> None:
    net, _alice, bob, script = _setup({"REGISTER": [200]})
    source = Peer("udp", "10.0.0.9", 5060)
    net.inject(b"\x00\xff garbage \r\n\r\n", to=bob, source=source)
    net.inject(b"INVITE sip:bob@x SIP/2.0\r\nVia: nonsense\r\n\r\n", to=bob, source=source)
    no_call_id = _wire("INVITE", "z9hG4bKg1").replace(b"Call-ID: z9hG4bKg1-call\r\n", b"")
    net.inject(no_call_id, to=bob, source=source)
    net.inject(_wire("REGISTER", "z9hG4bKg2"), to=bob, source=source)
    net.pump()
    assert [p.start_line for p in net.sent(b"SIP/2.0")] == [
        "SIP/2.0 400 Missing Call-ID",
        "SIP/2.0 200 OK",
    ]
    assert net.sent(b"SIP/2.0 400")[0].destination == ("10.0.0.9", 5060)
    assert len(script.requests("REGISTER")) == 1 and script.requests("INVITE") == []
    assert bob.stats()["dropped"] == 2 and bob.stats()["rejected"] == 1


def test_bad_to_or_from_gets_400() -> None:
    bob = SipEndpoint(local_host=BOB[0], local_port=BOB[1])
    source = Peer("udp", "10.0.0.9", 5060)
    bad_from = _wire("INVITE", "z9hG4bKb1").replace(b"From: <sip:x@10.0.0.9>", b"From: <sip:x@")
    bad_to = _wire("REGISTER", "z9hG4bKb2").replace(b"To: <sip:bob", b"To: bob <sip:bob")
    bad_to = bad_to.replace(b"To: bob <sip:bob@10.0.0.2>", b"To: <<sip:bob@10.0.0.2>")
    bob.receive(bad_from, source, 1.0)
    bob.receive(bad_to, source, 1.0)
    lines = [o.data.split(b"\r\n", 1)[0] for o in bob.datagrams_to_send(1.0)]
    assert lines == [b"SIP/2.0 400 Bad From", b"SIP/2.0 400 Bad To"]
    assert bob.next_event() is None and bob.transaction_count() == 0


def test_oversized_request_gets_513() -> None:
    bob = SipEndpoint(local_host=BOB[0], local_port=BOB[1], max_message_size=1000)
    source = Peer("udp", "10.0.0.9", 5060)
    big = _wire("MESSAGE", "z9hG4bKbig", extra="Content-Type: text/plain\r\n")
    big = big.replace(b"Content-Length: 0", b"Content-Length: 2000") + b"x" * 2000
    bob.receive(big, source, 1.0)
    bob.receive(b"y" * 5000, source, 1.0)
    (out,) = bob.datagrams_to_send(1.0)
    assert out.data.startswith(b"SIP/2.0 513 Message Too Large\r\n")
    assert bob.stats()["dropped"] == 1


def test_crlf_keepalives() -> None:
    bob = SipEndpoint(local_host=BOB[0], local_port=BOB[1])
    bob.receive(b"\r\n\r\n", Peer("tcp", "10.0.0.9", 40000, 3), 1.0)
    bob.receive(b"\r\n\r\n", Peer("udp", "10.0.0.9", 40000), 1.0)
    assert [(o.data, o.peer.transport) for o in bob.datagrams_to_send(1.0)] == [(b"\r\n", "tcp")]
    assert bob.next_event() is None and bob.stats()["dropped"] == 0


# ---------------------------------------------------------------------------- TU API


def test_respond_late_or_in_the_wrong_state() -> None:
    net, _alice, bob, script = _setup()
    _alice.send_request(_request("INVITE"), TO_BOB)
    net.pump()
    event = script.requests("INVITE")[0]
    assert event.transaction is not None
    bob.respond(event.transaction, make_response(event.request, 486, to_tag="t"))
    with pytest.raises(TransactionStateError):
        bob.respond(event.transaction, make_response(event.request, 180, to_tag="t"))
    bob.respond("s nothing here INVITE", make_response(event.request, 200, to_tag="t"))
    assert bob.stats()["late_responses"] == 1


def test_send_request_checks() -> None:
    alice = SipEndpoint(local_host=ALICE[0], local_port=ALICE[1], transports=("udp",))
    with pytest.raises(ValueError, match="ACK"):
        alice.send_request(_request("ACK"), TO_BOB)
    with pytest.raises(ValueError, match="tcp"):
        alice.send_request(_request("OPTIONS"), Peer("tcp", *BOB))
    request = _request("OPTIONS", headers=[("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx")])
    assert alice.send_request(request, TO_BOB) == "c z9hG4bKx OPTIONS"
    again = _request("OPTIONS", headers=[("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx")])
    with pytest.raises(ValueError, match="exists"):
        alice.send_request(again, TO_BOB)
    no_branch = _request("OPTIONS", headers=[("Via", "SIP/2.0/UDP 10.0.0.1:5060;rport")])
    alice.send_request(no_branch, TO_BOB)
    via = no_branch.top_via
    assert via.branch is not None and via.branch.startswith("z9hG4bK") and via.has_rport


def test_identifiers_are_fresh() -> None:
    assert SipEndpoint.new_branch().startswith("z9hG4bK")
    assert len({SipEndpoint.new_branch() for _ in range(100)}) == 100
    assert SipEndpoint.new_tag() != SipEndpoint.new_tag()
    assert len(SipEndpoint.new_call_id()) == 32


def test_check_method() -> None:
    assert check_method(_request("OPTIONS"), to_tag="t") is None
    not_allowed = check_method(_request("SUBSCRIBE"), to_tag="t")
    assert not_allowed is not None and not_allowed.status == 405
    assert not_allowed.headers.get("Allow") == "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO"
    unknown = check_method(_request("FROBNICATE"), ("OPTIONS",), to_tag="t")
    assert (
        unknown is not None and unknown.status == 501 and unknown.headers.get("Allow") == "OPTIONS"
    )


def test_unknown_methods_reach_the_tu() -> None:
    net, alice, _bob, script = _setup({"FROBNICATE": [501]})
    txn = alice.send_request(_request("FROBNICATE"), TO_BOB)
    net.pump()
    assert len(script.requests("FROBNICATE")) == 1
    assert _responses(net.events(alice)) == [(501, txn)]


# ---------------------------------------------------------------------------- corners


def test_rfc2543_peer_without_magic_cookie() -> None:
    """§17.2.3: branch-less matching for INVITE retransmission, CANCEL and ACK."""
    net, _alice, bob, script = _setup({"INVITE": [180]})
    source = Peer("udp", "10.0.0.9", 5060)
    invite = _wire("INVITE", "1", via="10.0.0.9:5060")
    net.inject(invite, to=bob, source=source)
    net.pump()
    net.inject(invite, to=bob, source=source)  # a retransmission: the 180 again
    net.pump()
    assert len(script.requests("INVITE")) == 1
    assert [p.start_line for p in net.sent(b"SIP/2.0")] == [
        "SIP/2.0 100 Trying",
        "SIP/2.0 180 Ringing",
        "SIP/2.0 180 Ringing",
    ]
    net.inject(_wire("CANCEL", "1", via="10.0.0.9:5060"), to=bob, source=source)
    net.pump()
    assert [e for e in script.events if isinstance(e, CancelReceived)]
    ack = _wire("ACK", "1", via="10.0.0.9:5060").replace(
        b"bob@10.0.0.2>\r\n", b"bob@10.0.0.2>;tag=b0b\r\n"
    )
    net.inject(ack, to=bob, source=source)
    net.pump()
    assert script.requests("ACK") == []  # absorbed by the IST (Completed -> Confirmed)
    assert {p.start_line for p in net.sent(b"SIP/2.0")} >= {
        "SIP/2.0 200 OK",
        "SIP/2.0 487 Request Terminated",
    }


def test_ack_in_accepted_goes_to_the_tu() -> None:
    """RFC 6026 §7.1: an ACK matching an IST in Accepted is passed up."""
    net, _alice, bob, script = _setup({"INVITE": [200]})
    source = Peer("udp", "10.0.0.9", 5060)
    net.inject(_wire("INVITE", "z9hG4bKsame"), to=bob, source=source)
    net.pump()  # bob's TU answers 200: Accepted
    net.inject(_wire("ACK", "z9hG4bKsame"), to=bob, source=source)
    net.pump()
    acks = script.requests("ACK")
    assert len(acks) == 1 and acks[0].transaction is None


def test_2xx_from_a_fork_after_the_final_reaches_the_tu() -> None:
    net, alice, _bob, _script = _setup({"INVITE": [486]})
    txn = alice.send_request(_request("INVITE"), TO_BOB)
    net.pump()
    busy = _parse_response(net.sent(b"SIP/2.0 486")[0].data)
    forked = make_response(_request("INVITE"), 200, to_tag="other")
    forked.headers = busy.headers.copy()
    forked.headers.set("To", "<sip:bob@10.0.0.2>;tag=other")
    net.inject(forked.to_bytes(), to=alice, source=TO_BOB)
    net.pump()
    assert _responses(net.events(alice)) == [(100, txn), (486, txn), (200, txn)]


def test_late_2xx_window_closes() -> None:
    net, alice, _bob, _script = _setup({"INVITE": [200]})
    alice.send_request(_request("INVITE"), TO_BOB)
    net.run()  # Timer M ends the ICT; the 2xx stays welcome for 64*T1 more
    ok = net.sent(b"SIP/2.0 200")[0].data
    net.events(alice)
    net.clock.advance(33)
    alice.handle_timer(net.clock.monotonic())
    net.inject(ok, to=alice, source=TO_BOB)
    net.pump()
    assert net.events(alice) == [] and alice.stats()["stray_responses"] == 1


def test_several_via_lines_keep_their_order() -> None:
    bob = SipEndpoint(local_host=BOB[0], local_port=BOB[1])
    data = _wire("OPTIONS", "z9hG4bKv1", via="proxy.example:5060;rport").replace(
        b"Max-Forwards", b"Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKv0\r\nMax-Forwards"
    )
    source = Peer("udp", "10.0.0.5", 5060)
    bob.receive(data, source, 1.0)
    event = bob.next_event()
    assert isinstance(event, RequestReceived) and event.transaction is not None
    assert [v.host for v in event.request.vias] == ["proxy.example", "10.0.0.9"]
    assert event.request.top_via.received == "10.0.0.5" and event.request.top_via.rport == 5060
    bob.respond(event.transaction, make_response(event.request, 200, to_tag="t"))
    (out,) = bob.datagrams_to_send(1.0)
    assert [v.host for v in _parse_response(out.data).vias] == ["proxy.example", "10.0.0.9"]


def test_messages_with_unusable_vias_are_dropped() -> None:
    bob = SipEndpoint(local_host=BOB[0], local_port=BOB[1])
    source = Peer("udp", "10.0.0.9", 5060)
    bad_request = _wire("OPTIONS", "z9hG4bKx").replace(b"SIP/2.0/UDP", b"SIP/2UDP")
    bad_response = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2UDP 10.0.0.2:5060;branch=z9hG4bKy\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: s\r\nCSeq: 1 OPTIONS\r\n\r\n"
    )
    bob.receive(bad_request, source, 1.0)
    bob.receive(bad_response, source, 1.0)
    assert bob.datagrams_to_send(1.0) == [] and bob.next_event() is None
    assert bob.stats()["dropped"] == 2


def test_oversized_request_without_content_length() -> None:
    bob = SipEndpoint(local_host=BOB[0], local_port=BOB[1], max_message_size=600)
    big = _wire("MESSAGE", "z9hG4bKbig2").replace(b"Content-Length: 0\r\n", b"") + b"x" * 700
    bob.receive(big, Peer("udp", "10.0.0.9", 5060), 1.0)
    (out,) = bob.datagrams_to_send(1.0)
    assert out.data.startswith(b"SIP/2.0 513 ")


def test_ipv6_local_address_in_via() -> None:
    alice = SipEndpoint(local_host="2001:db8::1", local_port=5070)
    request = _request("OPTIONS")
    alice.send_request(request, Peer("udp", "2001:db8::2", 5060), now=1.0)
    assert request.top_via.sent_by == "[2001:db8::1]:5070"


def test_tcp_reuses_the_connection_and_reports_refusals() -> None:
    net, alice, _bob, _script = _setup({"OPTIONS": [200]})
    for _ in range(2):
        alice.send_request(_request("OPTIONS"), Peer("tcp", *BOB))
    net.pump()
    assert len(net.connections()) == 1
    request = _request("OPTIONS")
    txn = alice.send_request(request, Peer("tcp", "10.0.0.99", 5060))
    net.pump()
    assert TransportFailed(txn, request) in net.events(alice)


def test_fake_clock() -> None:
    clock = FakeClock()
    start, wall = clock.monotonic(), clock.utcnow()
    clock.advance(1.5)
    clock.advance_to(start + 1.0)  # already past: no-op
    assert clock.monotonic() == start + 1.5
    assert clock.utcnow() - wall == timedelta(seconds=1.5)
    with pytest.raises(ValueError, match="back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="aware"):
        FakeClock(utc=datetime(2024, 1, 1))


# ---------------------------------------------------------------------------- fuzz

_SEEDS = [
    _wire("REGISTER", "z9hG4bKf1", extra="Contact: <sip:x@10.0.0.9>;expires=60\r\n"),
    _wire("INVITE", "z9hG4bKf2", extra="Content-Type: application/sdp\r\n"),
    _wire("ACK", "z9hG4bKf2"),
    _wire("CANCEL", "z9hG4bKf2"),
    _wire("OPTIONS", "oldbranch", via="10.0.0.9"),
    _wire("BYE", "z9hG4bKf3", via="[2001:db8::9]:5060;rport;received=1.2.3.4, SIP/2.0/TCP x"),
    b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKc1\r\n"
    b"From: <sip:bob@x>;tag=1\r\nTo: <sip:a@x>;tag=2\r\nCall-ID: f\r\nCSeq: 1 INVITE\r\n\r\n",
    b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKc1\r\n"
    b"From: <sip:bob@x>;tag=1\r\nTo: <sip:a@x>;tag=2\r\nCall-ID: f\r\nCSeq: 1 INVITE\r\n\r\n",
]


def _fuzz_endpoint() -> SipEndpoint:
    endpoint = SipEndpoint(local_host=BOB[0], local_port=BOB[1])
    invite = _request("INVITE", headers=[("Via", "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKc1")])
    endpoint.send_request(invite, Peer("udp", "10.0.0.9", 5060), now=0.0)
    return endpoint


def _serve(endpoint: SipEndpoint, now: float) -> None:
    """A TU that answers everything 200 (and a cancelled INVITE 487)."""
    invites: dict[str, Request] = {}
    while (event := endpoint.next_event()) is not None:
        if isinstance(event, RequestReceived) and event.transaction is not None:
            invites[event.transaction] = event.request
            endpoint.respond(event.transaction, make_response(event.request, 200, to_tag="t"), now)
        elif isinstance(event, CancelReceived) and event.invite_transaction in invites:
            invite = invites[event.invite_transaction]
            endpoint.respond(event.invite_transaction, make_response(invite, 487, to_tag="t"), now)
    endpoint.datagrams_to_send(now)


def _still_serves(endpoint: SipEndpoint, now: float) -> None:
    endpoint.receive(_wire("REGISTER", "z9hG4bKafter"), Peer("udp", "10.0.0.8", 5060), now)
    event = endpoint.next_event()
    assert isinstance(event, RequestReceived) and event.transaction is not None
    endpoint.respond(event.transaction, make_response(event.request, 200, to_tag="t"), now)
    assert any(o.data.startswith(b"SIP/2.0 200") for o in endpoint.datagrams_to_send(now))


_PEERS = st.sampled_from(
    [
        Peer("udp", "10.0.0.9", 5060),
        Peer("udp", "10.0.0.9", 40000),
        Peer("tcp", "10.0.0.9", 41000, 5),
    ]
)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "duplicate", "truncate"]))
        if kind == "delete":
            del data[at : at + draw(st.integers(1, 12))]
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from([b"\r\n", b" ", b",", b";", b":", b"\x00", b"<"]))
        elif kind == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "duplicate":
            line_end = data.find(b"\r\n", at)
            data[at:at] = data[at : line_end + 2] if line_end > 0 else b""
        else:
            data = data[:at]
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), _PEERS)
def test_random_bytes_never_raise(data: bytes, peer: Peer) -> None:
    endpoint = _fuzz_endpoint()
    endpoint.receive(data, peer, 1.0)
    _serve(endpoint, 1.0)
    _still_serves(endpoint, 1.5)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_mutated(), _PEERS, st.floats(0, 3)), min_size=1, max_size=8))
def test_mutated_messages_never_raise(messages: list[tuple[bytes, Peer, float]]) -> None:
    endpoint = _fuzz_endpoint()
    now = 1.0
    for data, peer, wait in messages:
        now += wait
        endpoint.handle_timer(now)
        endpoint.receive(data, peer, now)
        _serve(endpoint, now)
    _still_serves(endpoint, now)
    for _ in range(200):  # every timer runs out: nothing is left behind
        deadline = endpoint.next_timer()
        if deadline is None:
            break
        endpoint.handle_timer(deadline)
        _serve(endpoint, deadline)
    assert endpoint.timer_count() == 0
    # Only the fuzz client INVITE can remain (Proceeding has no timer, §17.1.1.2).
    assert endpoint.transaction_count() <= 1
