"""`<Dial>` with real baresip phones: fork, bridge, hangupOnStar, callee first, whispers.

Every phone sends a sine of its own frequency (``ausine``), so the received-audio dumps
tell who heard whom (tests/support/baresip_dial.py): the caller alice sends 600 Hz, bob
1000 Hz, bob's second device and carol 1400 Hz; dialtone's ringback is 440+480 Hz.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from dialtone.testing.webhook_app import RecordedRequest, Route, WebhookApp, serve_in_thread
from tests.interop.conftest import Api, ClientAccount, wait_for
from tests.interop.test_call_sipp import create_number
from tests.support.baresip import Baresip, BaresipFactory, SipMessage
from tests.support.baresip_dial import (
    RINGBACK,
    SPEECH,
    describe,
    first_index,
    timeline,
)
from tests.support.server import ServerProcess

pytestmark = pytest.mark.interop

ALICE_HZ, BOB_HZ, OTHER_HZ = 600, 1000, 1400
TONES = {
    "ringback": RINGBACK,
    "alice": (float(ALICE_HZ),),
    "bob": (float(BOB_HZ),),
    "other": (float(OTHER_HZ),),
}
EVENTS = "initiated ringing answered completed"
WINDOW = 0.02  # seconds per label of a timeline: one RTP packet
#: CB-3/CB-7: every event of an answered branch, SequenceNumber from 0 without gaps
ANSWERED_LANE = [("0", "initiated"), ("1", "ringing"), ("2", "in-progress"), ("3", "completed")]


@pytest.fixture
def webhook(sip_server: ServerProcess) -> Iterator[tuple[WebhookApp, str]]:
    app = WebhookApp(auth_token=sip_server.auth_token)
    app.route("/cb", Route(204, content_type=None))
    with serve_in_thread(app) as running:
        yield app, running.base_url


# --------------------------------------------------------------------------- helpers


def registered(
    phones: BaresipFactory, server: ServerProcess, client: ClientAccount, sine_hz: int
) -> Baresip:
    """A baresip registered as ``client`` (a binding of its own) sending ``sine_hz``."""
    phone = phones(
        client.login,
        password=client.password,
        registrar=f"127.0.0.1:{server.sip_port}",
        sine_hz=sine_hz,
    )
    phone.wait_registered(timeout=10)
    return phone


def caller(phones: BaresipFactory) -> Baresip:
    """alice: a plain (unregistered) baresip that dials numbers."""
    return phones("alice", sine_hz=ALICE_HZ)


def received(phone: Baresip, method: str) -> list[SipMessage]:
    """Requests ``method`` the phone received."""
    return [
        m
        for m in phone.sip_messages()
        if m.direction == "received" and m.is_request and m.method == method
    ]


def sent_status(phone: Baresip, method: str) -> list[int]:
    """Status codes the phone sent to requests ``method``."""
    return [
        m.status
        for m in phone.sip_messages()
        if m.direction == "sent" and not m.is_request and m.method == method and m.status
    ]


def invite_call_sid(phone: Baresip) -> str:
    """The ``X-Dialtone-CallSid`` of the one INVITE the phone received (LEG-2)."""
    (invite,) = received(phone, "INVITE")
    (sid,) = invite.header("X-Dialtone-CallSid")
    return sid


def calls(rest: Api, **filters: str) -> list[dict[str, Any]]:
    response = rest.http.get(f"{rest.server.api}/Calls.json", params={"PageSize": 100, **filters})
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["calls"]
    return rows


def call(rest: Api, sid: str) -> dict[str, Any]:
    response = rest.http.get(f"{rest.server.api}/Calls/{sid}.json")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def callbacks(app: WebhookApp, sid: str, path: str = "/cb") -> list[RecordedRequest]:
    return [r for r in app.requests_to(path) if r.params.get("CallSid") == sid]


def lane(app: WebhookApp, sid: str) -> list[tuple[str, str]]:
    """(SequenceNumber, CallStatus) of one branch's callbacks, in arrival order (CB-10)."""
    return [(r.params["SequenceNumber"], r.params["CallStatus"]) for r in callbacks(app, sid)]


def wait_completed(app: WebhookApp, sid: str, timeout: float = 15.0) -> RecordedRequest:
    """The branch's ``completed`` callback (CB-8), once it arrived."""
    wait_for(
        lambda: any(r.params.get("SequenceNumber") == "3" for r in callbacks(app, sid)), timeout
    )
    return callbacks(app, sid)[-1]


def assert_signed(app: WebhookApp) -> None:
    unsigned = [f"{r.method} {r.url}" for r in app.requests if r.signature_valid is not True]
    assert not unsigned, f"bad X-Twilio-Signature ({app.validator} validator): {unsigned}"


def assert_completed_callback(request: RecordedRequest, parent_sid: str) -> None:
    """CB-5 on a ``completed`` callback of an answered branch."""
    params = request.params
    assert params["CallStatus"] == "completed"
    assert params["CallbackSource"] == "call-progress-events"
    assert params["Direction"] == "outbound-dial"
    assert params["ParentCallSid"] == parent_sid
    assert params["SipResponseCode"] == "200"
    assert int(params["CallDuration"]) >= 1
    assert params["Timestamp"].endswith("+0000")


def heard(phone: Baresip, timeout: float = 10.0) -> list[str]:
    """The timeline of what ``phone`` received in its (closed) call."""
    return timeline(phone.wait_audio_dump("dec", timeout=timeout), TONES, window=WINDOW)


def secs(labels: list[str], label: str) -> float:
    """How long ``label`` was heard in a timeline, in seconds."""
    return labels.count(label) * WINDOW


def onset(labels: list[str], label: str) -> int:
    """Where 0.2 s of ``label`` begin in a timeline (fails when they never do)."""
    index = first_index(labels, label, run=round(0.2 / WINDOW))
    assert index is not None, f"never 0.2 s of {label}: {describe(labels, WINDOW)}"
    return index


def after_last(labels: list[str], label: str) -> list[str]:
    """The timeline after the last window of ``label``."""
    return labels[max(i for i, x in enumerate(labels) if x == label) + 1 :]


def idle(rest: Api) -> bool:
    stats = rest.stats()
    return stats["calls"] == 0 and stats["media_ports"] == 0


# --------------------------------------------------------------------------- tests


def test_client_to_client_rings_both_devices_first_answer_wins_and_audio_flows(
    sip_server: ServerProcess, rest: Api, phones: BaresipFactory
) -> None:
    """Ex. S-2 / RTE-2 step 3: alice (no VoiceUrl) calls bob, who has two devices."""
    alice, bob = rest.create_client(), rest.create_client()
    a = registered(phones, sip_server, alice, ALICE_HZ)
    b1 = registered(phones, sip_server, bob, BOB_HZ)
    b2 = registered(phones, sip_server, bob, OTHER_HZ)
    wait_for(lambda: len(rest.registrations(bob.sid)) == 2)

    a.dial(f"sip:{bob.login}@127.0.0.1:{sip_server.sip_port}")
    b1.wait_event("CALL_INCOMING", timeout=10)
    b2.wait_event("CALL_INCOMING", timeout=10)
    a.wait_event("CALL_RINGING", timeout=10)
    wait_for(lambda: any(m.status == 180 for m in a.sip_messages()), timeout=5)
    b1_sid, b2_sid = invite_call_sid(b1), invite_call_sid(b2)
    assert b1_sid != b2_sid
    # the parent is unanswered and ringing while both devices ring (RTE-4, DIAL-30)
    (parent,) = [c for c in calls(rest, To=f"client:{bob.login}") if c["direction"] == "inbound"]
    assert parent["status"] == "ringing"
    assert parent["from"] == f"client:{alice.login}"

    # let alice hear ringback for a while, then device 1 answers
    time.sleep(1.2)
    b1.accept()
    a.wait_event("CALL_ESTABLISHED", timeout=10)
    b1.wait_event("CALL_ESTABLISHED", timeout=10)
    b2.wait_event("CALL_CLOSED", timeout=10)
    assert len(received(b2, "CANCEL")) == 1, b2.sip_start_lines()
    assert 487 in sent_status(b2, "INVITE")
    assert received(b2, "BYE") == []

    time.sleep(1.0)
    # DIAL-33: RFC 4733 events cross the bridge both ways
    a.send_dtmf("5")
    assert b1.wait_dtmf(1, timeout=5) == "5"
    b1.send_dtmf("7")
    assert a.wait_dtmf(1, timeout=5) == "7"
    time.sleep(1.5)  # audio both ways through the bridge
    a.hangup()
    b1.wait_event("CALL_CLOSED", timeout=10)
    assert len(received(b1, "BYE")) == 1, b1.sip_start_lines()

    # SIP seen by alice: 407 challenge, 180 with SDP (early media), 200
    alice_in = [m for m in a.sip_messages() if m.direction == "received" and not m.is_request]
    statuses = [m.status for m in alice_in if m.method == "INVITE"]
    assert 407 in statuses and 180 in statuses and 200 in statuses, statuses
    ringing = next(m for m in alice_in if m.status == 180 and "m=audio" in m.text)
    assert "application/sdp" in ringing.text.lower()

    # who heard whom: alice ringback then bob; bob alice; device 2 never had audio
    alice_heard, bob_heard = heard(a), heard(b1)
    bridged = onset(alice_heard, "bob")
    assert secs(alice_heard[:bridged], "ringback") >= 0.5, describe(alice_heard, WINDOW)
    assert secs(alice_heard[:bridged], SPEECH) <= 0.1, describe(alice_heard, WINDOW)
    assert secs(alice_heard[bridged:], "bob") >= 1.5, describe(alice_heard, WINDOW)
    assert secs(alice_heard, "other") == 0, describe(alice_heard, WINDOW)
    assert secs(bob_heard, "alice") >= 1.5, describe(bob_heard, WINDOW)
    assert secs(bob_heard, "other") == 0, describe(bob_heard, WINDOW)
    assert secs(bob_heard, "ringback") <= 0.1, describe(bob_heard, WINDOW)
    assert not [p for p in b2.audio_dumps("dec") if p.stat().st_size > 1000]

    # Calls API: the inbound parent and two outbound-dial children
    wait_for(lambda: call(rest, parent["sid"])["status"] == "completed", timeout=10)
    children = {c["sid"]: c for c in calls(rest, ParentCallSid=parent["sid"])}
    assert set(children) == {b1_sid, b2_sid}
    winner, loser = children[b1_sid], children[b2_sid]
    for child in (winner, loser):
        assert child["direction"] == "outbound-dial"
        assert child["parent_call_sid"] == parent["sid"]
        assert child["to"] == f"client:{bob.login}"
        assert child["from"] == f"client:{alice.login}"
    assert winner["status"] == "completed"
    assert winner["sip_response_code"] == 200
    assert int(winner["duration"]) >= 2
    assert loser["status"] == "canceled"
    assert loser["sip_response_code"] == 487
    assert loser["duration"] == "0"
    final = call(rest, parent["sid"])
    assert final["direction"] == "inbound"
    assert final["parent_call_sid"] is None
    wait_for(lambda: idle(rest), timeout=10)


def test_hangup_on_star_ends_the_bridge_and_the_action_rcml_runs(
    sip_server: ServerProcess,
    rest: Api,
    webhook: tuple[WebhookApp, str],
    phones: BaresipFactory,
) -> None:
    """DIAL-37, DIAL-41, DIAL-42: alice's ``*`` BYEs bob; ``/done`` speaks and hangs up."""
    app, base = webhook
    bob = rest.create_client()
    app.route(
        "/voice",
        Route(
            body='<Response><Dial action="/done" hangupOnStar="true">'
            f'<Client statusCallback="/cb" statusCallbackEvent="{EVENTS}">{bob.login}</Client>'
            "</Dial><Say>not reached</Say></Response>"
        ),
    )
    app.route("/done", Route(body="<Response><Say>Back with you</Say><Hangup/></Response>"))
    number = create_number(rest, f"{base}/voice")
    b = registered(phones, sip_server, bob, BOB_HZ)
    a = caller(phones)

    a.dial(f"sip:{number}@127.0.0.1:{sip_server.sip_port}")
    b.wait_event("CALL_INCOMING", timeout=15)
    bob_sid = invite_call_sid(b)
    time.sleep(0.5)
    b.accept()
    a.wait_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(1.0)  # bridged audio both ways
    b.send_dtmf("*")  # DIAL-37: the callee's * is relayed and ends nothing
    assert a.wait_dtmf(1, timeout=5) == "*"
    time.sleep(1.0)
    assert not [e for e in b.events() if e.type == "CALL_CLOSED"], "bob's * ended the bridge"
    assert app.requests_to("/done") == []
    a.send_dtmf("*")
    b.wait_event("CALL_CLOSED", timeout=10)
    assert len(received(b, "BYE")) == 1, b.sip_start_lines()
    (done,) = app.wait_for_sync(1, path="/done", within=15)
    assert not [e for e in b.events() if e.type == "CALL_DTMF_START"], "alice's * was relayed"
    a.wait_event("CALL_CLOSED", timeout=20)  # after "Back with you", dialtone's BYE
    assert len(received(a, "BYE")) == 1, a.sip_start_lines()

    (voice,) = app.requests_to("/voice")
    parent_sid = voice.params["CallSid"]
    params = done.params
    assert params["CallSid"] == parent_sid
    assert params["CallStatus"] == "in-progress"
    assert params["DialCallStatus"] == "completed"
    assert params["DialBridged"] == "true"
    assert params["DialCallSid"] == bob_sid
    assert int(params["DialCallDuration"]) >= 1
    assert int(params["DialRingDuration"]) >= 0
    assert done.method == "POST"

    # CB-3/CB-7/CB-8 on the branch's lane, all before the action request (CB-9)
    wait_completed(app, bob_sid)
    assert lane(app, bob_sid) == ANSWERED_LANE
    completed = callbacks(app, bob_sid)[-1]
    assert_completed_callback(completed, parent_sid)
    assert completed.arrived <= done.arrived
    assert completed.params["CallDuration"] == params["DialCallDuration"]  # DIAL-41, CB-6
    assert_signed(app)

    # alice heard bob over the bridge, then the action's speech, not bob any more
    alice_heard, bob_heard = heard(a), heard(b)
    onset(alice_heard, "bob")
    assert secs(after_last(alice_heard, "bob"), SPEECH) >= 0.5, describe(alice_heard, WINDOW)
    assert secs(bob_heard, "alice") >= 1.0, describe(bob_heard, WINDOW)
    assert secs(bob_heard, SPEECH) <= 0.1, describe(bob_heard, WINDOW)  # not the action's Say

    child = call(rest, bob_sid)
    assert child["status"] == "completed"
    assert child["parent_call_sid"] == parent_sid
    assert child["duration"] == params["DialCallDuration"]
    assert len(app.requests_to("/done")) == 1  # DIAL-41: exactly once
    wait_for(lambda: call(rest, parent_sid)["status"] == "completed", timeout=10)
    wait_for(lambda: idle(rest), timeout=10)


def test_callee_hangs_up_first_caller_hears_the_next_verb(
    sip_server: ServerProcess,
    rest: Api,
    webhook: tuple[WebhookApp, str],
    phones: BaresipFactory,
) -> None:
    """Ex. D-6, DIAL-44: bob's BYE ends the bridge only; alice hears "Goodbye", then BYE."""
    app, base = webhook
    bob = rest.create_client()
    app.route(
        "/voice",
        Route(
            body="<Response><Dial>"
            f'<Client statusCallback="/cb" statusCallbackEvent="{EVENTS}">{bob.login}</Client>'
            "</Dial><Say>Goodbye</Say></Response>"
        ),
    )
    number = create_number(rest, f"{base}/voice")
    b = registered(phones, sip_server, bob, BOB_HZ)
    a = caller(phones)

    a.dial(f"sip:{number}@127.0.0.1:{sip_server.sip_port}")
    b.wait_event("CALL_INCOMING", timeout=15)
    bob_sid = invite_call_sid(b)
    b.accept()
    a.wait_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(2.0)
    b.hangup()
    b.wait_event("CALL_CLOSED", timeout=10)
    assert [s for s in b.sip_start_lines("received") if s.startswith("SIP/2.0 200")]
    assert not received(b, "BYE")  # bob sent the BYE
    hung_up = time.monotonic()
    a.wait_event("CALL_CLOSED", timeout=20)
    assert time.monotonic() - hung_up >= 0.3, "alice was hung up at once, not after the Say"
    assert len(received(a, "BYE")) == 1, a.sip_start_lines()

    (voice,) = app.requests_to("/voice")
    parent_sid = voice.params["CallSid"]
    wait_completed(app, bob_sid)
    assert lane(app, bob_sid) == ANSWERED_LANE
    assert_completed_callback(callbacks(app, bob_sid)[-1], parent_sid)
    assert_signed(app)

    alice_heard = heard(a)
    onset(alice_heard, "bob")
    assert secs(after_last(alice_heard, "bob"), SPEECH) >= 0.3, describe(alice_heard, WINDOW)

    assert call(rest, bob_sid)["status"] == "completed"
    wait_for(lambda: call(rest, parent_sid)["status"] == "completed", timeout=10)
    wait_for(lambda: idle(rest), timeout=10)


def test_whisper_gather_carol_declines_with_2_bob_accepts_with_1(
    sip_server: ServerProcess,
    rest: Api,
    webhook: tuple[WebhookApp, str],
    phones: BaresipFactory,
) -> None:
    """Ex. W-1 with baresip DTMF: both answer, carol presses 2 (BYE), bob presses 1 (bridge)."""
    app, base = webhook
    bob, carol = rest.create_client(), rest.create_client()
    noun = f'url="/screen" statusCallback="/cb" statusCallbackEvent="{EVENTS}"'
    app.route(
        "/voice",
        Route(
            body='<Response><Dial action="/dial-done">'
            f"<Client {noun}>{bob.login}</Client><Client {noun}>{carol.login}</Client>"
            "</Dial></Response>"
        ),
    )
    app.route(
        "/screen",
        Route(
            body='<Response><Gather numDigits="1" timeout="10" action="/screen-result">'
            "<Say>Call for you. Press 1 to take it.</Say></Gather><Hangup/></Response>"
        ),
    )
    app.route(
        "/screen-result", Route(body="<Response><Hangup/></Response>"), Route(body="<Response/>")
    )
    app.route("/dial-done", Route(body="<Response/>"))
    number = create_number(rest, f"{base}/voice")
    b = registered(phones, sip_server, bob, BOB_HZ)
    c = registered(phones, sip_server, carol, OTHER_HZ)
    a = caller(phones)

    a.dial(f"sip:{number}@127.0.0.1:{sip_server.sip_port}")
    b.wait_event("CALL_INCOMING", timeout=15)
    c.wait_event("CALL_INCOMING", timeout=15)
    bob_sid, carol_sid = invite_call_sid(b), invite_call_sid(c)

    c.accept()
    c.wait_event("CALL_ESTABLISHED", timeout=10)
    app.wait_for_sync(1, path="/screen", within=10)
    b.accept()
    b.wait_event("CALL_ESTABLISHED", timeout=10)
    screens = app.wait_for_sync(2, path="/screen", within=10)
    by_sid = {r.params["CallSid"]: r for r in screens}
    assert set(by_sid) == {bob_sid, carol_sid}
    for sid, login in ((bob_sid, bob.login), (carol_sid, carol.login)):
        params = by_sid[sid].params
        assert params["Direction"] == "outbound-dial"
        assert params["CallStatus"] == "in-progress"
        assert params["To"] == f"client:{login}"
    time.sleep(1.0)  # some of the whisper's Say reaches each callee

    c.send_dtmf("2")
    (declined,) = app.wait_for_sync(1, path="/screen-result", within=10)
    assert declined.params["CallSid"] == carol_sid
    assert declined.params["Digits"] == "2"
    c.wait_event("CALL_CLOSED", timeout=10)
    assert len(received(c, "BYE")) == 1, c.sip_start_lines()
    assert all(e.type != "CALL_ESTABLISHED" for e in a.events()), "carol's decline bridged"

    b.send_dtmf("1")
    results = app.wait_for_sync(2, path="/screen-result", within=10)
    assert results[1].params["CallSid"] == bob_sid
    assert results[1].params["Digits"] == "1"
    a.wait_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(2.0)
    a.hangup()
    b.wait_event("CALL_CLOSED", timeout=10)
    assert len(received(b, "BYE")) == 1, b.sip_start_lines()

    (voice,) = app.requests_to("/voice")
    parent_sid = voice.params["CallSid"]
    for request in [*screens, *results]:
        assert request.params["ParentCallSid"] == parent_sid
    (done,) = app.wait_for_sync(1, path="/dial-done", within=15)
    params = done.params
    assert params["CallStatus"] == "completed"
    assert params["DialCallStatus"] == "completed"
    assert params["DialCallSid"] == bob_sid
    assert params["DialBridged"] == "true"
    assert int(params["DialCallDuration"]) >= 1

    for sid in (bob_sid, carol_sid):
        completed = wait_completed(app, sid)
        assert lane(app, sid) == ANSWERED_LANE, (sid, lane(app, sid))
        assert_completed_callback(completed, parent_sid)
        assert completed.arrived <= done.arrived
    assert_signed(app)

    # WSP-3: the callees hear the whisper, the caller only ringback until bob's bridge
    alice_heard, bob_heard, carol_heard = heard(a), heard(b), heard(c)
    bridged = onset(alice_heard, "bob")
    assert secs(alice_heard[:bridged], "ringback") >= 0.5, describe(alice_heard, WINDOW)
    assert secs(alice_heard[:bridged], SPEECH) <= 0.1, describe(alice_heard, WINDOW)
    assert secs(alice_heard, "other") == 0, describe(alice_heard, WINDOW)  # never carol
    bob_bridged = onset(bob_heard, "alice")
    assert secs(bob_heard[:bob_bridged], SPEECH) >= 0.5, describe(bob_heard, WINDOW)
    assert secs(bob_heard[:bob_bridged], "ringback") <= 0.1, describe(bob_heard, WINDOW)
    assert secs(carol_heard, SPEECH) >= 0.5, describe(carol_heard, WINDOW)
    assert secs(carol_heard, "alice") == 0, describe(carol_heard, WINDOW)

    assert call(rest, carol_sid)["status"] == "completed"
    assert call(rest, bob_sid)["status"] == "completed"
    wait_for(lambda: idle(rest), timeout=10)


def test_the_whisper_digit_that_accepts_is_not_relayed_to_the_caller(
    sip_server: ServerProcess,
    rest: Api,
    webhook: tuple[WebhookApp, str],
    phones: BaresipFactory,
) -> None:
    """WSP-3: bob's digits belong to the whisper's Gather; alice hears nothing of bob before
    the bridge (DIAL-33), so no DTMF reaches her phone for the key that accepted."""
    app, base = webhook
    bob = rest.create_client()
    app.route(
        "/voice",
        Route(body=f'<Response><Dial><Client url="/screen">{bob.login}</Client></Dial></Response>'),
    )
    app.route(
        "/screen",
        Route(
            body='<Response><Gather numDigits="1" timeout="10" action="/accept">'
            "<Say>Press 1 to take the call.</Say></Gather><Hangup/></Response>"
        ),
    )
    app.route("/accept", Route(body="<Response/>"))
    number = create_number(rest, f"{base}/voice")
    b = registered(phones, sip_server, bob, BOB_HZ)
    a = caller(phones)

    a.dial(f"sip:{number}@127.0.0.1:{sip_server.sip_port}")
    b.wait_event("CALL_INCOMING", timeout=15)
    b.accept()
    app.wait_for_sync(1, path="/screen", within=10)
    time.sleep(0.5)
    b.send_dtmf("1")
    a.wait_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(1.0)  # the key's remaining RFC 4733 packets have arrived by now
    leaked = [e.param for e in a.events() if e.type == "CALL_DTMF_START"]
    a.hangup()
    b.wait_event("CALL_CLOSED", timeout=10)
    assert app.requests_to("/accept")[0].params["Digits"] == "1"
    assert leaked == [], f"alice's phone received DTMF {leaked} from bob's screening key"
