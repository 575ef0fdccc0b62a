"""API-25 during a `<Dial>` with real SIPp phones on 127.0.0.1: redirecting the caller's call,
and redirecting a bridged branch out of its Dial.

The world is ``test_dial_sipp``'s (:class:`~tests.interop.test_dial_sipp.Scene`: a dialtone
with an outbound proxy, the recording webhook app, SIPp devices bound to registered
contacts); the redirect is a plain ``POST /Calls/{CallSid}``.  Each test checks what every
phone saw (SIPp's verdict and trace: CANCEL, BYE) and the exact webhook requests the app
received (paths, counts, every lane's statuses and parameters, signatures).
"""

from __future__ import annotations

import time

import pytest

from dialtone.testing.webhook_app import Route
from tests.interop import test_dial_sipp as dial
from tests.interop.conftest import wait_for
from tests.support.dialpeers import sip_lines, sip_trace

pytestmark = pytest.mark.interop

# The fixtures of test_dial_sipp (a server of this module's own, module scope)
proxy_port = dial.proxy_port
dial_server = dial.dial_server
scene = dial.scene

Scene = dial.Scene
SILENCE = 0xFF  # PCMU digital silence


def redirect(scene: Scene, sid: str, **data: str) -> dict[str, object]:
    response = scene.api.http.post(f"{scene.server.api}/Calls/{sid}.json", data=data)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def kinds(messages: str) -> list[str]:
    """A trace as ``["INVITE", "100", "180", "200", "ACK", "BYE", "200"]``."""
    lines = sip_lines(messages)
    return [line.split(" ")[1] if line.startswith("SIP/") else line.split(" ")[0] for line in lines]


def requested(scene: Scene) -> list[str]:
    """Every path the app was asked for, sorted (lanes interleave in any order)."""
    return sorted(r.path for r in scene.app.requests)


def speech_after(peer: dial.SippPeer, when: float) -> int:
    """RTP packets from dialtone to ``peer`` after ``when`` that are not silence."""
    assert peer.rtp is not None
    return sum(
        1
        for at, data in list(peer.rtp.packets)
        if at > when and len(data) > 12 and any(b != SILENCE for b in data[12:])
    )


# ---- case 1: the caller's call is redirected while its Dial rings and whispers


def test_redirect_of_the_caller_ends_its_dial_without_the_action(scene: Scene) -> None:
    alice, bob = scene.api.create_client(), scene.api.create_client()
    nouns = dial.client_noun(alice.login, ' url="/whisper"', path="/cb-a") + dial.client_noun(
        bob.login, path="/cb-b"
    )
    number = scene.number(dial.dial_rcml(nouns))
    for path in ("/cb-a", "/cb-b"):
        scene.app.route(path, Route(204, content_type=None))
    scene.app.route("/whisper", Route(body='<Response><Pause length="20"/></Response>'))
    scene.app.route("/dial-done", Route(body="<Response><Say>not played</Say></Response>"))
    scene.app.route("/after", Route(body="<Response><Say>Moving on</Say><Hangup/></Response>"))
    whispering = scene.device(alice, "dial_uas_answer", {"ring_ms": "200"})
    ringing = scene.device(bob, "dial_uas_ring")
    calling = scene.call("dial_uac_until_bye", number)
    scene.app.wait_for_sync(1, path="/whisper", within=10)  # alice answered: her whisper runs
    ringing.wait_message("SIP/2.0 180")
    parent = scene.parent_sid()
    redirected_at = time.time()
    body = redirect(scene, parent, Url=f"{scene.base}/after", Method="GET")
    assert body["sid"] == parent and body["status"] == "ringing"  # never answered yet
    caller = dial.passed(calling)
    a, b = dial.passed(whispering), dial.passed(ringing)
    # SIP: alice (whispering) got BYE at once, bob (ringing) CANCEL; the caller 200 then BYE
    a_bye = next(m.at for m in sip_trace(a.messages) if m.start_line.startswith("BYE "))
    b_cancel = next(m.at for m in sip_trace(b.messages) if m.start_line.startswith("CANCEL "))
    assert a_bye - redirected_at < 1.0 and b_cancel - redirected_at < 1.0
    dial.lost(b)
    # never answered by the Dial: the new document's <Say> answered it, <Hangup/> ended it
    assert kinds(caller.messages)[-4:] == ["200", "ACK", "BYE", "200"], caller.messages
    assert kinds(caller.messages).count("200") == 2
    # the webhooks: the Dial's, the redirect's (GET), never the action
    scene.wait_quiet({"/cb-a": 4, "/cb-b": 3, "/after": 1, "/dial-done": 0})
    assert requested(scene) == sorted(
        ["/voice", "/whisper", "/after"] + ["/cb-a"] * 4 + ["/cb-b"] * 3
    ), scene.dump()
    (after,) = scene.app.requests_to("/after")
    assert after.method == "GET" and dial.signed(scene, after), after.url
    p = after.params
    assert p["CallSid"] == parent and p["CallStatus"] == "ringing", p
    assert p["Direction"] == "inbound" and p["To"] == number and "DialCallStatus" not in p
    dial.assert_lane(
        scene,
        "/cb-a",
        dial.branch_sid(a),
        parent=parent,
        to=f"client:{alice.login}",
        statuses=["initiated", "ringing", "in-progress", "completed"],
        sip_code="200",
        duration=(0, 2),
    )
    dial.assert_lane(
        scene,
        "/cb-b",
        dial.branch_sid(b),
        parent=parent,
        to=f"client:{bob.login}",
        statuses=["initiated", "ringing", "canceled"],
        sip_code="487",
    )
    call = scene.api.http.get(f"{scene.server.api}/Calls/{parent}.json").json()
    assert call["status"] == "completed", call
    scene.wait_idle()


# ---- case 2: the bridged branch is redirected out of the Dial


def test_redirect_of_the_bridged_branch_runs_its_rcml_and_the_caller_goes_on(
    scene: Scene,
) -> None:
    alice = scene.api.create_client()
    number = scene.number(dial.dial_rcml(dial.client_noun(alice.login)))
    scene.app.route("/cb", Route(204, content_type=None))
    scene.app.route(
        "/dial-done", Route(body="<Response><Say>The other party left</Say><Hangup/></Response>")
    )
    scene.app.route(
        "/child", Route(body="<Response><Say>You have been transferred</Say><Hangup/></Response>")
    )
    device = scene.device(alice, "dial_uas_answer", {"ring_ms": "1500"})
    calling = scene.call("dial_uac_until_bye", number)
    # while alice rings, new RCML for her call is refused (API-25: not in progress)
    initiated = scene.app.wait_for_sync(1, path="/cb", within=10)[0]
    sid = initiated.params["CallSid"]
    call_url = f"{scene.server.api}/Calls/{sid}.json"
    wait_for(lambda: scene.api.http.get(call_url).status_code == 200, timeout=5)  # stored
    early = scene.api.http.post(
        f"{scene.server.api}/Calls/{sid}.json", data={"Url": f"{scene.base}/child"}
    )
    assert early.status_code == 400 and early.json()["code"] == 21220, early.text
    assert "not in progress" in early.json()["message"]
    # she answers and is bridged; then she is redirected
    scene.app.wait_for_sync(3, path="/cb", within=10)  # initiated, ringing, in-progress
    wait_for(
        lambda: (
            scene.api.http.get(f"{scene.server.api}/Calls/{sid}.json").json()["status"]
            == "in-progress"
        ),
        timeout=5,
    )
    time.sleep(0.5)
    redirected_at = time.time()
    body = redirect(scene, sid, Url=f"{scene.base}/child")
    assert body["sid"] == sid and body["status"] == "in-progress"
    assert body["parent_call_sid"] == scene.parent_sid()
    callee, caller = dial.passed(device), dial.passed(calling)
    parent = scene.parent_sid()
    # SIP: alice got no CANCEL, and BYE only after her new RCML's Say; the caller was
    # answered once and hung up on after the action's Say
    callee_lines = sip_lines(callee.messages)
    assert not any(line.startswith("CANCEL ") for line in callee_lines), callee_lines
    bye_at = next(m.at for m in sip_trace(callee.messages) if m.start_line.startswith("BYE "))
    assert bye_at - redirected_at > 0.5, "alice got BYE before her Say was played"
    assert speech_after(device, redirected_at) > 20, "alice heard no speech after the redirect"
    assert kinds(caller.messages)[-4:] == ["200", "ACK", "BYE", "200"], caller.messages
    assert kinds(caller.messages).count("200") == 2  # answered once
    # the webhooks: the child's RCML request, alice's four callbacks, the action
    scene.wait_quiet({"/cb": 4, "/child": 1, "/dial-done": 1})
    assert requested(scene) == sorted(["/voice", "/child", "/dial-done"] + ["/cb"] * 4)
    (child,) = scene.app.requests_to("/child")
    assert child.method == "POST" and dial.signed(scene, child)
    p = child.params
    assert p["CallSid"] == sid and p["ParentCallSid"] == parent, p
    assert p["Direction"] == "outbound-dial" and p["CallStatus"] == "in-progress", p
    assert p["To"] == f"client:{alice.login}" and p["From"] == dial.CALLER, p
    dial.assert_lane(
        scene,
        "/cb",
        sid,
        parent=parent,
        to=f"client:{alice.login}",
        statuses=["initiated", "ringing", "in-progress", "completed"],
        sip_code="200",
        duration=(1, 4),
    )
    action = dial.assert_action(
        scene,
        "/dial-done",
        number=number,
        status="in-progress",
        dial_status="completed",
        dial_sid=sid,
        dial_duration=(0, 1),
        ring_duration=(1, 2),
        bridged=True,
    )
    assert action["CallSid"] == parent
    # the action came at the redirect, before alice's call ended (she left the Dial)
    (action_request,) = scene.app.requests_to("/dial-done")
    completed = scene.lane("/cb", sid)[-1]
    assert action_request.arrived < completed.arrived
    scene.wait_idle()
