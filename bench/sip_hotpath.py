"""Micro-benchmark of the SIP hot path of a ``<Dial>`` call: µs of CPU per message.

Run: ``.venv/bin/python -m bench.sip_hotpath [--calls N] [--rounds R] [--profile]``.

One call is what the Dial load test (bench/dial) makes the server do, through the real
sans-IO objects the way the server drives them (:class:`~dialtone.sip.endpoint.
SipEndpoint`, :class:`~dialtone.sip.dialog_uas.UasDialog`, :class:`~dialtone.sip.
dialog_uac.UacInvite`, :class:`~dialtone.sip.dialog_set.DialogSet`), without sockets,
storage, media or webhooks:

- the caller's leg (SIPp ``bench/dial/uac_call.xml``): INVITE in (its 100 Trying is sent
  by the server transaction), 180 out, 200 out (SDP), ACK in, BYE in, 200 out;
- the branch (SIPp ``bench/dial/uas_answer.xml``): INVITE out, 180 in, 200 in (SDP),
  ACK out, BYE out, 200 in.

Each row is one message kind: what the endpoint does with it plus what the call layer
reads or builds for it (``sipapp``/``calls.manager``: Request-URI, To tag, From, the
dialog's work), so the rows add up to the per-call cost of SIP handling; the second
column is the part spent inside the endpoint's own calls (``receive``, ``respond``,
``send_request``, ``send_stateless``, ``datagrams_to_send``: parsing, matching, the
transactions, serialising), timed apart with ``perf_counter_ns``.  SDP
negotiation is left out (fixed bodies).  Messages are unique per call (branches, tags,
Call-IDs) and every call is live at once (``--calls`` concurrent transactions and
dialogs), as under load: the default 250 is what the Dial load test keeps open (1 s
hold, 100-200 calls/s, plus setup).  Each phase runs over all calls and is timed with
``time.process_time``; the best of ``--rounds`` fresh rounds is printed (the machine
is shared: the best round is the least disturbed).

The final row fires every transaction timer (Timers D, H/I, J, K ...): housekeeping
the endpoint does per call, reported apart from the messages.

Only :mod:`dialtone.sip` is imported, so ``PYTHONPATH=<other tree>/src`` measures
another version of the stack on the same messages (before/after comparisons, e.g. a
``git worktree`` of the previous commit).  ``--profile`` adds a cProfile of one round.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import platform
import pstats
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dialtone.sip.dialog_set import DialogSet
from dialtone.sip.dialog_uac import UacInvite
from dialtone.sip.dialog_uas import UasDialog
from dialtone.sip.endpoint import SipEndpoint
from dialtone.sip.events import Event, Outgoing, Peer, RequestReceived, ResponseReceived
from dialtone.sip.message import Headers, Request, Response
from dialtone.sip.randomness import random_hex

SERVER = ("127.0.0.1", 5060)
CALLER = Peer("udp", "127.0.0.1", 5061)  # SIPp uac_call
CALLEE = Peer("udp", "127.0.0.1", 5062)  # SIPp uas_answer, registered as Client "load"
CONTACT = "sip:dialtone@127.0.0.1:5060"
PID = 31337  # SIPp's [pid] in its tags
STEP = 1e-6  # fake clock per message: the whole run stays inside T1, no timer fires

CALLER_SDP = (
    b"v=0\r\n"
    b"o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
)
CALLEE_SDP = (
    b"v=0\r\n"
    b"o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 6002 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)
SERVER_SDP = (  # what negotiate_answer/build_offer give (shape only: not negotiated here)
    b"v=0\r\n"
    b"o=dialtone 1234567 1 IN IP4 127.0.0.1\r\n"
    b"s=dialtone\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 20000 RTP/AVP 0 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)


# ---------------------------------------------------------------------------- wire


def _datagram(lines: list[str], body: bytes = b"") -> bytes:
    head = "\r\n".join([*lines, f"Content-Length: {len(body)}", "", ""])
    return head.encode() + body


def caller_invite(n: int) -> bytes:
    """The INVITE of SIPp call ``n`` (bench/dial/uac_call.xml)."""
    ip, port = CALLER.host, CALLER.port
    return _datagram(
        [
            "INVITE sip:+15550001000@127.0.0.1:5060 SIP/2.0",
            f"Via: SIP/2.0/UDP {ip}:{port};branch=z9hG4bK-{PID}-{n}-0;rport",
            f'From: "bench" <sip:+1999{n}@{ip}:{port}>;tag={PID}SIPpTag00{n}',
            "To: <sip:+15550001000@127.0.0.1:5060>",
            f"Call-ID: {n}-{PID}@{ip}",
            "CSeq: 1 INVITE",
            f"Contact: <sip:bench@{ip}:{port};transport=UDP>",
            "Max-Forwards: 70",
            "User-Agent: dialtone-bench (SIPp)",
            "Content-Type: application/sdp",
        ],
        CALLER_SDP,
    )


def caller_in_dialog(n: int, method: str, seq: int, branch: int, to_tag: str) -> bytes:
    """The caller's ACK (of our 2xx) or BYE: to our Contact, with our To tag."""
    ip, port = CALLER.host, CALLER.port
    return _datagram(
        [
            f"{method} {CONTACT} SIP/2.0",
            f"Via: SIP/2.0/UDP {ip}:{port};branch=z9hG4bK-{PID}-{n}-{branch};rport",
            f'From: "bench" <sip:+1999{n}@{ip}:{port}>;tag={PID}SIPpTag00{n}',
            f"To: <sip:+15550001000@127.0.0.1:5060>;tag={to_tag}",
            f"Call-ID: {n}-{PID}@{ip}",
            f"CSeq: {seq} {method}",
            f"Contact: <sip:bench@{ip}:{port};transport=UDP>",
            "Max-Forwards: 70",
        ]
    )


def callee_response(request: bytes, status: str, n: int, *, sdp: bytes = b"") -> bytes:
    """SIPp uas_answer.xml's answer to ``request``: [last_Via:] ... copied verbatim."""
    head = request.split(b"\r\n\r\n", 1)[0].decode()
    copied: dict[str, str] = {}
    for line in head.split("\r\n")[1:]:
        name = line.partition(":")[0]
        copied.setdefault(name, line)  # one Via: ours
    to = copied["To"]
    if ";tag=" not in to:
        to += f";tag={PID}SIPpTag01{n}"
    lines = [f"SIP/2.0 {status}", copied["Via"], copied["From"], to]
    lines += [copied["Call-ID"], copied["CSeq"]]
    if status != "200 OK" or sdp:  # the 200 to a BYE has no Contact
        lines.append(f"Contact: <sip:{CALLEE.host}:{CALLEE.port};transport=UDP>")
    if sdp:
        lines.append("Content-Type: application/sdp")
    return _datagram(lines, sdp)


# ---------------------------------------------------------------------------- the calls


@dataclass(slots=True)
class Call:
    """What the server and the two SIPp scripts know of one call."""

    n: int
    invite: bytes
    transaction: str = ""
    dialog: UasDialog | None = None
    uac: UacInvite | None = None
    sent: bytes = b""  # the last datagram sent to the callee
    incoming: bytes = b""  # the next datagram to receive
    bye_transaction: str = ""
    bye_response: Response | None = None
    extra: dict[str, object] = field(default_factory=dict)


class TimedEndpoint:
    """The endpoint's calls, timed apart (``perf_counter_ns``): its share of a row is the
    transport and transaction layers' work (parse, match, send), the rest is the TU's."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        self.inner = endpoint
        self.ns = 0

    def receive(self, data: bytes, peer: Peer, now: float) -> None:
        t0 = time.perf_counter_ns()
        self.inner.receive(data, peer, now)
        self.ns += time.perf_counter_ns() - t0

    def next_event(self) -> Event | None:
        return self.inner.next_event()

    def respond(self, transaction: str, response: Response, now: float) -> None:
        t0 = time.perf_counter_ns()
        self.inner.respond(transaction, response, now)
        self.ns += time.perf_counter_ns() - t0

    def send_request(self, request: Request, peer: Peer, now: float) -> str:
        t0 = time.perf_counter_ns()
        key = self.inner.send_request(request, peer, now)
        self.ns += time.perf_counter_ns() - t0
        return key

    def send_stateless(self, message: Request | Response, peer: Peer) -> None:
        t0 = time.perf_counter_ns()
        self.inner.send_stateless(message, peer)
        self.ns += time.perf_counter_ns() - t0

    def datagrams_to_send(self, now: float) -> list[Outgoing]:
        t0 = time.perf_counter_ns()
        out = self.inner.datagrams_to_send(now)
        self.ns += time.perf_counter_ns() - t0
        return out


class Server:
    """The endpoint, the dialogs, a fake clock, and the call layer's reads (sipapp,
    calls.manager, calls.dial, calls.branch) reduced to their SIP work."""

    def __init__(self) -> None:
        self.endpoint = TimedEndpoint(SipEndpoint(local_host=SERVER[0], local_port=SERVER[1]))
        self.dialogs = DialogSet()
        self.now = 1000.0
        self.sent: list[bytes] = []

    def tick(self) -> float:
        self.now += STEP
        return self.now

    def drain(self) -> None:
        for out in self.endpoint.datagrams_to_send(self.now):
            self.sent.append(out.data)

    # Each phase below handles one message of every call.

    def invite_in(self, call: Call) -> None:
        """INVITE in: receive (and the 100 Trying), sipapp's checks, the manager's reads,
        the early dialog."""
        endpoint = self.endpoint
        endpoint.receive(call.invite, CALLER, self.tick())
        event = endpoint.next_event()
        assert isinstance(event, RequestReceived) and event.transaction is not None
        request = event.request
        request.ruri  # noqa: B018  # sipapp: §8.2.2.1
        assert "Require" not in request.headers and request.to.tag is None
        from_uri = request.from_.uri  # manager.invite: is the caller ours?
        assert from_uri.user and request.ruri.user
        dialog = UasDialog.from_invite(request, random_hex(6), CONTACT)
        request.from_.display_name  # noqa: B018  # the call's CallerName
        request.headers.get("Diversion")
        self.dialogs.add(dialog)
        call.transaction, call.dialog = event.transaction, dialog
        self.drain()

    def ringing_out(self, call: Call) -> None:
        """180 out (manager._start: ``dialog.provisional(180)``)."""
        assert call.dialog is not None
        self.endpoint.respond(call.transaction, call.dialog.provisional(180), self.tick())
        self.drain()

    def branch_invite_out(self, call: Call) -> None:
        """INVITE out: calls.branch.build_invite, UacInvite, send_request."""
        invite = Request(
            "INVITE",
            "sip:load@127.0.0.1:5062",
            Headers(
                [
                    ("From", f'"bench" <sip:+1999{call.n}@127.0.0.1>;tag={random_hex(5)}'),
                    ("To", "<sip:load@127.0.0.1:5062>"),
                    ("Call-ID", random_hex(12)),
                    ("CSeq", "1 INVITE"),
                    ("Contact", f"<{CONTACT}>"),
                    ("X-Dialtone-CallSid", "CA" + random_hex(16)),
                    ("X-Dialtone-AccountSid", "AC0123456789abcdef0123456789abcdef"),
                    ("X-Dialtone-ParentCallSid", "CA" + random_hex(16)),
                    ("Content-Type", "application/sdp"),
                ]
            ),
            SERVER_SDP,
        )
        call.uac = UacInvite(invite, dialogs=self.dialogs)
        call.extra["branch"] = self.endpoint.send_request(invite, CALLEE, self.tick())
        self.drain()

    def branch_response_in(self, call: Call) -> None:
        """180 or 200 in: the ICT, then calls.manager.response -> dial.on_response ->
        UacInvite.on_response; a 2xx's ACK goes out in :meth:`ack_out`."""
        endpoint = self.endpoint
        endpoint.receive(call.incoming, CALLEE, self.tick())
        event = endpoint.next_event()
        assert isinstance(event, ResponseReceived) and event.transaction == call.extra["branch"]
        event.response.call_id  # noqa: B018  # manager: _branches by transaction first
        assert call.uac is not None
        result = call.uac.on_response(event.response)
        assert result.dialog is not None
        call.extra["result"] = result

    def ack_out(self, call: Call) -> None:
        """ACK out: the 2xx's ACK (built by on_response) sent statelessly."""
        ack = call.extra.pop("result").ack  # type: ignore[attr-defined]
        assert isinstance(ack, Request)
        self.endpoint.send_stateless(ack, CALLEE)
        self.drain()

    def answer_out(self, call: Call) -> None:
        """200 out (the caller's answer, SDP): ``dialog.answer`` + respond."""
        assert call.dialog is not None
        response = call.dialog.answer(SERVER_SDP, self.now, transaction=call.transaction)
        self.endpoint.respond(call.transaction, response, self.tick())
        self.drain()

    def ack_in(self, call: Call) -> None:
        """ACK in (of our 2xx: no transaction): manager.ack -> DialogSet.ack_received."""
        endpoint = self.endpoint
        endpoint.receive(call.incoming, CALLER, self.tick())
        event = endpoint.next_event()
        assert isinstance(event, RequestReceived) and event.transaction is None
        assert event.request.method == "ACK"
        dialog = self.dialogs.ack_received(event.request)
        assert dialog is not None
        dialog.answer_in_ack(event.request)
        assert dialog is call.dialog

    def bye_in(self, call: Call) -> None:
        """BYE in: sipapp (Request-URI, To tag) -> manager.in_dialog -> the dialog's 200."""
        endpoint = self.endpoint
        endpoint.receive(call.incoming, CALLER, self.tick())
        event = endpoint.next_event()
        assert isinstance(event, RequestReceived) and event.transaction is not None
        request = event.request
        request.ruri  # noqa: B018
        assert "Require" not in request.headers and request.to.tag
        handled = self.dialogs.handle_request(request, self.now, transaction=event.transaction)
        assert handled is not None and handled.ended
        call.transaction, call.bye_response = event.transaction, handled.response

    def bye_ok_out(self, call: Call) -> None:
        """200 out (to the BYE)."""
        assert call.bye_response is not None
        self.endpoint.respond(call.transaction, call.bye_response, self.tick())
        self.drain()

    def branch_bye_out(self, call: Call) -> None:
        """BYE out: the Dial ends the branch (UacInvite.end) and sends its BYE."""
        assert call.uac is not None
        (bye,) = call.uac.end()
        call.bye_transaction = self.endpoint.send_request(bye, CALLEE, self.tick())
        self.drain()

    def bye_ok_in(self, call: Call) -> None:
        """200 in (to our BYE): the NICT; the manager finds no branch for it."""
        endpoint = self.endpoint
        endpoint.receive(call.incoming, CALLEE, self.tick())
        event = endpoint.next_event()
        assert isinstance(event, ResponseReceived) and event.transaction == call.bye_transaction
        event.response.call_id  # noqa: B018
        assert event.response.cseq.method == "BYE"


# ---------------------------------------------------------------------------- the run

Prepare = Callable[[Server, list[Call]], None]


def _last_sent(server: Server, calls: list[Call], per_call: int) -> list[bytes]:
    sent = server.sent
    assert len(sent) == per_call * len(calls), (len(sent), len(calls))
    server.sent = []
    return sent[per_call - 1 :: per_call]


def _nothing(server: Server, calls: list[Call]) -> None:
    server.sent = []


def _after_branch_invite(server: Server, calls: list[Call]) -> None:
    for call, data in zip(calls, _last_sent(server, calls, 1), strict=True):
        call.sent = data
        call.incoming = callee_response(data, "180 Ringing", call.n)


def _ok_with_sdp(server: Server, calls: list[Call]) -> None:
    for call in calls:
        call.incoming = callee_response(call.sent, "200 OK", call.n, sdp=CALLEE_SDP)


def _after_answer(server: Server, calls: list[Call]) -> None:
    server.sent = []
    for call in calls:
        assert call.dialog is not None
        tag = call.dialog.local_tag
        call.incoming = caller_in_dialog(call.n, "ACK", 1, 1, tag)
        call.extra["bye"] = caller_in_dialog(call.n, "BYE", 2, 2, tag)


def _bye_next(server: Server, calls: list[Call]) -> None:
    for call in calls:
        call.incoming = call.extra.pop("bye")  # type: ignore[assignment]


def _after_branch_bye(server: Server, calls: list[Call]) -> None:
    for call, data in zip(calls, _last_sent(server, calls, 1), strict=True):
        call.incoming = callee_response(data, "200 OK", call.n)


# (label, what the server does, untimed preparation of the next phase's input)
PHASES: list[tuple[str, Callable[[Server, Call], None], Prepare]] = [
    ("INVITE in (+ 100 Trying out)", Server.invite_in, _nothing),
    ("180 out", Server.ringing_out, _nothing),
    ("INVITE out (branch)", Server.branch_invite_out, _after_branch_invite),
    ("180 in (branch)", Server.branch_response_in, _ok_with_sdp),
    ("200 in (branch, SDP)", Server.branch_response_in, _nothing),
    ("ACK out (branch)", Server.ack_out, _nothing),
    ("200 out (SDP)", Server.answer_out, _after_answer),
    ("ACK in", Server.ack_in, _bye_next),
    ("BYE in", Server.bye_in, _nothing),
    ("200 out (BYE)", Server.bye_ok_out, _nothing),
    ("BYE out (branch)", Server.branch_bye_out, _after_branch_bye),
    ("200 in (branch BYE)", Server.bye_ok_in, _nothing),
]
MESSAGES_PER_CALL = len(PHASES) + 1  # and the 100 Trying


def run_round(
    number: int, base: int, profiler: cProfile.Profile | None
) -> tuple[list[float], list[float]]:
    """One fresh server through every phase: CPU seconds per phase (+ the timers), and
    the seconds of each phase spent inside the endpoint's calls."""
    server = Server()
    calls = [Call(base + i, caller_invite(base + i)) for i in range(number)]
    seconds: list[float] = []
    inside: list[float] = []
    gc.collect()
    for _, handle, prepare in PHASES:
        if profiler is not None:
            profiler.enable()
        server.endpoint.ns = 0
        t0 = time.process_time()
        for call in calls:
            handle(server, call)
        seconds.append(time.process_time() - t0)
        inside.append(server.endpoint.ns / 1e9)
        if profiler is not None:
            profiler.disable()
        prepare(server, calls)
    endpoint = server.endpoint.inner
    t0 = time.process_time()
    endpoint.handle_timer(server.now + 64)  # every transaction's last timer
    seconds.append(time.process_time() - t0)
    inside.append(seconds[-1])
    assert endpoint.transaction_count() == 0 and endpoint.timer_count() == 0, endpoint.stats()
    assert len(server.dialogs) == 0
    return seconds, inside


def main() -> None:
    """Print µs per message kind and per call (best of the rounds)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=250, help="concurrent calls per round")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help="cProfile one extra round")
    args = parser.parse_args()
    number = args.calls
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.node()}")
    print(f"{number} concurrent <Dial> calls, best of {args.rounds} rounds, µs per message")
    print(f"  {'':<32} {'CPU':>7}  {'in the endpoint':>15}")
    rounds = [run_round(number, r * number, None) for r in range(args.rounds)]
    best = [min(column) / number * 1e6 for column in zip(*(r[0] for r in rounds), strict=True)]
    inside = [min(column) / number * 1e6 for column in zip(*(r[1] for r in rounds), strict=True)]
    count = len(PHASES)
    for (label, _, _), per, ep in zip(PHASES, best, inside, strict=False):
        print(f"  {label:<32} {per:7.1f}  {ep:15.1f}")
    messages, endpoint = sum(best[:count]), sum(inside[:count])
    totals = [sum(r[0][:count]) / number * 1e6 for r in rounds]
    print(f"  {'timers (transactions end)':<32} {best[-1]:7.1f}")
    print(
        f"per call: {messages:.1f} µs for {MESSAGES_PER_CALL} messages "
        f"({messages / MESSAGES_PER_CALL:.1f} µs/message), {endpoint:.1f} µs of it in the "
        f"endpoint; whole rounds {min(totals):.1f}..{max(totals):.1f} µs/call; "
        f"with timers {messages + best[-1]:.1f} µs"
    )
    if args.profile:
        profiler = cProfile.Profile()
        run_round(number, args.rounds * number, profiler)
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
