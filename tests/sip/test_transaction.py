"""The transaction machines (RFC 3261 §17, RFC 6026) against their table, with fake time.

Every row of ``TRANSITIONS`` is driven once (``test_every_row``); the retransmission
schedules and timeouts are asserted to the half second.
"""

from __future__ import annotations

import itertools

import pytest

from dialtone.sip.events import (
    Event,
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionTimeout,
    TransportFailed,
)
from dialtone.sip.message import Request, Response, make_response, parse_message
from dialtone.sip.timers import T1, T2, T4, TimerHeap
from dialtone.sip.transaction import (
    ClientTransaction,
    ServerTransaction,
    TimerKey,
    Transaction,
    build_ack,
    build_cancel,
    client_key,
    server_key,
)
from dialtone.sip.transitions import (
    ACCEPTED,
    CALLING,
    COMPLETED,
    CONFIRMED,
    DURATIONS,
    ICT,
    INIT,
    IST,
    NICT,
    NIST,
    PROCEEDING,
    TERMINATED,
    TIMER_INPUTS,
    TRANSITIONS,
    TRYING,
    TU_INPUTS,
    Do,
    Input,
    Kind,
    Start,
    State,
    Stop,
    Timer,
    TransactionStateError,
)

UDP = Peer("udp", "192.0.2.1", 5060)
TCP = Peer("tcp", "192.0.2.1", 5060, connection=7)
T0 = 1000.0


def _request(method: str, branch: str = "z9hG4bKabc") -> Request:
    text = (
        f"{method} sip:bob@192.0.2.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.9:5060;branch={branch}\r\n"
        "Route: <sip:proxy.example;lr>\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.com>;tag=f1\r\n"
        "To: <sip:bob@example.com>\r\n"
        "Call-ID: call-1\r\n"
        f"CSeq: 4 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def _response(request: Request, status: int) -> Response:
    return make_response(request, status, to_tag=None if status == 100 else "t1")


class FakeHost:
    """A TransactionHost that records what the transaction does."""

    def __init__(self) -> None:
        self.timers: TimerHeap[TimerKey] = TimerHeap()
        self.sent: list[tuple[float, bytes, Peer]] = []
        self.events: list[Event] = []
        self.ended: list[Transaction] = []
        self.now = T0
        self.txns: dict[str, Transaction] = {}

    def transmit(self, data: bytes, peer: Peer) -> None:
        self.sent.append((self.now, data, peer))

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def terminated(self, transaction: Transaction, now: float | None) -> None:
        self.ended.append(transaction)

    def advance(self, until: float) -> None:
        """Fire every timer up to ``until`` at its own deadline."""
        while (deadline := self.timers.next_deadline()) is not None and deadline <= until:
            self.now = deadline
            for txn_id, timer in self.timers.pop_due(deadline):
                self.txns[txn_id].fire(timer, deadline)
        self.now = max(self.now, until)


def _make(host: FakeHost, kind: Kind, peer: Peer = UDP) -> Transaction:
    request = _request("INVITE" if kind in (ICT, IST) else "OPTIONS")
    txn: Transaction
    if kind in (ICT, NICT):
        txn = ClientTransaction(host, kind, "c-txn", peer, request)
    else:
        txn = ServerTransaction(host, kind, "s-txn", peer, request)
    host.txns[txn.id] = txn
    return txn


def _message(txn: Transaction, event: Input) -> Request | Response | None:
    invite = _request("INVITE")
    statuses = {
        Input.RECV_1XX: 180,
        Input.RECV_2XX: 200,
        Input.RECV_FAILURE: 486,
        Input.SEND_1XX: 180,
        Input.SEND_2XX: 200,
        Input.SEND_FAILURE: 486,
    }
    if event in statuses:
        return _response(invite, statuses[event])
    if event is Input.RECV_REQUEST:  # the first or a retransmission (the same bytes)
        return _request("INVITE" if txn.kind in (ICT, IST) else "OPTIONS")
    if event is Input.RECV_ACK:
        return _request("ACK")
    return None


# How to reach each state from INIT, over UDP.
PATHS: dict[tuple[Kind, State], list[Input]] = {
    (ICT, INIT): [],
    (ICT, CALLING): [Input.START],
    (ICT, PROCEEDING): [Input.START, Input.RECV_1XX],
    (ICT, COMPLETED): [Input.START, Input.RECV_FAILURE],
    (ICT, ACCEPTED): [Input.START, Input.RECV_2XX],
    (NICT, INIT): [],
    (NICT, TRYING): [Input.START],
    (NICT, PROCEEDING): [Input.START, Input.RECV_1XX],
    (NICT, COMPLETED): [Input.START, Input.RECV_2XX],
    (IST, INIT): [],
    (IST, PROCEEDING): [Input.RECV_REQUEST],
    (IST, COMPLETED): [Input.RECV_REQUEST, Input.SEND_FAILURE],
    (IST, CONFIRMED): [Input.RECV_REQUEST, Input.SEND_FAILURE, Input.RECV_ACK],
    (IST, ACCEPTED): [Input.RECV_REQUEST, Input.SEND_2XX],
    (NIST, INIT): [],
    (NIST, TRYING): [Input.RECV_REQUEST],
    (NIST, PROCEEDING): [Input.RECV_REQUEST, Input.SEND_1XX],
    (NIST, COMPLETED): [Input.RECV_REQUEST, Input.SEND_2XX],
}


def _drive(host: FakeHost, kind: Kind, state: State) -> Transaction:
    txn = _make(host, kind)
    for event in PATHS[kind, state]:
        assert txn.feed(event, host.now, _message(txn, event), UDP)
    assert txn.state is state
    host.sent.clear()
    host.events.clear()
    return txn


_SENDS = {
    Do.SEND_REQUEST,
    Do.RESEND_REQUEST,
    Do.SEND_ACK,
    Do.SEND_TRYING,
    Do.SEND_RESPONSE,
    Do.RESEND_RESPONSE,
}
_REPORTS = {
    Do.TO_TU: (RequestReceived, ResponseReceived),
    Do.REPORT_TIMEOUT: (TransactionTimeout,),
    Do.REPORT_TRANSPORT_ERROR: (TransportFailed,),
}


@pytest.mark.parametrize(
    ("kind", "state", "event"),
    list(TRANSITIONS),
    ids=[f"{k.name}-{s.name}-{i.name}" for k, s, i in TRANSITIONS],
)
def test_every_row(kind: Kind, state: State, event: Input) -> None:
    row = TRANSITIONS[kind, state, event]
    host = FakeHost()
    txn = _drive(host, kind, state)
    timer = next((t for t, i in TIMER_INPUTS.items() if i is event), None)
    waiting = txn._wait[0] if txn._wait is not None and txn._wait[0] is not timer else None
    started = [a.timer for a in row.actions if isinstance(a, Start)]
    if waiting is not None and any(t not in (Timer.A, Timer.E, Timer.G) for t in started):
        # One non-retransmission timer at a time: a row starting one stops the other.
        assert Stop(waiting) in row.actions
    if timer is not None:
        # A timer row is only reachable when that timer runs in that state.
        assert txn.timer_running(timer), f"Timer {timer.name} is not running in {state}"
        slot = txn._resend if timer in (Timer.A, Timer.E, Timer.G) else txn._wait
        assert slot is not None and slot[0] is timer
        host.timers.cancel(slot[1])  # as popping it from the heap would
        txn.fire(timer, host.now)
    else:
        assert txn.feed(event, host.now, _message(txn, event), UDP)
    assert txn.state is row.next_state
    actions = row.actions
    assert len(host.sent) == sum(a in _SENDS for a in actions)
    reported = [a for a in actions if isinstance(a, Do) and a in _REPORTS]
    assert len(host.events) == len(reported)
    for action, emitted in zip(reported, host.events, strict=True):
        assert isinstance(emitted, _REPORTS[action])
    if Do.TERMINATE in actions:
        assert actions[-1] is Do.TERMINATE and row.next_state is TERMINATED
        assert host.ended == [txn] and len(host.timers) == 0
    else:
        assert row.next_state is not TERMINATED and host.ended == []
        for step in actions:
            if isinstance(step, Start):
                assert txn.timer_running(step.timer)
            elif isinstance(step, Stop):
                assert not txn.timer_running(step.timer)
    if Do.DROP_REQUEST in actions:
        assert txn.request is None


def _unlisted() -> list[tuple[Kind, State, Input]]:
    return [
        (kind, state, event)
        for (kind, state), event in itertools.product(PATHS, Input)
        if (kind, state, event) not in TRANSITIONS
    ]


@pytest.mark.parametrize(("kind", "state", "event"), _unlisted())
def test_inputs_without_row(kind: Kind, state: State, event: Input) -> None:
    """Rule 3: network and timer inputs are absorbed, TU inputs raise."""
    host = FakeHost()
    txn = _drive(host, kind, state)
    message = _message(txn, event)
    if event in TU_INPUTS:
        with pytest.raises(TransactionStateError):
            txn.feed(event, host.now, message, UDP)
    else:
        assert not txn.feed(event, host.now, message, UDP)
        assert host.sent == [] and host.events == []
    assert txn.state is state


def test_table_rules() -> None:
    for (kind, _state, _event), row in TRANSITIONS.items():
        client = kind in (ICT, NICT)
        for action in row.actions:
            if client:
                assert action not in (Do.SEND_TRYING, Do.SEND_RESPONSE, Do.RESEND_RESPONSE)
            else:
                assert action not in (Do.SEND_REQUEST, Do.RESEND_REQUEST, Do.SEND_ACK)
    assert set(DURATIONS) == set(Timer)


# ---------------------------------------------------------------------------- schedules


def _times(host: FakeHost) -> list[float]:
    return [round(t - T0, 3) for t, _, _ in host.sent]


def test_timer_a_doubles_until_b() -> None:
    host = FakeHost()
    txn = _make(host, ICT)
    txn.feed(Input.START, T0)
    host.advance(T0 + 40)
    # Sent at 0, retransmitted after 0.5, 1, 2, 4, 8, 16 (Timer A doubles, no cap).
    assert _times(host) == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert len({data for _, data, _ in host.sent}) == 1
    assert host.events == [TransactionTimeout("c-txn", txn.request)]  # type: ignore[arg-type]
    assert txn.state is TERMINATED and host.now == T0 + 40


def test_timer_e_capped_at_t2_until_f() -> None:
    host = FakeHost()
    txn = _make(host, NICT)
    txn.feed(Input.START, T0)
    host.advance(T0 + 40)
    intervals = [b - a for a, b in itertools.pairwise(_times(host))]
    assert intervals == [0.5, 1, 2, 4, 4, 4, 4, 4, 4, 4]  # E: T1, 2T1, 4T1, T2, T2...
    assert isinstance(host.events[0], TransactionTimeout)
    assert len(host.events) == 1 and txn.state is TERMINATED


def test_timer_f_fires_at_32s() -> None:
    host = FakeHost()
    txn = _make(host, NICT)
    txn.feed(Input.START, T0)
    host.advance(T0 + 31.999)
    assert host.events == []
    host.advance(T0 + 32)
    assert isinstance(host.events[0], TransactionTimeout)


def test_timer_b_fires_at_32s() -> None:
    host = FakeHost()
    txn = _make(host, ICT)
    txn.feed(Input.START, T0)
    host.advance(T0 + 31.999)
    assert host.events == []
    host.advance(T0 + 32)
    assert isinstance(host.events[0], TransactionTimeout) and txn.state is TERMINATED


def test_timer_e_in_proceeding_fires_at_t2() -> None:
    host = FakeHost()
    txn = _make(host, NICT)
    txn.feed(Input.START, T0)
    host.advance(T0 + 0.2)
    assert txn.request is not None
    txn.feed(Input.RECV_1XX, host.now, _response(txn.request, 100), UDP)
    host.advance(T0 + 14)
    # The running E fires at 0.5; from then on Proceeding resets it to T2 (§17.1.2.2).
    assert _times(host) == [0, 0.5, 4.5, 8.5, 12.5]


def test_timer_g_capped_at_t2_until_h() -> None:
    host = FakeHost()
    txn = _make(host, IST)
    assert txn.request is not None
    txn.feed(Input.RECV_REQUEST, T0, txn.request, UDP)
    txn.feed(Input.SEND_FAILURE, T0, _response(txn.request, 486))
    host.advance(T0 + 40)
    times = _times(host)
    assert times[:2] == [0, 0]  # the 100 Trying, then the 486
    assert [b - a for a, b in itertools.pairwise(times[1:])] == [0.5, 1, 2, 4, 4, 4, 4, 4, 4, 4]
    assert len(host.events) == 2  # the INVITE to the TU, then Timer H without ACK
    assert isinstance(host.events[1], TransactionTimeout) and txn.state is TERMINATED
    assert host.now == T0 + 40 and times[-1] == 31.5


def test_timer_h_fires_without_ack_at_32s() -> None:
    host = FakeHost()
    txn = _drive(host, IST, COMPLETED)
    host.advance(T0 + 31.9)
    assert txn.state is COMPLETED
    host.advance(T0 + 32)
    assert txn.state is TERMINATED
    assert isinstance(host.events[-1], TransactionTimeout)


@pytest.mark.parametrize(
    ("kind", "state", "timer", "udp_seconds"),
    [
        (ICT, COMPLETED, Timer.D, 32.0),
        (NICT, COMPLETED, Timer.K, T4),
        (IST, CONFIRMED, Timer.I, T4),
        (NIST, COMPLETED, Timer.J, 64 * T1),
        (IST, ACCEPTED, Timer.L, 64 * T1),
        (ICT, ACCEPTED, Timer.M, 64 * T1),
    ],
)
def test_wait_timer_durations(kind: Kind, state: State, timer: Timer, udp_seconds: float) -> None:
    host = FakeHost()
    txn = _drive(host, kind, state)
    assert txn.timer_running(timer)
    assert host.timers.next_deadline() is not None
    host.advance(T0 + udp_seconds - 0.001)
    assert txn.state is state
    host.advance(T0 + udp_seconds)
    assert txn.state is TERMINATED and host.ended == [txn] and host.sent == []


def _tcp(kind: Kind) -> tuple[FakeHost, Transaction]:
    host = FakeHost()
    return host, _make(host, kind, TCP)


def test_no_retransmissions_over_tcp_and_b_still_fires() -> None:
    for kind in (ICT, NICT):
        host, txn = _tcp(kind)
        txn.feed(Input.START, T0)
        assert len(host.timers) == 1  # B or F only: no A, no E
        host.advance(T0 + 40)
        assert _times(host) == [0]
        assert isinstance(host.events[0], TransactionTimeout)
        assert host.sent[0][2] == TCP


def test_no_response_retransmissions_over_tcp() -> None:
    host, txn = _tcp(IST)
    assert txn.request is not None
    txn.feed(Input.RECV_REQUEST, T0, txn.request, TCP)
    txn.feed(Input.SEND_FAILURE, T0, _response(txn.request, 486))
    assert not txn.timer_running(Timer.G) and txn.timer_running(Timer.H)
    host.advance(T0 + 40)
    assert _times(host) == [0, 0]
    assert isinstance(host.events[-1], TransactionTimeout)


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        (ICT, [Input.START, Input.RECV_FAILURE]),  # D = 0
        (NICT, [Input.START, Input.RECV_2XX]),  # K = 0
        (IST, [Input.RECV_REQUEST, Input.SEND_FAILURE, Input.RECV_ACK]),  # I = 0
        (NIST, [Input.RECV_REQUEST, Input.SEND_2XX]),  # J = 0
    ],
)
def test_zero_wait_timers_over_tcp(kind: Kind, path: list[Input]) -> None:
    host, txn = _tcp(kind)
    for event in path:
        txn.feed(event, T0, _message(txn, event), TCP)
    assert txn.state is TERMINATED and host.ended == [txn] and len(host.timers) == 0


# ---------------------------------------------------------------------------- behaviours


def test_ict_acks_each_final_retransmission_without_telling_the_tu() -> None:
    host = FakeHost()
    txn = _drive(host, ICT, CALLING)
    assert txn.request is not None
    busy = _response(txn.request, 486)
    txn.feed(Input.RECV_FAILURE, T0, busy, UDP)
    txn.feed(Input.RECV_FAILURE, T0 + 1, busy, UDP)
    acks = [data for _, data, _ in host.sent]
    assert len(acks) == 2 and acks[0] == acks[1] and acks[0].startswith(b"ACK ")
    assert [type(e) for e in host.events] == [ResponseReceived]


def test_ist_accepted_absorbs_invite_and_passes_ack() -> None:
    host = FakeHost()
    txn = _drive(host, IST, ACCEPTED)
    assert txn.request is not None
    for _ in range(3):
        assert txn.feed(Input.RECV_REQUEST, T0 + 1, txn.request, UDP)
    assert host.sent == [] and host.events == []
    ack = _request("ACK")
    txn.feed(Input.RECV_ACK, T0 + 1, ack, UDP)
    assert host.events == [RequestReceived(ack, UDP, None)]
    txn.feed(Input.SEND_2XX, T0 + 2, _response(txn.request, 200))  # the TU retransmits
    assert len(host.sent) == 1


def test_ict_accepted_passes_2xx_retransmissions() -> None:
    host = FakeHost()
    txn = _drive(host, ICT, ACCEPTED)
    assert txn.request is not None
    ok = _response(txn.request, 200)
    txn.feed(Input.RECV_2XX, T0 + 1, ok, UDP)
    assert host.events == [ResponseReceived(ok, UDP, "c-txn")]
    assert host.sent == []  # the TU ACKs a 2xx, not the transaction


def test_nist_completed_keeps_only_bytes_and_peer() -> None:
    host = FakeHost()
    txn = _drive(host, NIST, COMPLETED)
    assert isinstance(txn, ServerTransaction)
    assert txn.request is None and txn.last_response is not None
    assert txn.last_response.startswith(b"SIP/2.0 200 OK")
    request = _request("OPTIONS")
    txn.feed(Input.RECV_REQUEST, T0 + 1, request, UDP)
    assert host.sent == [(T0, txn.last_response, UDP)]


def test_ist_sends_100_trying_copying_timestamp() -> None:
    host = FakeHost()
    request = _request("INVITE")
    request.headers.add("Timestamp", "54")
    txn = ServerTransaction(host, IST, "s", UDP, request)
    txn.feed(Input.RECV_REQUEST, T0, request, UDP)
    trying = parse_message(host.sent[0][1])
    assert isinstance(trying, Response) and trying.status == 100
    assert trying.headers.get("Timestamp") == "54" and trying.to.tag is None
    assert host.events == [RequestReceived(request, UDP, "s")]


def test_ist_remembers_to_tag_for_cancel() -> None:
    host = FakeHost()
    txn = _drive(host, IST, PROCEEDING)
    assert isinstance(txn, ServerTransaction) and txn.request is not None
    assert txn.to_tag is None  # the 100 has no tag
    txn.feed(Input.SEND_1XX, T0, make_response(txn.request, 180, to_tag="x9"))
    assert txn.to_tag == "x9"


def test_timers_started_without_now_wait_for_anchor() -> None:
    host = FakeHost()
    txn = _make(host, NICT)
    txn.feed(Input.START, None)
    assert host.timers.next_deadline() is None and len(host.timers) == 2
    host.timers.anchor(T0 + 60)
    assert host.timers.next_deadline() == T0 + 60 + T1


# ---------------------------------------------------------------------------- messages and keys


def test_build_ack_of_non_2xx() -> None:
    invite = _request("INVITE")
    ack = build_ack(invite, _response(invite, 486))
    assert ack.method == "ACK" and ack.uri == invite.uri
    assert ack.headers.get_all("Via") == [str(invite.top_via)]
    assert ack.to.tag == "t1" and ack.from_.tag == "f1"
    assert str(ack.cseq) == "4 ACK" and ack.call_id == "call-1"
    assert ack.headers.get_all("Route") == ["<sip:proxy.example;lr>"]


def test_build_cancel() -> None:
    invite = _request("INVITE")
    cancel = build_cancel(invite)
    assert cancel.method == "CANCEL" and cancel.uri == invite.uri
    assert cancel.top_via.branch == "z9hG4bKabc" and len(cancel.vias) == 1
    assert cancel.headers.get("To") == invite.headers.get("To")
    assert str(cancel.cseq) == "4 CANCEL" and cancel.max_forwards == 70
    assert cancel.headers.get_all("Route") == invite.headers.get_all("Route")


def test_keys() -> None:
    invite = _request("INVITE")
    ack = _request("ACK")
    cancel = _request("CANCEL")
    via = invite.top_via
    assert client_key("z9hG4bKabc", "INVITE") != client_key("z9hG4bKabc", "CANCEL")
    assert server_key(ack, ack.top_via, "INVITE") == server_key(invite, via, "INVITE")
    assert server_key(cancel, cancel.top_via, "CANCEL") != server_key(invite, via, "INVITE")
    assert server_key(cancel, cancel.top_via, "INVITE") == server_key(invite, via, "INVITE")
    other_host = _request("INVITE")
    other_host.headers.set("Via", "SIP/2.0/UDP 192.0.2.77:5060;branch=z9hG4bKabc")
    assert server_key(other_host, other_host.top_via, "INVITE") != server_key(invite, via, "INVITE")


def test_rfc2543_keys() -> None:
    """§17.2.3 fallback: no magic cookie, match on URI, From tag, Call-ID, CSeq, Via."""
    invite = _request("INVITE", branch="old1")
    ack = _request("ACK", branch="old1")
    ack.headers.set("To", "<sip:bob@example.com>;tag=t1")  # the response's tag
    assert server_key(ack, ack.top_via, "INVITE") == server_key(invite, invite.top_via, "INVITE")
    again = _request("INVITE", branch="old1")
    again.headers.set("CSeq", "5 INVITE")
    assert server_key(again, again.top_via, "INVITE") != server_key(
        invite, invite.top_via, "INVITE"
    )
    no_branch = _request("INVITE")
    no_branch.headers.set("Via", "SIP/2.0/UDP 192.0.2.9:5060")
    assert server_key(no_branch, no_branch.top_via, "INVITE").startswith("s2543 ")


# ---------------------------------------------------------------------------- the heap


def test_heap_orders_cancels_and_counts() -> None:
    heap: TimerHeap[str] = TimerHeap()
    b = heap.schedule(2.0, "b")
    heap.schedule(1.0, "a")
    heap.schedule(2.0, "c")  # same deadline: scheduling order
    heap.schedule(5.0, "d")
    heap.cancel(b)
    assert len(heap) == 3 and heap.next_deadline() == 1.0
    assert list(heap.pop_due(2.0)) == ["a", "c"]
    assert heap.next_deadline() == 5.0 and len(heap) == 1
    assert list(heap.pop_due(4.9)) == []
    assert list(heap.pop_due(5.0)) == ["d"] and not heap and heap.next_deadline() is None


def test_heap_pop_due_honours_cancel_during_iteration() -> None:
    heap: TimerHeap[str] = TimerHeap()
    heap.schedule(1.0, "first")
    second = heap.schedule(1.0, "second")
    fired = []
    for key in heap.pop_due(1.0):
        fired.append(key)
        heap.cancel(second)
    assert fired == ["first"] and len(heap) == 0


def test_heap_compacts_cancelled_entries() -> None:
    heap: TimerHeap[int] = TimerHeap()
    handles = [heap.schedule(100.0 + i, i) for i in range(2000)]
    for handle in handles[:1500]:
        heap.cancel(handle)
    assert len(heap) == 500
    assert len(heap._heap) < 1000  # dead entries were dropped, not kept to 100 s
    assert list(heap.pop_due(10_000.0)) == list(range(1500, 2000))


def test_heap_schedule_later() -> None:
    heap: TimerHeap[str] = TimerHeap()
    heap.schedule_later(T2, "e")
    dead = heap.schedule_later(1.0, "x")
    heap.cancel(dead)
    assert heap.next_deadline() is None and len(heap) == 1
    heap.anchor(10.0)
    assert heap.next_deadline() == 14.0 and len(heap) == 1
    assert list(heap.pop_due(14.0)) == ["e"]
