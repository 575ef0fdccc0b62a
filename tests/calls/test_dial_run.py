"""DialRun, the b2bua of `<Dial>`, driven through fakes with a controlled clock.

Every test builds a :class:`~tests.calls.dialfakes.DialTest`: the fake Signalling records
the SIP each branch gets, the fake dispatcher the callbacks (SequenceNumber in call order),
the fake records the Call rows.  Responses are built from the INVITEs the Dial sent and fed
with ``dial.on_response``; timers are fired by moving the fake clock to the armed
``loop.call_at`` handle and calling ``DialRun._on_timer`` (see ``dialfakes``).  No test
sleeps or opens a socket.

Scenarios: spec examples D-1..D-5, W-1, W-3, W-4, the races of DIAL-21/DIAL-24, LEG-1/2/5,
DIAL-31's early media, and the CB-7/CB-8/CB-9 invariants, checked after every scenario.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from dialtone.calls.dial import NO_PORT
from dialtone.calls.targets import NO_BINDING, NO_CLIENT, NO_PROXY
from dialtone.media.session import Direction
from dialtone.media.sources import ToneSource
from dialtone.rcml.context import DialResult
from dialtone.sip.message import Request
from dialtone.sip.sdp import parse_sdp
from tests.calls.dialfakes import (
    ACCOUNT,
    CALLER,
    DOMAIN,
    PARENT,
    T0,
    DialTest,
    FakeMedia,
    Hold,
    sdp_answer,
)

ALL = 'statusCallback="/cb" statusCallbackEvent="initiated ringing answered completed"'
CB = "http://app.test/cb"
ALICE, BOB = 0, 1
CLIENTS = {"alice": ["sip:alice@10.0.0.11:5062"], "bob": ["sip:bob@10.0.0.12:5062"]}

Make = Callable[..., DialTest]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """DialTest factory; a Dial a failing test left running is ended at teardown."""
    made: list[DialTest] = []

    def factory(**kwargs: object) -> DialTest:
        kwargs.setdefault("clients", CLIENTS)
        test = DialTest(**kwargs)  # type: ignore[arg-type]
        made.append(test)
        return test

    yield factory
    for test in made:
        await test.cleanup()


def two_clients(action: str = ' action="/dial-done"', timeout: int = 20, attrs: str = ALL) -> str:
    return (
        f'<Response><Dial{action} timeout="{timeout}">'
        f"<Client {attrs}>alice</Client><Client {attrs}>bob</Client>"
        "</Dial></Response>"
    )


def initiated() -> tuple[int, str, dict[str, str]]:
    return (0, "initiated", {})


def done(seq: int, status: str, duration: int, code: int | None) -> tuple[int, str, dict[str, str]]:
    extra = {"CallDuration": str(duration)}
    if code is not None:
        extra["SipResponseCode"] = str(code)
    return (seq, status, extra)


# ---------------------------------------------------------------------------- D-1..D-5


async def test_d1_both_ring_bob_answers_at_4_hangs_up_at_64(make: Make) -> None:
    h = make()
    await h.start(two_clients())
    assert h.sip.kinds(ALICE) == ["INVITE"] and h.sip.kinds(BOB) == ["INVITE"]
    assert h.parent.events == ["180"]  # DIAL-30: 180 with SDP, then ringback
    assert h.parent_media.kinds() == ["play"]
    assert h.timer_at() == 20  # DIAL-35: the ring timeout of both

    h.at(1)
    await h.respond(ALICE, 180)
    await h.respond(BOB, 180)
    h.at(4)
    await h.respond(BOB, 200)
    # bob: ACK at once (LEG-6); alice: CANCEL (a provisional came, §9.1); caller: 200, bridge
    assert h.sip.kinds(BOB) == ["INVITE", "ACK"]
    assert h.sip.kinds(ALICE) == ["INVITE", "CANCEL"]
    kinds = [(s.kind, s.branch) for s in h.sip.sent]
    assert kinds.index(("ACK", BOB)) < kinds.index(("CANCEL", ALICE))  # Ex. D-1 order
    assert h.parent.events == ["180", "200"]
    assert h.parent_media.peer is h.media(BOB)
    assert h.dial._ringback is None and h.parent_media._playback is None  # ringback stopped
    await h.respond(ALICE, 487)
    assert not h.task.done()

    h.at(64)
    await h.callee_bye(BOB)
    result = await h.result()
    assert result == DialResult("completed", h.sid(BOB), 60, 4, True, False)
    assert h.sip.kinds(BOB) == ["INVITE", "ACK"]  # the callee sent BYE: none from us
    assert h.sip.kinds(ALICE) == ["INVITE", "CANCEL"]
    assert h.parent.events == ["180", "200"]  # answer_now exactly once
    assert ("unbridge", h.media(BOB).name) in h.parent_media.events

    assert h.progress(ALICE) == [initiated(), (1, "ringing", {}), done(2, "canceled", 0, 487)]
    assert h.progress(BOB) == [
        initiated(),
        (1, "ringing", {}),
        (2, "in-progress", {}),
        done(3, "completed", 60, 200),
    ]
    assert h.times(ALICE) == [0, 1, 4] and h.times(BOB) == [0, 1, 4, 64]  # CB-5 Timestamp
    answered = h.fired(BOB)[2]  # Ex. C-1, field for field
    assert (answered.url, answered.method) == (CB, "POST")
    assert answered.params == {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "CallSid": h.sid(BOB),
        "CallStatus": "in-progress",
        "CallbackSource": "call-progress-events",
        "Called": "client:bob",
        "Caller": CALLER,
        "Direction": "outbound-dial",
        "From": CALLER,
        "ParentCallSid": PARENT,
        "SequenceNumber": "2",
        "Timestamp": "Tue, 04 Nov 2025 10:00:04 +0000",
        "To": "client:bob",
    }
    assert h.row(ALICE)["status"] == "canceled" and h.row(ALICE)["sip_response_code"] == 487
    assert h.row(BOB)["status"] == "completed" and h.row(BOB)["duration"] == 60
    assert h.row(BOB)["answer_time"] == T0 + timedelta(seconds=4)
    assert h.records.ops(h.sid(BOB)) == ["create", "update", "update", "finish"]
    h.check_invariants()


async def test_d2_nobody_answers_within_the_timeout(make: Make) -> None:
    h = make()
    await h.start(two_clients())
    h.at(1)
    await h.respond(ALICE, 180)
    await h.respond(BOB, 180)
    await h.run_until(19.9)
    assert h.sip.kinds(ALICE) == ["INVITE"] and h.sip.kinds(BOB) == ["INVITE"]
    await h.run_until(20)
    assert h.sip.kinds(ALICE) == ["INVITE", "CANCEL"] and h.sip.kinds(BOB) == ["INVITE", "CANCEL"]
    assert not h.task.done()  # DIAL-23: a cancelled branch ends at its final response
    await h.respond(ALICE, 487)
    await h.respond(BOB, 487)
    result = await h.result()
    assert result == DialResult("no-answer", h.sid(ALICE), 0, 20, False, False)
    for branch in (ALICE, BOB):
        assert h.progress(branch) == [
            initiated(),
            (1, "ringing", {}),
            done(2, "no-answer", 0, 487),
        ]
        assert h.row(branch)["status"] == "no-answer"
        assert h.row(branch)["sip_response_code"] == 487
    assert h.parent.events == ["180"]  # never answered
    assert h.parent_media._playback is None  # ringback stopped
    h.check_invariants()


async def test_d2_without_487_a_cancelled_branch_ends_2s_after_the_cancel(make: Make) -> None:
    h = make()
    await h.start(two_clients())
    h.at(1)
    await h.respond(ALICE, 180)
    await h.respond(BOB, 180)
    await h.run_until(20)
    assert h.timer_at() == 22  # CANCEL_WAIT
    await h.run_until(22)
    result = await h.result()
    assert result == DialResult("no-answer", h.sid(ALICE), 0, 22, False, False)
    # no final response exists: no SipResponseCode (CB-5)
    assert h.progress(ALICE)[-1] == done(2, "no-answer", 0, None)
    assert h.progress(BOB)[-1] == done(2, "no-answer", 0, None)
    await h.respond(ALICE, 487)  # a 487 after the 2 s rule: absorbed (rule 7)
    assert len(h.fired(ALICE)) == 3
    h.check_invariants()


async def test_d3_all_busy_without_action(make: Make) -> None:
    h = make()
    await h.start(two_clients(action=""))
    h.at(1)
    await h.respond(ALICE, 180)
    h.at(2)
    await h.respond(ALICE, 486)
    assert not h.task.done()  # DIAL-26: bob rings on
    h.at(3)
    await h.respond(BOB, 486)
    result = await h.result()
    assert result == DialResult("busy", h.sid(ALICE), 0, 3, False, False)
    assert h.progress(ALICE) == [initiated(), (1, "ringing", {}), done(2, "busy", 0, 486)]
    assert h.progress(BOB) == [initiated(), done(1, "busy", 0, 486)]
    assert h.sip.kinds(ALICE) == ["INVITE"] and h.sip.kinds(BOB) == ["INVITE"]
    assert h.parent.events == ["180"]
    h.check_invariants()


@pytest.mark.parametrize(
    ("code", "status", "dial_status"),
    [
        (486, "busy", "busy"),
        (600, "busy", "busy"),
        (603, "busy", "busy"),
        (480, "no-answer", "no-answer"),
        (408, "no-answer", "no-answer"),
        (404, "failed", "failed"),
        (500, "failed", "failed"),
        (302, "failed", "failed"),  # redirects are not followed
        (487, "failed", "failed"),  # a 487 no CANCEL of ours caused: "any other"
    ],
)
async def test_dial25_final_responses(make: Make, code: int, status: str, dial_status: str) -> None:
    h = make()
    await h.start(f"<Response><Dial><Client {ALL}>alice</Client></Dial></Response>")
    h.at(2)
    await h.respond(ALICE, code)
    result = await h.result()
    assert result == DialResult(dial_status, h.sid(ALICE), 0, 2, False, False)  # type: ignore[arg-type]
    assert h.progress(ALICE) == [initiated(), done(1, status, 0, code)]
    assert h.row(ALICE)["sip_response_code"] == code
    h.check_invariants()


@pytest.mark.parametrize(
    ("timeout", "code", "status"), [(True, 408, "no-answer"), (False, 503, "failed")]
)
async def test_dial25_timer_b_and_transport_error(
    make: Make, timeout: bool, code: int, status: str
) -> None:
    h = make()
    await h.start(f"<Response><Dial><Client {ALL}>alice</Client></Dial></Response>")
    h.at(32)
    h.dial.on_failure(h.branch(ALICE), timeout)
    result = await h.result()
    assert result.status == status
    assert h.progress(ALICE) == [initiated(), done(1, status, 0, code)]
    h.check_invariants()


async def test_d4_caller_hangs_up_while_both_ring(make: Make) -> None:
    h = make()
    await h.start(two_clients())
    h.at(1)
    await h.respond(ALICE, 180)
    await h.respond(BOB, 180)
    h.at(5)
    await h.caller_gone()
    assert h.sip.kinds(ALICE) == ["INVITE", "CANCEL"] and h.sip.kinds(BOB) == ["INVITE", "CANCEL"]
    await h.respond(ALICE, 487)
    await h.respond(BOB, 487)
    result = await h.result()
    assert result == DialResult("canceled", h.sid(ALICE), 0, 5, False, True)
    for branch in (ALICE, BOB):
        assert h.progress(branch) == [initiated(), (1, "ringing", {}), done(2, "canceled", 0, 487)]
    assert h.parent.events == ["180"]
    h.check_invariants()


async def test_d4_caller_gone_before_any_response_sends_no_cancel(make: Make) -> None:
    """DIAL-23: no provisional yet, so no CANCEL (§9.1); the branches end at once."""
    h = make()
    await h.start(two_clients())
    h.at(1)
    await h.caller_gone()
    result = await h.result()
    assert result == DialResult("canceled", h.sid(ALICE), 0, 1, False, True)
    assert h.sip.kinds(ALICE) == ["INVITE"] and h.sip.kinds(BOB) == ["INVITE"]
    for branch in (ALICE, BOB):
        assert h.progress(branch) == [initiated(), done(1, "canceled", 0, None)]
    h.check_invariants()


D5 = """<Response><Dial callerId="+19898000000">
  <Number statusCallback="/cb">123-321-4321</Number>
  <Client statusCallback="/cb">alice</Client>
  <Client statusCallback="/cb">bob</Client>
</Dial></Response>"""
NUMBER, ALICE1, ALICE2, OFFLINE = 0, 1, 2, 3


async def test_d5_two_devices_an_offline_client_and_a_number(make: Make) -> None:
    h = make(
        clients={
            "alice": ["sip:alice@10.0.0.11:5062", "sip:alice@10.0.0.21:5064;transport=tcp"],
            "bob": [],
        }
    )
    await h.start(D5)
    assert len(h.dial.branches) == 4
    # bob: no SIP, failed at once without SipResponseCode, warning 82002 (DIAL-13)
    assert h.sip.kinds(OFFLINE) == []
    assert h.progress(OFFLINE) == [done(0, "failed", 0, None)]
    assert h.callbacks.fired[0].call_sid == h.sid(OFFLINE)
    assert h.records.codes(h.sid(OFFLINE)) == [(1, NO_BINDING)]
    assert "bob" in h.records.notifications[0]["message_text"]
    assert h.row(OFFLINE)["status"] == "failed" and "sip_response_code" not in h.row(OFFLINE)
    # one INVITE per alice device, one towards the proxy
    number = h.sip.of(NUMBER, "INVITE")[0]
    assert number.request is not None and number.peer is not None
    assert number.request.uri == "sip:1233214321@10.0.0.50:5060"
    assert number.request.headers.get("To") == "<sip:1233214321@10.0.0.50>"
    assert (number.peer.transport, number.peer.host, number.peer.port) == ("udp", "10.0.0.50", 5060)
    a1, a2 = h.sip.of(ALICE1, "INVITE")[0], h.sip.of(ALICE2, "INVITE")[0]
    assert a1.request is not None and a2.request is not None
    assert a1.request.uri == "sip:alice@10.0.0.11:5062"
    assert a2.request.uri == "sip:alice@10.0.0.21:5064;transport=tcp"
    assert a2.peer is not None and (a2.peer.transport, a2.peer.port) == ("tcp", 5064)
    assert a1.request.headers.get("To") == a2.request.headers.get("To") == f"<sip:alice@{DOMAIN}>"
    for sent in (number, a1, a2):
        assert sent.request is not None
        assert str(sent.request.from_.uri) == f"sip:+19898000000@{DOMAIN}"
    assert h.row(ALICE1)["to"] == h.row(ALICE2)["to"] == "client:alice"
    assert h.row(NUMBER)["to"] == "1233214321"

    h.at(1)
    await h.respond(NUMBER, 180)
    await h.respond(ALICE1, 180)
    h.at(3)
    await h.respond(ALICE2, 200)
    assert h.sip.kinds(NUMBER) == ["INVITE", "CANCEL"]
    assert h.sip.kinds(ALICE1) == ["INVITE", "CANCEL"]
    assert h.sip.kinds(ALICE2) == ["INVITE", "ACK"]
    await h.respond(NUMBER, 487)
    await h.respond(ALICE1, 487)
    assert h.progress(NUMBER) == [done(0, "canceled", 0, 487)]
    assert h.progress(ALICE1) == [done(0, "canceled", 0, 487)]
    h.at(13)
    await h.callee_bye(ALICE2)
    result = await h.result()
    assert result == DialResult("completed", h.sid(ALICE2), 10, 3, True, False)
    assert h.progress(ALICE2) == [done(0, "completed", 10, 200)]
    h.check_invariants()


@pytest.mark.parametrize(
    ("noun", "code"),
    [
        ('<Number statusCallback="/cb">+15551230000</Number>', NO_PROXY),
        ('<Client statusCallback="/cb">zed</Client>', NO_CLIENT),
        ('<Client statusCallback="/cb">bob</Client>', NO_BINDING),
    ],
)
async def test_dial13_a_branch_that_cannot_be_dialled(make: Make, noun: str, code: int) -> None:
    h = make(clients={"alice": ["sip:alice@10.0.0.11:5062"], "bob": []}, proxy=None)
    await h.start(f"<Response><Dial>{noun}<Client>alice</Client></Dial></Response>")
    assert h.sip.kinds(0) == []
    assert h.progress(0) == [done(0, "failed", 0, None)]
    assert h.records.codes(h.sid(0)) == [(1, code)]
    assert h.sip.kinds(1) == ["INVITE"]  # the others ring on
    assert not h.task.done()
    h.at(2)
    await h.respond(1, 486)
    result = await h.result()
    assert result.status == "no-answer"  # failed and busy together (DIAL-40)
    h.check_invariants()


async def test_dial13_every_branch_fails_at_start(make: Make) -> None:
    h = make(clients={"bob": []}, proxy=None)
    await h.start(
        '<Response><Dial><Client statusCallback="/cb">bob</Client>'
        '<Number statusCallback="/cb">+15551230000</Number></Dial></Response>'
    )
    result = await h.result()
    assert result == DialResult("failed", h.sid(0), 0, 0, False, False)
    assert h.sip.sent == []
    assert h.parent.events == []  # nothing rings: no 180, no ringback
    assert h.parent_media.events == []
    assert h.records.codes() == [(1, NO_BINDING), (1, NO_PROXY)]
    h.check_invariants()


async def test_no_free_rtp_port_fails_the_branch_as_a_transport_error(make: Make) -> None:
    h = make(free_ports=1)
    await h.start(two_clients())
    assert h.sip.kinds(ALICE) == ["INVITE"] and h.sip.kinds(BOB) == []
    assert h.records.codes(h.sid(BOB)) == [(1, NO_PORT)]
    assert h.progress(BOB) == [initiated(), done(1, "failed", 0, 503)]
    await h.respond(ALICE, 486)
    assert (await h.result()).status == "no-answer"
    h.check_invariants()


async def test_dial32_an_answered_parent_hears_ringback_and_gets_no_second_answer(
    make: Make,
) -> None:
    h = make(parent_answered=True)
    await h.start(two_clients())
    assert h.parent.events == []  # no 180 on an answered call
    assert h.parent_media.kinds() == ["play"]  # ringback on the established call
    h.at(4)
    await h.respond(BOB, 200)
    assert h.parent.events == []  # DIAL-33: no 200 to an answered parent
    assert h.parent_media.peer is h.media(BOB)
    h.at(10)
    await h.caller_gone()  # DIAL-44: the caller hangs up: BYE to the winner
    assert h.sip.kinds(BOB) == ["INVITE", "ACK", "BYE"]
    result = await h.result()
    assert result == DialResult("completed", h.sid(BOB), 6, 4, True, True)
    assert h.progress(ALICE)[-1] == done(1, "canceled", 0, None)  # no provisional: no CANCEL
    assert h.sip.kinds(ALICE) == ["INVITE"]
    h.check_invariants()


# ---------------------------------------------------------------------------- bridge end


async def test_dial36_time_limit_ends_the_bridge_with_bye(make: Make) -> None:
    h = make()
    await h.start(f'<Response><Dial timeLimit="30"><Client {ALL}>bob</Client></Dial></Response>')
    h.at(4)
    await h.respond(0, 200)
    assert h.timer_at() == 34
    await h.run_until(34)
    assert h.sip.kinds(0) == ["INVITE", "ACK", "BYE"]
    result = await h.result()
    assert result == DialResult("completed", h.sid(0), 30, 4, True, False)
    assert h.progress(0)[-1] == done(2, "completed", 30, 200)
    h.check_invariants()


async def test_dial37_hangup_on_star_ends_the_bridge(make: Make) -> None:
    h = make()
    await h.start(
        f'<Response><Dial hangupOnStar="true"><Client {ALL}>bob</Client></Dial></Response>'
    )
    h.at(1)
    h.parent_media.receive_digit("*")  # before the bridge: no effect
    await h.settle()
    assert h.sip.kinds(0) == ["INVITE"]
    h.at(4)
    await h.respond(0, 200)
    h.at(9)
    h.media(0).receive_digit("*")  # the callee's: no effect
    h.parent_media.receive_digit("1")
    await h.settle()
    assert h.sip.kinds(0) == ["INVITE", "ACK"]
    h.parent_media.receive_digit("*")
    await h.settle()
    assert h.sip.kinds(0) == ["INVITE", "ACK", "BYE"]
    result = await h.result()
    assert result == DialResult("completed", h.sid(0), 5, 4, True, False)
    assert h.parent_media._observers == []  # the digit observer left with the Dial
    h.check_invariants()


async def test_api_cancel_of_one_ringing_branch(make: Make) -> None:
    h = make()
    await h.start(two_clients())
    h.at(1)
    await h.respond(ALICE, 180)
    h.at(2)
    h.dial.cancel_branch(h.branch(ALICE))
    await h.settle()
    assert h.sip.kinds(ALICE) == ["INVITE", "CANCEL"]
    await h.respond(ALICE, 487)
    assert h.progress(ALICE)[-1] == done(2, "canceled", 0, 487)
    assert not h.task.done()  # bob rings on
    h.at(3)
    await h.respond(BOB, 200)
    h.at(5)
    await h.callee_bye(BOB)
    result = await h.result()
    assert result == DialResult("completed", h.sid(BOB), 2, 3, True, False)
    h.check_invariants()


# ---------------------------------------------------------------------------- races


async def test_race_two_200s_back_to_back_after_ringing(make: Make) -> None:
    h = make()
    await h.start(two_clients())
    h.at(1)
    await h.respond(ALICE, 180)
    await h.respond(BOB, 180)
    h.at(3)
    h.dial.on_response(h.branch(ALICE), h.response(ALICE, 200))
    h.dial.on_response(h.branch(BOB), h.response(BOB, 200))  # crossed our CANCEL
    await h.settle()
    assert h.sip.kinds(ALICE) == ["INVITE", "ACK"]
    assert h.sip.kinds(BOB) == ["INVITE", "CANCEL", "ACK", "BYE"]  # DIAL-24
    assert [e for e in h.parent_media.events if e[0] == "bridge"] == [("bridge", "branch0")]
    assert h.parent.events == ["180", "200"]
    # bob ended by that BYE, status kept, no answered event (CB-3)
    assert h.progress(BOB) == [initiated(), (1, "ringing", {}), done(2, "canceled", 0, 200)]
    assert h.row(BOB)["answer_time"] is None
    assert h.records.ops(h.sid(BOB)) == ["create", "update", "finish"]
    h.at(10)
    await h.callee_bye(ALICE)
    result = await h.result()
    assert result == DialResult("completed", h.sid(ALICE), 7, 3, True, False)
    h.check_invariants()


@pytest.mark.parametrize(
    "apart",
    [
        pytest.param(False, id="same-loop-step"),
        pytest.param(True, id="separate-datagrams"),
    ],
)
async def test_race_two_200s_without_any_provisional(make: Make, apart: bool) -> None:
    """Two auto-answering devices: bob's 200 comes after alice won, bob never sent 1xx,
    so bob was ended at once with a deferred CANCEL (DIAL-23) and his media closed."""
    h = make()
    await h.start(two_clients())
    h.at(1)
    h.dial.on_response(h.branch(ALICE), h.response(ALICE, 200))
    if apart:
        await h.settle()  # the loop runs between two datagrams: bob's media is closed
        assert h.media(BOB).closed
    try:
        h.dial.on_response(h.branch(BOB), h.response(BOB, 200))
    finally:
        await h.settle()
    assert h.sip.kinds(BOB) == ["INVITE", "ACK", "BYE"]  # DIAL-24, LEG-6
    assert h.progress(BOB) == [initiated(), done(1, "canceled", 0, None)]
    assert [e for e in h.parent_media.events if e[0] == "bridge"] == [("bridge", "branch0")]
    assert h.records.codes() == []
    h.at(5)
    await h.callee_bye(ALICE)
    assert (await h.result()).status == "completed"
    h.check_invariants()


async def test_race_caller_gone_then_a_200_crossing_the_cancel(make: Make) -> None:
    h = make()
    await h.start(two_clients())
    h.at(1)
    await h.respond(ALICE, 180)
    await h.respond(BOB, 180)
    h.at(5)
    await h.caller_gone()
    await h.respond(BOB, 200)
    assert h.sip.kinds(BOB) == ["INVITE", "CANCEL", "ACK", "BYE"]
    assert h.parent.events == ["180"]  # no bridge, no answer
    assert not any(e[0] == "bridge" for e in h.parent_media.events)
    await h.respond(ALICE, 487)
    result = await h.result()
    assert result == DialResult("canceled", h.sid(ALICE), 0, 5, False, True)
    assert h.progress(BOB) == [initiated(), (1, "ringing", {}), done(2, "canceled", 0, 200)]
    assert h.progress(ALICE)[-1] == done(2, "canceled", 0, 487)
    h.check_invariants()


async def test_race_timeout_then_a_200(make: Make) -> None:
    h = make()
    await h.start(two_clients())
    h.at(1)
    await h.respond(ALICE, 180)
    await h.respond(BOB, 180)
    await h.run_until(20)
    h.at(20.2)
    await h.respond(ALICE, 200)
    assert h.sip.kinds(ALICE) == ["INVITE", "CANCEL", "ACK", "BYE"]
    assert not any(e[0] == "bridge" for e in h.parent_media.events)
    await h.respond(BOB, 487)
    result = await h.result()
    assert result == DialResult("no-answer", h.sid(ALICE), 0, 20, False, False)
    assert h.progress(ALICE)[-1] == done(2, "no-answer", 0, 200)
    assert h.progress(BOB)[-1] == done(2, "no-answer", 0, 487)
    h.check_invariants()


async def test_race_timeout_before_any_provisional_then_a_200(make: Make) -> None:
    h = make()
    await h.start(f'<Response><Dial timeout="5"><Client {ALL}>alice</Client></Dial></Response>')
    await h.run_until(5)
    result = await h.result()  # ended at once: nothing to CANCEL yet (DIAL-23)
    assert result == DialResult("no-answer", h.sid(0), 0, 5, False, False)
    h.at(5.5)
    try:
        h.dial.on_response(h.branch(0), h.response(0, 200))
    finally:
        await h.settle()
    assert h.sip.kinds(0) == ["INVITE", "ACK", "BYE"]


async def test_race_a_provisional_after_a_deferred_cancel_sends_it(make: Make) -> None:
    """Rule 6: the CANCEL decided before any 1xx goes out with the first one."""
    h = make()
    await h.start(two_clients())
    h.at(1)
    await h.respond(ALICE, 200)
    assert h.sip.kinds(BOB) == ["INVITE"]
    assert h.progress(BOB) == [initiated(), done(1, "canceled", 0, None)]
    h.at(2)
    await h.respond(BOB, 180)
    assert h.sip.kinds(BOB) == ["INVITE", "CANCEL"]
    assert h.progress(BOB) == [initiated(), done(1, "canceled", 0, None)]  # nothing new
    await h.respond(BOB, 487)
    await h.callee_bye(ALICE)
    await h.result()
    h.check_invariants()


# ---------------------------------------------------------------------------- whispers


def whisper_dial(alice_url: str | None, bob_url: str | None, action: str = "") -> str:
    def noun(login: str, url: str | None) -> str:
        u = f' url="{url}"' if url else ""
        return f"<Client{u} {ALL}>{login}</Client>"

    return (
        f"<Response><Dial{action}>{noun('alice', alice_url)}{noun('bob', bob_url)}"
        "</Dial></Response>"
    )


async def test_w3_a_whisper_that_only_informs_then_accepts(make: Make) -> None:
    h = make()
    hold = Hold("<Response><Say>Customer Jane Doe, premium plan.</Say></Response>")
    h.webhooks.documents["http://app.test/screen"] = hold
    await h.start(f'<Response><Dial><Client url="/screen" {ALL}>bob</Client></Dial></Response>')
    h.at(1)
    await h.respond(0, 180)
    h.at(2)
    await h.respond(0, 200)
    assert h.sip.kinds(0) == ["INVITE", "ACK"]  # WSP-2: ACK, answered, then the request
    assert h.progress(0)[-1] == (2, "in-progress", {})
    [fetch] = h.webhooks.fetches
    assert (fetch.url, fetch.method) == ("http://app.test/screen", "POST")
    assert fetch.params == {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "CallSid": h.sid(0),
        "CallStatus": "in-progress",
        "Called": "client:bob",
        "Caller": CALLER,
        "Direction": "outbound-dial",
        "From": CALLER,
        "ParentCallSid": PARENT,
        "To": "client:bob",
    }
    # WSP-3: while the whisper runs the caller hears ringback and is not answered or bridged
    assert h.parent.events == ["180"]
    assert h.parent_media._playback is not None and h.parent_media.peer is None
    h.at(3)
    hold.release()
    await h.settle()
    assert h.speech.spoken == ["Customer Jane Doe, premium plan."]
    branch_media = h.media(0)
    assert branch_media.kinds() == ["configure", "play"]
    assert h.parent_media.events[0] == ("play", "ToneSource")  # the whisper: not to the caller
    assert [e for e in h.parent_media.events if e[0] == "play"] == [("play", "ToneSource")]
    assert h.parent.events == ["180", "200"]
    assert h.parent_media.peer is branch_media
    h.at(33)
    await h.callee_bye(0)
    result = await h.result()
    assert result == DialResult("completed", h.sid(0), 31, 2, True, False)
    assert h.progress(0) == [
        initiated(),
        (1, "ringing", {}),
        (2, "in-progress", {}),
        done(3, "completed", 31, 200),
    ]
    h.check_invariants()


async def test_w3_an_empty_response_accepts_at_once(make: Make) -> None:
    h = make()
    h.webhooks.documents["http://app.test/screen"] = "<Response/>"
    await h.start(whisper_dial("/screen", None))
    h.at(2)
    await h.respond(ALICE, 200)
    assert h.parent_media.peer is h.media(ALICE)
    assert h.parent.events == ["180", "200"]
    assert h.sip.kinds(BOB) == ["INVITE"]  # no provisional: CANCEL deferred
    await h.callee_bye(ALICE)
    result = await h.result()
    assert result.status == "completed" and result.dial_call_sid == h.sid(ALICE)
    h.check_invariants()


async def test_w1_alice_declines_bob_accepts_caller_hangs_up(make: Make) -> None:
    h = make()
    alice_hold, bob_hold = Hold(), Hold()
    h.webhooks.documents["http://app.test/screen-a"] = alice_hold
    h.webhooks.documents["http://app.test/screen-b"] = bob_hold
    await h.start(whisper_dial("/screen-a", "/screen-b", ' action="/dial-done"'))
    h.at(1)
    await h.respond(ALICE, 180)
    await h.respond(BOB, 180)
    h.at(3)
    await h.respond(ALICE, 200)
    h.at(5)
    await h.respond(BOB, 200)  # DIAL-22: bob rang on during alice's whisper
    assert [f.params["CallSid"] for f in h.webhooks.fetches] == [h.sid(ALICE), h.sid(BOB)]
    h.at(7)
    alice_hold.release("<Response><Hangup/></Response>")
    await h.settle()
    assert h.sip.kinds(ALICE) == ["INVITE", "ACK", "BYE"]  # WSP-6
    assert not h.task.done()
    h.at(9)
    bob_hold.release("<Response/>")
    await h.settle()
    assert h.parent.events == ["180", "200"]
    assert h.parent_media.peer is h.media(BOB)
    h.at(39)
    await h.caller_gone()
    assert h.sip.kinds(BOB) == ["INVITE", "ACK", "BYE"]
    result = await h.result()
    assert result == DialResult("completed", h.sid(BOB), 34, 5, True, True)
    assert h.progress(ALICE) == [
        initiated(),
        (1, "ringing", {}),
        (2, "in-progress", {}),
        done(3, "completed", 4, 200),
    ]
    assert h.progress(BOB) == [
        initiated(),
        (1, "ringing", {}),
        (2, "in-progress", {}),
        done(3, "completed", 34, 200),
    ]
    h.check_invariants()


W4 = "<Response><Say>hi</Say><Dial>+15551230000</Dial></Response>"


@pytest.mark.parametrize(("document", "code"), [(W4, 13201), (None, 11200)])
async def test_w4_a_failed_whisper_fails_only_its_branch(
    make: Make, document: str | None, code: int
) -> None:
    h = make()
    h.webhooks.documents["http://app.test/screen"] = document
    await h.start(whisper_dial("/screen", None))
    h.at(1)
    await h.respond(ALICE, 180)
    await h.respond(BOB, 180)
    h.at(2)
    await h.respond(ALICE, 200)
    assert h.speech.spoken == []  # "hi" is not played (WSP-4)
    assert h.sip.kinds(ALICE) == ["INVITE", "ACK", "BYE"]
    assert h.progress(ALICE)[-1] == done(3, "failed", 0, 200)
    [note] = h.records.notifications
    assert (note["call_sid"], note["log"], note["error_code"]) == (h.sid(ALICE), 0, code)
    assert note["request_url"] == "http://app.test/screen"
    if code == 13201:
        assert (
            "whisper document http://app.test/screen contains Dial (line 1)"
            in (note["message_text"])
        )
    assert h.sip.kinds(BOB) == ["INVITE"]  # bob rings on
    assert not h.task.done()
    h.at(4)
    await h.respond(BOB, 200)
    assert h.parent_media.peer is h.media(BOB)
    await h.callee_bye(BOB)
    result = await h.result()
    assert result.status == "completed" and result.dial_call_sid == h.sid(BOB)
    h.check_invariants()


@pytest.mark.parametrize("document", [W4, None])
async def test_wsp7_the_whisper_failure_notification_names_the_noun(
    make: Make, document: str | None
) -> None:
    h = make()
    h.webhooks.documents["http://app.test/screen"] = document
    await h.start(whisper_dial(None, "/screen"))
    h.at(2)
    await h.respond(BOB, 200)
    [note] = h.records.notifications
    assert "Client[2]" in note["message_text"]


async def test_whisper_decline_with_hangup(make: Make) -> None:
    h = make()
    h.webhooks.documents["http://app.test/screen"] = "<Response><Hangup/></Response>"
    await h.start(f'<Response><Dial><Client url="/screen" {ALL}>bob</Client></Dial></Response>')
    h.at(2)
    await h.respond(0, 200)
    assert h.sip.kinds(0) == ["INVITE", "ACK", "BYE"]
    result = await h.result()  # W-2: no branch remains, no winner
    assert result == DialResult("no-answer", h.sid(0), 0, 2, False, False)
    assert h.progress(0) == [initiated(), (1, "in-progress", {}), done(2, "completed", 0, 200)]
    assert h.parent.events == ["180"]
    h.check_invariants()


async def test_wsp6_callee_hangs_up_during_the_whisper(make: Make) -> None:
    h = make()
    h.webhooks.documents["http://app.test/screen"] = Hold()
    await h.start(f'<Response><Dial><Client url="/screen" {ALL}>bob</Client></Dial></Response>')
    h.at(2)
    await h.respond(0, 200)
    h.at(6)
    await h.callee_bye(0)
    assert h.sip.kinds(0) == ["INVITE", "ACK"]  # the callee sent BYE: none from us
    result = await h.result()
    assert result.status == "no-answer" and not result.bridged
    assert h.progress(0)[-1] == done(2, "completed", 4, 200)
    whisper = h.branch(0).whisper_task
    assert whisper is not None and whisper.done()
    h.check_invariants()


async def test_wsp8_whisper_timeout(make: Make) -> None:
    h = make(whisper_timeout=60.0)
    h.webhooks.documents["http://app.test/screen"] = Hold()
    await h.start(f'<Response><Dial><Client url="/screen" {ALL}>bob</Client></Dial></Response>')
    h.at(2)
    await h.respond(0, 200)
    assert h.timer_at() == 62  # WSP-8; the Dial's timeout no longer applies (DIAL-35)
    await h.run_until(62)
    assert h.sip.kinds(0) == ["INVITE", "ACK", "BYE"]
    assert h.records.codes(h.sid(0)) == [(1, 82010)]
    result = await h.result()
    assert result == DialResult("no-answer", h.sid(0), 0, 62, False, False)
    assert h.progress(0)[-1] == done(2, "completed", 60, 200)
    h.check_invariants()


async def test_race_whisper_accept_then_a_plain_answer(make: Make) -> None:
    h = make()
    hold = Hold("<Response/>")
    h.webhooks.documents["http://app.test/screen"] = hold
    await h.start(whisper_dial("/screen", None))
    h.at(1)
    await h.respond(ALICE, 180)
    await h.respond(BOB, 180)
    h.at(2)
    await h.respond(ALICE, 200)
    h.at(3)
    hold.release()
    await h.settle()  # alice accepts first (DIAL-21)
    await h.respond(BOB, 200)  # then bob's answer: ACK + BYE (DIAL-24)
    assert h.sip.kinds(BOB) == ["INVITE", "CANCEL", "ACK", "BYE"]
    assert h.parent_media.peer is h.media(ALICE)
    assert h.progress(BOB) == [initiated(), (1, "ringing", {}), done(2, "canceled", 0, 200)]
    h.at(10)
    await h.callee_bye(ALICE)
    result = await h.result()
    assert result == DialResult("completed", h.sid(ALICE), 8, 2, True, False)
    h.check_invariants()


async def test_race_plain_answer_wins_over_a_running_whisper(make: Make) -> None:
    h = make()
    hold = Hold("<Response/>")
    h.webhooks.documents["http://app.test/screen"] = hold
    await h.start(whisper_dial("/screen", None))
    h.at(1)
    await h.respond(ALICE, 180)
    await h.respond(BOB, 180)
    h.at(2)
    await h.respond(ALICE, 200)
    h.at(3)
    await h.respond(BOB, 200)  # bob accepts while alice's whisper runs: WSP-9
    assert h.sip.kinds(ALICE) == ["INVITE", "ACK", "BYE"]
    assert h.progress(ALICE)[-1] == done(3, "completed", 1, 200)
    whisper = h.branch(ALICE).whisper_task
    assert whisper is not None and whisper.done()
    hold.release()  # the whisper's answer comes too late: nothing happens
    await h.settle()
    assert h.parent_media.peer is h.media(BOB)
    assert [e for e in h.parent_media.events if e[0] == "bridge"] == [("bridge", "branch1")]
    h.at(5)
    await h.callee_bye(BOB)
    result = await h.result()
    assert result == DialResult("completed", h.sid(BOB), 2, 3, True, False)
    h.check_invariants()


async def test_send_digits_before_the_whisper(make: Make) -> None:
    h = make()
    h.webhooks.documents["http://app.test/screen"] = "<Response/>"
    await h.start(
        '<Response><Dial><Number url="/screen" sendDigits="12w#">+15551230000</Number>'
        "</Dial></Response>"
    )
    h.at(2)
    await h.respond(0, 200)
    media = h.media(0)
    assert ("send_digits", "12w#") in media.events
    assert h.webhooks.fetches and h.parent_media.peer is media
    await h.callee_bye(0)
    await h.result()
    h.check_invariants()


# ---------------------------------------------------------------------------- LEG-1..LEG-4


def header(invite: Request, name: str) -> str | None:
    return invite.headers.get(name)


async def test_leg1_leg2_leg3_every_branch_invite(make: Make) -> None:
    h = make()
    await h.start(
        "<Response><Dial>"
        "<Client>alice</Client>"
        "<Number>+15551230000</Number>"
        "<Sip>sip:carol@10.0.0.30:5070;transport=tcp?Foo=bar&amp;X-Bar=baz</Sip>"
        "</Dial></Response>"
    )
    invites = [h.sip.invites(i)[0] for i in range(3)]
    for index, invite in enumerate(invites):
        sid = header(invite, "X-Dialtone-CallSid")
        assert sid == h.sid(index) and sid in h.records.rows  # LEG-2
        assert header(invite, "X-Dialtone-AccountSid") == ACCOUNT
        assert header(invite, "X-Dialtone-ParentCallSid") == PARENT
        assert h.row(index)["parent_call_sid"] == PARENT
        assert h.row(index)["direction"] == "outbound-dial"
        sender = invite.from_
        assert sender.display_name == "Jane Doe"  # LEG-1: the caller's display name
        assert str(sender.uri) == f"sip:{CALLER}@{DOMAIN}"
        assert sender.tag
        assert invite.cseq.seq == 1 and invite.cseq.method == "INVITE"
        # LEG-3: our own media address, PCMU, PCMA and telephone-event
        media = h.branch(index).media
        assert media is not None
        offer = parse_sdp(invite.body)
        assert invite.content_type == "application/sdp"
        [audio] = offer.media
        assert audio.port == media.local_address[1]
        assert {0, 8, 101} <= set(audio.formats)
    assert len({i.call_id for i in invites}) == 3
    assert len({i.from_.tag for i in invites}) == 3
    alice, number, sip = invites
    assert alice.uri == "sip:alice@10.0.0.11:5062"
    assert header(alice, "To") == f"<sip:alice@{DOMAIN}>"
    assert header(alice, "Contact") == "<sip:dialtone@10.0.0.1:5060;transport=udp>"
    assert number.uri == "sip:+15551230000@10.0.0.50:5060"
    assert header(number, "To") == "<sip:+15551230000@10.0.0.50>"
    assert sip.uri == "sip:carol@10.0.0.30:5070;transport=tcp"  # without its headers
    assert header(sip, "To") == "<sip:carol@10.0.0.30:5070;transport=tcp>"
    assert header(sip, "X-Foo") == "bar" and header(sip, "X-Bar") == "baz"  # LEG-4
    assert header(sip, "Contact") == "<sip:dialtone@10.0.0.1:5060;transport=tcp>"
    peer = h.sip.of(2, "INVITE")[0].peer
    assert peer is not None and (peer.transport, peer.host, peer.port) == ("tcp", "10.0.0.30", 5070)
    assert [h.row(i)["to"] for i in range(3)] == [
        "client:alice",
        "+15551230000",
        "sip:carol@10.0.0.30:5070;transport=tcp",
    ]
    await h.caller_gone()
    await h.result()
    h.check_invariants()


async def test_leg1_client_caller_id_and_no_display_name(make: Make) -> None:
    h = make(display_name=None)
    await h.start('<Response><Dial callerId="client:zoe"><Client>alice</Client></Dial></Response>')
    [invite] = h.sip.invites(0)
    assert invite.from_.display_name in (None, "")
    assert str(invite.from_.uri) == f"sip:zoe@{DOMAIN}"
    assert (header(invite, "From") or "").startswith(f"<sip:zoe@{DOMAIN}>;tag=")
    assert h.row(0)["from_"] == "client:zoe"  # REQ-1 From: the callerId as written
    await h.caller_gone()
    await h.result()


# ---------------------------------------------------------------------------- LEG-5

CHALLENGE = 'Digest realm="far.test", nonce="abc123", algorithm=MD5, qop="auth"'
SIP_AUTH = (
    f'<Response><Dial><Sip username="carol" password="secret" {ALL}>sip:carol@10.0.0.30</Sip>'
    "</Dial></Response>"
)


@pytest.mark.parametrize(
    ("status", "challenge", "answer"),
    [
        (401, "WWW-Authenticate", "Authorization"),
        (407, "Proxy-Authenticate", "Proxy-Authorization"),
    ],
)
async def test_leg5_a_challenge_is_answered_once(
    make: Make, status: int, challenge: str, answer: str
) -> None:
    h = make()
    await h.start(SIP_AUTH)
    first = h.invite(0)
    h.at(0.1)
    await h.respond(0, status, headers=[(challenge, CHALLENGE)])
    invites = h.sip.invites(0)
    assert len(invites) == 2
    retry = invites[1]
    assert retry.cseq.seq == first.cseq.seq + 1 and retry.cseq.method == "INVITE"
    assert retry.call_id == first.call_id and retry.from_.tag == first.from_.tag
    assert retry.body == first.body and retry.uri == first.uri
    value = header(retry, answer) or ""
    assert value.startswith("Digest ") and 'username="carol"' in value
    assert 'realm="far.test"' in value and 'uri="sip:carol@10.0.0.30"' in value
    assert header(first, answer) is None
    assert header(retry, "X-Dialtone-CallSid") == h.sid(0)
    txns = [s.transaction for s in h.sip.of(0, "INVITE")]
    assert len(set(txns)) == 2 and h.branch(0).transaction == txns[1]
    assert h.progress(0) == [initiated()]  # a challenge is no event
    h.at(1)
    await h.respond(0, 180)
    h.at(2)
    await h.respond(0, 200)
    acks = h.sip.of(0, "ACK")
    assert len(acks) == 1 and acks[0].request is not None
    assert acks[0].request.cseq.seq == 2
    assert header(acks[0].request, answer) == value  # §13.2.2.4: the ACK carries them
    h.at(12)
    await h.callee_bye(0)
    result = await h.result()
    assert result == DialResult("completed", h.sid(0), 10, 2, True, False)
    h.check_invariants()


async def test_leg5_a_second_challenge_fails_the_branch(make: Make) -> None:
    h = make()
    await h.start(SIP_AUTH)
    await h.respond(0, 401, headers=[("WWW-Authenticate", CHALLENGE)])
    h.at(0.2)
    await h.respond(0, 401, headers=[("WWW-Authenticate", CHALLENGE.replace("abc", "def"))])
    assert len(h.sip.invites(0)) == 2
    result = await h.result()
    assert result.status == "failed"
    assert h.progress(0) == [initiated(), done(1, "failed", 0, 401)]
    h.check_invariants()


async def test_leg5_without_credentials_a_challenge_fails(make: Make) -> None:
    h = make()
    await h.start(f"<Response><Dial><Sip {ALL}>sip:carol@10.0.0.30</Sip></Dial></Response>")
    await h.respond(0, 401, headers=[("WWW-Authenticate", CHALLENGE)])
    assert len(h.sip.invites(0)) == 1
    assert (await h.result()).status == "failed"
    assert h.progress(0) == [initiated(), done(1, "failed", 0, 401)]
    h.check_invariants()


async def test_leg5_a_challenge_crossing_our_cancel_is_not_retried(make: Make) -> None:
    h = make()
    await h.start(
        f'<Response><Dial><Sip username="carol" password="secret" {ALL}>sip:carol@10.0.0.30'
        f"</Sip><Client {ALL}>alice</Client></Dial></Response>"
    )
    await h.respond(0, 100)  # a provisional: CANCEL may be sent
    h.at(1)
    await h.respond(1, 200)  # alice wins: the Sip branch gets CANCEL
    assert h.sip.kinds(0) == ["INVITE", "CANCEL"]
    await h.respond(0, 401, headers=[("WWW-Authenticate", CHALLENGE)])
    assert h.sip.kinds(0) == ["INVITE", "CANCEL"]  # no new INVITE
    assert h.progress(0)[-1] == done(1, "canceled", 0, 401)


# ---------------------------------------------------------------------------- SIP details


async def test_only_the_first_provisional_fires_ringing(make: Make) -> None:
    h = make()
    await h.start(f"<Response><Dial><Client {ALL}>alice</Client></Dial></Response>")
    await h.respond(0, 100)
    h.at(1)
    await h.respond(0, 183)
    await h.respond(0, 180)
    await h.respond(0, 180, tag="other-fork")
    assert h.progress(0) == [initiated(), (1, "ringing", {})]
    assert h.times(0) == [0, 1]
    await h.caller_gone()
    await h.respond(0, 487)
    await h.result()
    h.check_invariants()


async def test_a_retransmitted_200_gets_the_same_ack_and_nothing_else(make: Make) -> None:
    h = make()
    await h.start(f"<Response><Dial><Client {ALL}>alice</Client></Dial></Response>")
    h.at(2)
    ok = await h.respond(0, 200)
    h.dial.on_response(h.branch(0), ok)
    await h.settle()
    acks = h.sip.of(0, "ACK")
    assert len(acks) == 2 and acks[0].request is not None and acks[1].request is not None
    assert acks[0].request.to_bytes() == acks[1].request.to_bytes()
    assert [p[1] for p in h.progress(0)] == ["initiated", "in-progress"]
    assert h.parent.events == ["180", "200"]
    await h.callee_bye(0)
    await h.result()
    h.check_invariants()


async def test_a_second_fork_answering_the_winner_gets_ack_and_bye(make: Make) -> None:
    """§13.2.2.4, DIAL-24: a forking proxy relays a second 2xx of the same INVITE."""
    h = make()
    await h.start(f"<Response><Dial><Client {ALL}>alice</Client></Dial></Response>")
    h.at(1)
    await h.respond(0, 180, tag="f1")
    await h.respond(0, 180, tag="f2")
    h.at(2)
    await h.respond(0, 200, tag="f1")
    await h.respond(0, 200, tag="f2")
    assert h.sip.kinds(0) == ["INVITE", "ACK", "ACK", "BYE"]
    acks, [bye] = h.sip.of(0, "ACK"), h.sip.of(0, "BYE")
    assert bye.request is not None and acks[1].request is not None
    assert bye.request.to.tag == acks[1].request.to.tag == "f2"
    assert [e for e in h.parent_media.events if e[0] == "bridge"] == [("bridge", "branch0")]
    assert [p[1] for p in h.progress(0)] == ["initiated", "ringing", "in-progress"]
    h.at(7)
    await h.callee_bye(0)
    assert (await h.result()).duration == 5
    h.check_invariants()


async def test_dial34_caller_gone_during_a_whisper(make: Make) -> None:
    h = make()
    h.webhooks.documents["http://app.test/screen"] = Hold("<Response/>")
    await h.start(whisper_dial("/screen", None))
    h.at(1)
    await h.respond(ALICE, 180)
    await h.respond(BOB, 180)
    h.at(2)
    await h.respond(ALICE, 200)
    h.at(4)
    await h.caller_gone()
    assert h.sip.kinds(ALICE) == ["INVITE", "ACK", "BYE"]  # WSP-9: whispering: BYE
    assert h.sip.kinds(BOB) == ["INVITE", "CANCEL"]  # ringing: CANCEL
    assert h.progress(ALICE)[-1] == done(3, "completed", 2, 200)
    await h.respond(BOB, 487)
    result = await h.result()
    assert result == DialResult("canceled", h.sid(ALICE), 0, 4, False, True)
    assert h.parent.events == ["180"]
    h.check_invariants()


# ---------------------------------------------------------------------------- DIAL-31

EARLY_SDP = sdp_answer("10.0.1.1", 40000)
ONE_NUMBER = f'<Response><Dial action="/dial-done"><Number {ALL}>5550100</Number></Dial></Response>'


def early_relay(h: DialTest, index: int = 0) -> bool:
    """Whether the caller hears the branch's early media: bridged to it, no ringback."""
    return (
        h.parent_media.peer is h.media(index)
        and h.dial._ringback is None
        and h.parent_media._playback is None
    )


def ringing_locally(h: DialTest) -> bool:
    """Whether the caller hears dialtone's ringback (DIAL-30), bridged to nobody."""
    playback = h.parent_media._playback
    return (
        h.parent_media.peer is None
        and h.dial._ringback is not None
        and playback is not None
        and isinstance(playback.source, ToneSource)
    )


def configured(media: FakeMedia) -> list[tuple[object, ...]]:
    return [e[1:] for e in media.events if e[0] == "configure"]


def assert_released(h: DialTest) -> None:
    """Every resource of the Dial is back: branch media closed, nothing bridged, no
    ringback (besides check_invariants' rows, callbacks and routing)."""
    h.check_invariants()
    assert h.parent_media.peer is None and not h.parent_media.closed
    assert h.dial._ringback is None and h.parent_media._playback is None
    assert h.dial._early is None and h.dial._tasks == set()


@pytest.mark.parametrize(
    ("dial", "status"),
    [
        (ONE_NUMBER, 183),
        (ONE_NUMBER, 180),
        (
            f'<Response><Dial action="/x"><Sip {ALL}>sip:carol@10.0.0.30</Sip></Dial></Response>',
            183,
        ),
        ("<Response><Dial>555-0100</Dial></Response>", 183),  # text: one <Number>
    ],
)
async def test_dial31_a_single_branch_relays_its_early_media(
    make: Make, dial: str, status: int
) -> None:
    h = make()
    await h.start(dial)
    assert h.parent.events == ["180"] and ringing_locally(h)  # DIAL-30 until then
    h.at(1)
    await h.respond(0, 180)  # without SDP: nothing to relay yet
    assert ringing_locally(h) and configured(h.media(0)) == []
    h.at(2)
    await h.respond(0, status, sdp=EARLY_SDP)
    assert early_relay(h)  # the caller hears the branch, not the ringback
    assert configured(h.media(0)) == [("10.0.1.1", 40000, "PCMU", Direction.RECVONLY)]
    assert h.parent.events == ["180"]  # no second provisional, not answered
    assert ("bridge", "branch0") in h.parent_media.events
    h.at(3)
    await h.respond(0, status, sdp=sdp_answer("10.0.1.9", 40002))  # newer early SDP
    assert early_relay(h)
    assert configured(h.media(0))[-1] == ("10.0.1.9", 40002, "PCMU", Direction.RECVONLY)
    h.at(4)
    await h.respond(0, 200)
    assert h.sip.kinds(0) == ["INVITE", "ACK"] and h.parent.events == ["180", "200"]
    assert configured(h.media(0))[-1] == ("10.0.1.1", 40000, "PCMU", Direction.SENDRECV)
    assert h.parent_media.peer is h.media(0)  # DIAL-33: the same bridge, now both ways
    assert [e for e in h.parent_media.events if e[0] == "bridge"] == [("bridge", "branch0")]
    h.at(10)
    await h.callee_bye(0)
    result = await h.result()
    assert result == DialResult("completed", h.sid(0), 6, 4, True, False)
    assert_released(h)


async def test_dial31_an_answered_parent_hears_the_early_media_on_its_call(make: Make) -> None:
    h = make(parent_answered=True)
    await h.start(ONE_NUMBER)
    h.at(1)
    await h.respond(0, 183, sdp=EARLY_SDP)
    assert early_relay(h) and h.parent.events == []  # DIAL-32: no 180, no 200
    h.at(3)
    await h.respond(0, 200)
    assert h.parent.events == [] and h.parent_media.peer is h.media(0)
    h.at(5)
    await h.caller_gone()
    assert h.sip.kinds(0) == ["INVITE", "ACK", "BYE"]
    assert (await h.result()) == DialResult("completed", h.sid(0), 2, 3, True, True)
    assert_released(h)


@pytest.mark.parametrize(
    "dial",
    [
        # two branches (DIAL-31: exactly one)
        "<Response><Dial><Number>5550100</Number><Sip>sip:carol@10.0.0.30</Sip></Dial></Response>",
        # one rings, one failed at start (DIAL-13): still two branches
        "<Response><Dial><Number>5550100</Number><Client>offline</Client></Dial></Response>",
        # a Client is not a <Number> or <Sip>
        "<Response><Dial><Client>alice</Client></Dial></Response>",
        # a whisper: the caller keeps hearing the ringback (WSP-3)
        '<Response><Dial><Number url="/whisper">5550100</Number></Dial></Response>',
    ],
)
async def test_dial31_otherwise_the_ringback_stays_local(make: Make, dial: str) -> None:
    h = make(clients={**CLIENTS, "offline": []})
    await h.start(dial)
    h.webhooks.documents["http://app.test/whisper"] = "<Response/>"
    live = [b.index for b in h.dial.branches if b.media is not None]
    for index in live:
        h.at(1)
        await h.respond(index, 183, sdp=EARLY_SDP)
    assert ringing_locally(h)
    assert all(configured(h.media(i)) == [] for i in live)
    h.at(2)
    await h.respond(live[0], 200)
    assert h.parent.events == ["180", "200"] and h.parent_media.peer is h.media(live[0])
    for index in live[1:]:  # the other branch was cancelled (DIAL-23)
        await h.respond(index, 487)
    h.at(3)
    await h.callee_bye(live[0])
    assert (await h.result()).status == "completed"
    assert_released(h)


@pytest.mark.parametrize(
    ("code", "status"), [(486, "busy"), (480, "no-answer"), (404, "failed"), (503, "failed")]
)
async def test_dial31_early_media_then_the_branch_fails_the_dial_ends(
    make: Make, code: int, status: str
) -> None:
    """DIAL-26/DIAL-40: the only branch has ended, so the Dial ends with its outcome; the
    caller is not given the ringback again (the action RCML comes next)."""
    h = make()
    await h.start(ONE_NUMBER)
    h.at(1)
    await h.respond(0, 183, sdp=EARLY_SDP)
    assert early_relay(h)
    plays = h.parent_media.kinds().count("play")
    h.at(5)
    await h.respond(0, code)
    result = await h.result()
    assert result == DialResult(status, h.sid(0), 0, 5, False, False)
    assert ("unbridge", "branch0") in h.parent_media.events
    assert h.parent_media.kinds().count("play") == plays  # no ringback after the relay
    assert h.parent.events == ["180"]  # the caller is still unanswered (DOC-11 follows)
    assert h.progress(0)[-1] == done(2, status, 0, code)
    assert_released(h)


async def test_dial31_early_media_then_a_transport_failure(make: Make) -> None:
    h = make()
    await h.start(ONE_NUMBER)
    h.at(1)
    await h.respond(0, 183, sdp=EARLY_SDP)
    h.at(2)
    h.dial.on_failure(h.branch(0), timeout=False)
    await h.settle()
    assert (await h.result()).status == "failed"
    assert_released(h)


async def test_dial31_timeout_during_early_media_brings_the_ringback_back(make: Make) -> None:
    """DIAL-35: the CANCEL ends the relay; until the 487 ends the Dial the caller hears the
    local ringback again."""
    h = make()
    await h.start(ONE_NUMBER.replace("<Dial ", '<Dial timeout="5" '))
    h.at(1)
    await h.respond(0, 183, sdp=EARLY_SDP)
    assert early_relay(h)
    await h.run_until(5)
    assert h.sip.kinds(0) == ["INVITE", "CANCEL"]
    assert ringing_locally(h)
    h.at(5.2)
    await h.respond(0, 487)
    assert (await h.result()) == DialResult("no-answer", h.sid(0), 0, 5, False, False)
    assert h.progress(0)[-1] == done(2, "no-answer", 0, 487)
    assert_released(h)


async def test_dial31_timeout_without_487_ends_2s_after_the_cancel(make: Make) -> None:
    h = make()
    await h.start(ONE_NUMBER.replace("<Dial ", '<Dial timeout="5" '))
    h.at(1)
    await h.respond(0, 183, sdp=EARLY_SDP)
    await h.run_until(7)
    assert (await h.result()).status == "no-answer"
    assert_released(h)


async def test_dial31_caller_hangs_up_during_early_media(make: Make) -> None:
    """DIAL-34: the relay stops at once (nothing more reaches the gone caller), no ringback."""
    h = make()
    await h.start(ONE_NUMBER)
    h.at(1)
    await h.respond(0, 183, sdp=EARLY_SDP)
    plays = h.parent_media.kinds().count("play")
    h.at(2)
    await h.caller_gone()
    assert h.sip.kinds(0) == ["INVITE", "CANCEL"]
    assert h.parent_media.peer is None and h.dial._ringback is None
    assert h.parent_media.kinds().count("play") == plays
    await h.respond(0, 487)
    assert (await h.result()) == DialResult("canceled", h.sid(0), 0, 2, False, True)
    assert_released(h)


async def test_dial31_a_200_crossing_the_callers_cancel_is_not_bridged(make: Make) -> None:
    h = make()
    await h.start(ONE_NUMBER)
    h.at(1)
    await h.respond(0, 183, sdp=EARLY_SDP)
    h.at(2)
    await h.caller_gone()
    await h.respond(0, 200)  # DIAL-24: ACK + BYE
    assert h.sip.kinds(0) == ["INVITE", "CANCEL", "ACK", "BYE"]
    assert h.parent_media.peer is None and h.parent.events == ["180"]
    assert (await h.result()).status == "canceled"
    assert_released(h)


async def test_dial31_api_cancel_of_the_branch_during_early_media(make: Make) -> None:
    h = make()
    await h.start(ONE_NUMBER)
    h.at(1)
    await h.respond(0, 183, sdp=EARLY_SDP)
    h.at(2)
    h.dial.cancel_branch(h.branch(0))
    await h.settle()
    assert h.sip.kinds(0) == ["INVITE", "CANCEL"] and ringing_locally(h)
    await h.respond(0, 487)
    assert (await h.result()).status == "no-answer"  # DIAL-40: no winner, not busy/failed
    assert h.row(0)["status"] == "canceled"
    assert_released(h)


async def test_dial31_a_challenge_ends_the_first_invites_early_media(make: Make) -> None:
    """LEG-5: the challenged INVITE's early dialog is over: ringback until the retry sends
    early media of its own."""
    h = make()
    await h.start(SIP_AUTH)
    h.at(0.5)
    await h.respond(0, 183, sdp=EARLY_SDP)
    assert early_relay(h)
    h.at(1)
    await h.respond(0, 407, headers=[("Proxy-Authenticate", CHALLENGE)])
    assert len(h.sip.invites(0)) == 2 and ringing_locally(h)
    h.at(2)
    await h.respond(0, 183, sdp=EARLY_SDP)
    assert early_relay(h)
    h.at(3)
    await h.respond(0, 200)
    assert h.parent_media.peer is h.media(0) and h.parent.events == ["180", "200"]
    h.at(4)
    await h.callee_bye(0)
    assert (await h.result()) == DialResult("completed", h.sid(0), 1, 3, True, False)
    assert_released(h)


@pytest.mark.parametrize(
    "sdp",
    [
        b"this is no SDP",
        sdp_answer("10.0.1.1", 40000, Direction.RECVONLY),  # the called party sends nothing
        sdp_answer("10.0.1.1", 0),  # the stream is refused
    ],
)
async def test_dial31_unusable_early_sdp_keeps_the_ringback(make: Make, sdp: bytes) -> None:
    h = make()
    await h.start(ONE_NUMBER)
    h.at(1)
    await h.respond(0, 183, sdp=sdp)
    assert ringing_locally(h) and configured(h.media(0)) == []
    h.at(2)
    await h.respond(0, 486)
    assert (await h.result()).status == "busy"
    assert_released(h)


async def test_dial31_early_sdp_turning_recvonly_brings_the_ringback_back(make: Make) -> None:
    h = make()
    await h.start(ONE_NUMBER)
    h.at(1)
    await h.respond(0, 183, sdp=EARLY_SDP)
    assert early_relay(h)
    h.at(2)
    await h.respond(0, 183, sdp=sdp_answer("10.0.1.1", 40000, Direction.RECVONLY))
    assert ringing_locally(h)
    h.at(3)
    await h.respond(0, 200)
    assert h.parent_media.peer is h.media(0)
    await h.callee_bye(0)
    assert (await h.result()).bridged
    assert_released(h)
