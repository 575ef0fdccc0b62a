"""``<Dial>`` with real SIPp peers on 127.0.0.1 (issue 6; dial.md, whisper.md, CB-1..CB-9).

A SIPp caller dials a number whose VoiceUrl (the recording webhook app) answers a ``<Dial>``;
every branch ends at a SIPp of its own: a Client's device registered from its port
(``dial_uas_*.xml`` bound to the Contact), the outbound proxy for ``<Number>``, or a SIP URI.
Each test checks what every SIPp saw (its exit code is its verdict, plus its trace), the exact
call-progress callbacks (URL, method, every CB-5 parameter, SequenceNumber, Timestamp format,
signature checked with twilio-python's ``RequestValidator``), and the action request.

The first tests prove the scenarios peer-to-peer (SIPp against a SIPp playing dialtone) with
negative controls, so a failure against dialtone is dialtone's, not the scenario's.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from dialtone.testing.webhook_app import RecordedRequest, Route, WebhookApp, serve_in_thread
from tests.interop.conftest import Api, ClientAccount, wait_for
from tests.support.dialpeers import (
    ContactRegistrar,
    SippPeer,
    SippPeers,
    call_sids,
    free_udp_port,
    sip_lines,
    sip_trace,
)
from tests.support.ports import free_port
from tests.support.server import ServerProcess
from tests.support.sipp import SippResult

pytestmark = pytest.mark.interop

CALLER = "+15557654321"  # the From user of every dial_uac_* scenario
EVENTS = "initiated ringing answered completed"
RFC2822_UTC = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} \+0000$"
)
SILENCE = b"\xff"  # PCMU digital silence


# --------------------------------------------------------------------------- the scenarios


def _fake_keys() -> dict[str, str]:
    return {
        "account_sid": "AC" + secrets.token_hex(16),
        "callsid": "CA" + secrets.token_hex(16),
        "parentsid": "CA" + secrets.token_hex(16),
        "parent_header": "X-Dialtone-ParentCallSid",
    }


PAIRS = [
    # (device scenario, its -set, fake dialtone, fake's extra keys/args, device rc, fake rc)
    ("dial_uas_answer", {"ring_ms": "300"}, "dial_fake_branch_answer", {}, 0, 0),
    (
        "dial_uas_answer_bye",
        {"ring_ms": "0", "hold_ms": "300"},
        "dial_fake_branch_answer",
        {},
        0,
        0,
    ),
    ("dial_uas_busy", {}, "dial_fake_branch_busy", {}, 0, 0),
    ("dial_uas_ring_busy", {"ring_ms": "300"}, "dial_fake_branch_busy", {}, 0, 0),
    ("dial_uas_ring", {}, "dial_fake_branch_cancel", {}, 0, 0),
    ("dial_uas_challenge", {"ring_ms": "100"}, "dial_fake_branch_auth", {"-ap": "s3cret"}, 0, 0),
    ("dial_uas_early_media", {"ring_ms": "300"}, "dial_fake_branch_answer", {}, 0, 0),
    ("dial_uas_late_ring", {"ring_ms": "1200"}, "dial_fake_branch_cancel", {}, 0, 0),
    ("dial_uas_late_answer", {"ring_ms": "1200"}, "dial_fake_branch_answer", {}, 0, 0),
    ("dial_uas_answer_after_cancel", {}, "dial_fake_branch_late_answer", {}, 0, 0),
    ("dial_uas_challenge_twice", {}, "dial_fake_branch_auth_rejected", {"-ap": "x"}, 0, 0),
    # negative controls: each check of the devices bites
    ("dial_uas_challenge", {"ring_ms": "0"}, "dial_fake_branch_auth", {"-ap": "wrong"}, 1, 0),
    (
        "dial_uas_answer",
        {"ring_ms": "0"},
        "dial_fake_branch_answer",
        {"parent_header": "X-P"},
        1,
        0,
    ),
    ("dial_uas_ring", {}, "dial_fake_branch_cancel", {"account_sid": "AC" + "0" * 32}, 1, 0),
    ("dial_uas_busy", {}, "dial_fake_branch_busy", {"parentsid": "same"}, 1, 0),
]


@pytest.mark.parametrize(
    ("device", "sets", "fake", "extra", "device_rc", "fake_rc"),
    PAIRS,
    ids=[f"{p[0]}-{p[2]}-{i}" for i, p in enumerate(PAIRS)],
)
def test_device_scenarios_against_a_fake_dialtone(
    tmp_path: Path,
    peer_binaries: None,
    device: str,
    sets: dict[str, str],
    fake: str,
    extra: dict[str, str],
    device_rc: int,
    fake_rc: int,
) -> None:
    keys = _fake_keys()
    if extra.get("parentsid") == "same":
        extra = {"parentsid": keys["callsid"]}
    args = [a for k, v in extra.items() if k.startswith("-") for a in (k, v)]
    fake_keys = {**keys, **{k: v for k, v in extra.items() if not k.startswith("-")}}
    device_keys = {"account_sid": keys["account_sid"]}
    if device.startswith("dial_uas_challenge"):
        device_keys |= {"user": "carol", "password": "s3cret", "realm": "peer.test"}
        args = ["-au", "carol", *args]
    with SippPeers(tmp_path) as peers:
        uas = peers.start(device, service="alice", keys=device_keys, sets=sets)
        peers.wait_listening(uas)
        uac = peers.start(fake, remote=uas.port, service="alice", keys=fake_keys, extra=args)
        fake_result, device_result = uac.wait(30), uas.wait(30)
    assert device_result.returncode == device_rc, device_result.describe()
    assert fake_result.returncode == fake_rc, fake_result.describe()


CALLER_PAIRS = [
    ("dial_uac_answered", {"hold_ms": "300"}, {}, "dial_fake_b2bua_answer", {}, 0),
    ("dial_uac_until_bye", {}, {}, "dial_fake_b2bua_answer", {}, 0),
    ("dial_uac_rejected", {}, {"final": "486"}, "dial_fake_b2bua_unanswered", {"final": "486"}, 0),
    ("dial_uac_rejected", {}, {"final": "480"}, "dial_fake_b2bua_unanswered", {"final": "480"}, 0),
    ("dial_uac_cancel", {"ring_ms": "300"}, {}, "dial_fake_b2bua_unanswered", {"final": "486"}, 0),
    ("dial_uac_star", {"star_ms": "200"}, {}, "dial_fake_b2bua_answer", {}, 0),
    # negative controls: the wrong final response; an answer where none is due
    ("dial_uac_rejected", {}, {"final": "480"}, "dial_fake_b2bua_unanswered", {"final": "486"}, 1),
    ("dial_uac_rejected", {}, {"final": "480"}, "dial_fake_b2bua_answer", {}, 1),
]


@pytest.mark.parametrize(
    ("caller", "sets", "keys", "fake", "fake_keys", "caller_rc"),
    CALLER_PAIRS,
    ids=[f"{p[0]}-{p[3]}-{i}" for i, p in enumerate(CALLER_PAIRS)],
)
def test_caller_scenarios_against_a_fake_dialtone(
    tmp_path: Path,
    peer_binaries: None,
    caller: str,
    sets: dict[str, str],
    keys: dict[str, str],
    fake: str,
    fake_keys: dict[str, str],
    caller_rc: int,
) -> None:
    with SippPeers(tmp_path) as peers:
        uas = peers.start(fake, service="+15550001111", keys=fake_keys)
        peers.wait_listening(uas)
        uac = peers.start(caller, remote=uas.port, service="+15550001111", keys=keys, sets=sets)
        result = uac.wait(30)
        uas.wait(30)
    assert result.returncode == caller_rc, result.describe()


def test_the_star_caller_sends_an_rfc4733_event(tmp_path: Path, peer_binaries: None) -> None:
    """dial_uac_star's pcap reaches the SDP address of the far end as telephone-event (101)."""
    with SippPeers(tmp_path) as peers:
        uas = peers.start("dial_fake_b2bua_answer")
        peers.wait_listening(uas)
        uac = peers.start("dial_uac_star", remote=uas.port, sets={"star_ms": "100"})
        result = uac.wait(30)
        uas.wait(30)
        assert uas.rtp is not None
        events = [d for _, d in uas.rtp.packets if d[1] & 0x7F == 101]
    assert result.returncode == 0, result.describe()
    assert events and {d[12] for d in events} == {10}, "no RFC 4733 '*' (event 10)"


def test_a_caller_scenario_fails_without_the_dials_180_with_sdp(
    tmp_path: Path, peer_binaries: None
) -> None:
    """DIAL-30's check bites: dial_uas_answer sends one 180, without SDP, then 200."""
    with SippPeers(tmp_path) as peers:
        uas = peers.start("dial_uas_answer", keys=_fake_keys(), sets={"ring_ms": "0"})
        peers.wait_listening(uas)
        uac = peers.start("dial_uac_answered", remote=uas.port, sets={"hold_ms": "100"})
        result = uac.wait(30)
        uas.wait(30)
    assert result.returncode == 1, result.describe()
    assert "while expecting '180'" in result.errors, result.errors


# --------------------------------------------------------------------------- against dialtone


@pytest.fixture(scope="module")
def proxy_port() -> int:
    """Where ``--outbound-proxy`` points: a SIPp device bound there answers ``<Number>``."""
    return free_udp_port()


@pytest.fixture(scope="module")
def dial_server(
    tmp_path_factory: pytest.TempPathFactory, proxy_port: int
) -> Iterator[ServerProcess]:
    """A dialtone server with an outbound proxy on 127.0.0.1 (module scope)."""
    proc = ServerProcess(
        data_dir=tmp_path_factory.mktemp("dialtone-dial"),
        extra_args=["--outbound-proxy", f"127.0.0.1:{proxy_port}"],
    ).start()
    yield proc
    assert proc.stop() == 0, proc.log()[-4000:]


@dataclass
class Scene:
    """One test's world: dialtone, the webhook app, the SIPps and the registrations."""

    server: ServerProcess
    api: Api
    app: WebhookApp
    base: str
    peers: SippPeers
    proxy_port: int
    registrations: list[tuple[ClientAccount, int]] = field(default_factory=list)

    def number(self, rcml: str, **extra: str) -> str:
        """A fresh IncomingPhoneNumber whose VoiceUrl answers ``rcml``."""
        self.app.route("/voice", Route(body=rcml))
        number = "+1555" + str(free_port()).zfill(7)[-7:]
        response = self.api.http.post(
            f"{self.server.api}/IncomingPhoneNumbers.json",
            data={"PhoneNumber": number, "VoiceUrl": f"{self.base}/voice", **extra},
        )
        assert response.status_code == 201, response.text
        return number

    def device(
        self, client: ClientAccount, scenario: str, sets: dict[str, str] | None = None
    ) -> SippPeer:
        """Register one more device of ``client`` and start ``scenario`` on its port."""
        port = ContactRegistrar.register_device(self.server.sip_port, client.login, client.password)
        self.registrations.append((client, port))
        return self.uas(scenario, port, client.login, sets)

    def uas(
        self,
        scenario: str,
        port: int,
        service: str,
        sets: dict[str, str] | None = None,
        keys: dict[str, str] | None = None,
    ) -> SippPeer:
        """Start a device scenario on ``port`` and wait until it listens."""
        all_keys = {"account_sid": self.server.account_sid, **(keys or {})}
        peer = self.peers.start(
            scenario,
            name=f"{scenario}-{port}",
            port=port,
            service=service,
            keys=all_keys,
            sets=sets,
        )
        self.peers.wait_listening(peer)
        return peer

    def call(
        self,
        scenario: str,
        number: str,
        sets: dict[str, str] | None = None,
        keys: dict[str, str] | None = None,
    ) -> SippPeer:
        """Start the caller towards dialtone (returns at once)."""
        return self.peers.start(
            scenario,
            name="caller",
            remote=self.server.sip_port,
            service=number,
            keys=keys,
            sets=sets,
        )

    def close(self) -> None:
        for client, port in self.registrations:
            ContactRegistrar.unregister_device(
                self.server.sip_port, client.login, client.password, port
            )

    # ---- what the webhook app received

    def parent_sid(self) -> str:
        (voice,) = self.app.requests_to("/voice")
        return voice.params["CallSid"]

    def lane(self, path: str, sid: str) -> list[RecordedRequest]:
        return [r for r in self.app.requests_to(path) if r.params.get("CallSid") == sid]

    def wait_quiet(self, paths: dict[str, int], timeout: float = 20.0) -> None:
        """Wait until each path got its count of requests, then make sure no more come."""

        def arrived() -> bool:
            return all(len(self.app.requests_to(p)) >= n for p, n in paths.items())

        wait_for(arrived, timeout=timeout)
        time.sleep(0.7)  # a late extra callback would show up here
        got = {p: len(self.app.requests_to(p)) for p in paths}
        assert got == paths, self.dump()

    def wait_idle(self) -> None:
        """Every call, dialog and media port released (DOC-12)."""

        def idle() -> bool:
            stats = self.api.stats()
            return stats["calls"] == 0 and stats["sip_dialogs"] == 0 and stats["media_ports"] == 0

        wait_for(idle, timeout=15)

    def dump(self) -> str:
        lines = [f"{r.method} {r.path} {sorted(r.params.items())}" for r in self.app.requests]
        return "\n".join(lines) + "\n--- server log\n" + self.server.log()[-3000:]


@pytest.fixture
def scene(
    dial_server: ServerProcess, proxy_port: int, tmp_path: Path, peer_binaries: None
) -> Iterator[Scene]:
    api = Api(dial_server)
    app = WebhookApp(auth_token=dial_server.auth_token)
    assert app.validator == "twilio"
    with serve_in_thread(app) as running, SippPeers(tmp_path) as peers:
        world = Scene(dial_server, api, app, running.base_url, peers, proxy_port)
        try:
            yield world
        finally:
            peers.close()
            world.close()
            api.http.close()


def signed(scene: Scene, request: RecordedRequest) -> bool:
    """HOOK-10, checked with the official twilio-python validator."""
    signature = request.header("X-Twilio-Signature")
    assert signature, f"{request.url} is not signed"
    params = dict(request.form) if request.method == "POST" else {}
    return bool(RequestValidator(scene.server.auth_token).validate(request.url, params, signature))


def assert_lane(
    scene: Scene,
    path: str,
    sid: str,
    *,
    parent: str,
    to: str,
    statuses: list[str],
    sip_code: str | set[str | None] | None,
    duration: tuple[int, int] = (0, 0),
    caller: str = CALLER,
) -> None:
    """One branch's callbacks: exactly ``statuses`` in order, each with the CB-5 set."""
    lane = scene.lane(path, sid)
    seen = [(r.params.get("SequenceNumber"), r.params.get("CallStatus")) for r in lane]
    assert seen == [(str(i), s) for i, s in enumerate(statuses)], scene.dump()
    stamps = []
    for i, request in enumerate(lane):
        p = request.params
        assert request.method == "POST" and request.url == f"{scene.base}{path}", request.url
        assert request.query == [], request.url
        assert signed(scene, request), f"bad signature on {request.url} {p}"
        assert request.signature_valid is True
        assert p["AccountSid"] == scene.server.account_sid
        assert p["ApiVersion"] == "2010-04-01"
        assert p["CallbackSource"] == "call-progress-events"
        assert p["Direction"] == "outbound-dial"
        assert p["ParentCallSid"] == parent
        assert p["From"] == caller and p["Caller"] == caller
        assert p["To"] == to and p["Called"] == to
        assert RFC2822_UTC.match(p["Timestamp"]), p["Timestamp"]
        stamps.append(parsedate_to_datetime(p["Timestamp"]).timestamp())
        assert abs(stamps[-1] - time.time()) < 120
        assert all(v != "" for v in p.values()), f"empty parameter in {p}"  # REQ-2
        if i == len(lane) - 1:  # completed: CallDuration and SipResponseCode (CB-5, CB-6)
            low, high = duration
            assert low <= int(p["CallDuration"]) <= high, p
            if sip_code is None:
                assert "SipResponseCode" not in p, p
            elif isinstance(sip_code, set):
                assert p.get("SipResponseCode") in sip_code, p
            else:
                assert p.get("SipResponseCode") == sip_code, p
        else:
            assert "CallDuration" not in p and "SipResponseCode" not in p, p
    assert stamps == sorted(stamps), "Timestamps go backwards"
    # DIAL-10, CB-6: the branch is a Call resource with the same outcome
    final = lane[-1].params
    url = f"{scene.server.api}/Calls/{sid}.json"

    def stored() -> bool:
        call = scene.api.http.get(url).json()
        return call.get("status") == final["CallStatus"] and call.get("end_time") is not None

    wait_for(stored, timeout=10)
    call = scene.api.http.get(url).json()
    assert call["direction"] == "outbound-dial" and call["parent_call_sid"] == parent, call
    assert call["to"] == to and call["from"] == caller, call
    assert call["duration"] == final["CallDuration"], call
    code = final.get("SipResponseCode")
    assert call["sip_response_code"] == (None if code is None else int(code)), call


def assert_action(
    scene: Scene,
    path: str,
    *,
    number: str,
    status: str,
    dial_status: str,
    dial_sid: str,
    dial_duration: tuple[int, int],
    ring_duration: tuple[int, int],
    bridged: bool,
) -> dict[str, str]:
    """The Dial's action request (DIAL-41): once, signed, parent's parameters + Dial…."""
    (action,) = scene.app.requests_to(path)
    p = action.params
    assert action.method == "POST" and signed(scene, action), action.url
    assert p["CallSid"] == scene.parent_sid() and p["AccountSid"] == scene.server.account_sid
    assert p["Direction"] == "inbound" and "ParentCallSid" not in p
    assert p["From"] == CALLER and p["To"] == number
    assert p["CallStatus"] == status, p
    assert p["DialCallStatus"] == dial_status, p
    assert p["DialCallSid"] == dial_sid, p
    assert dial_duration[0] <= int(p["DialCallDuration"]) <= dial_duration[1], p
    assert ring_duration[0] <= int(p["DialRingDuration"]) <= ring_duration[1], p
    assert p["DialBridged"] == ("true" if bridged else "false"), p
    return p


def passed(peer: SippPeer, timeout: float = 40.0) -> SippResult:
    """Wait for ``peer`` and insist it passed (exit 0, not killed)."""
    result = peer.wait(timeout)
    assert result.returncode == 0, f"{peer.name}:\n{result.describe()}"
    return result


def branch_sid(result: SippResult) -> str:
    """The CallSid dialtone gave the branch a device received (one INVITE, LEG-2)."""
    (sid,) = call_sids(result.messages)
    return sid


def assert_invite(result: SippResult, request_uri: str, parent: str) -> None:
    """LEG-1/LEG-2 on the branch INVITE a device received."""
    invite = next(m for m in sip_trace(result.messages) if m.start_line.startswith("INVITE"))
    assert invite.start_line == f"INVITE {request_uri} SIP/2.0", invite.text
    assert invite.header("X-Dialtone-ParentCallSid") == parent
    from_header = invite.header("From") or invite.header("f") or ""
    assert f"sip:{CALLER}@" in from_header, from_header


def lost(result: SippResult) -> None:
    """A losing device rang, got CANCEL, answered 487 and got its ACK (DIAL-23)."""
    lines = sip_lines(result.messages)
    assert lines[1] == "SIP/2.0 180 Ringing", lines
    assert any(line.startswith("CANCEL ") for line in lines), lines
    assert "SIP/2.0 487 Request Terminated" in lines and lines[-1].startswith("ACK "), lines
    assert not any(line.startswith("BYE ") for line in lines), lines


def dial_rcml(nouns: str, attrs: str = ' action="/dial-done"') -> str:
    return f"<Response><Dial{attrs}>{nouns}</Dial></Response>"


def client_noun(login: str, extra: str = "", path: str = "/cb") -> str:
    return f'<Client statusCallback="{path}" statusCallbackEvent="{EVENTS}"{extra}>{login}</Client>'


# ---- 1. one Client answers; the caller hangs up after ~1 s


def test_single_client_answers_and_the_caller_hangs_up(scene: Scene) -> None:
    alice = scene.api.create_client()
    number = scene.number(dial_rcml(client_noun(alice.login)))
    scene.app.route("/cb", Route(204, content_type=None))
    scene.app.route("/dial-done", Route(body="<Response><Say>not played</Say></Response>"))
    device = scene.device(alice, "dial_uas_answer", {"ring_ms": "500"})
    calling = scene.call("dial_uac_answered", number, {"hold_ms": "1000"})
    caller = passed(calling)
    callee = passed(device)
    parent = scene.parent_sid()
    sid = branch_sid(callee)
    assert_invite(callee, f"sip:{alice.login}@127.0.0.1:{device.port}", parent)
    assert sip_lines(callee.messages)[-2:] == [f"BYE {_contact(callee)} SIP/2.0", "SIP/2.0 200 OK"]
    assert sip_lines(caller.messages)[:4][-1].startswith("SIP/2.0 180")
    scene.wait_quiet({"/cb": 4, "/dial-done": 1, "/voice": 1})
    assert_lane(
        scene,
        "/cb",
        sid,
        parent=parent,
        to=f"client:{alice.login}",
        statuses=["initiated", "ringing", "in-progress", "completed"],
        sip_code="200",
        duration=(1, 2),
    )
    # CB-5: Timestamp is when the event occurred (RFC 2822 has whole seconds)
    stamps = {
        r.params["CallStatus"]: parsedate_to_datetime(r.params["Timestamp"]).timestamp()
        for r in scene.lane("/cb", sid)
    }
    trace = sip_trace(callee.messages)
    for status, start, sent in (
        ("initiated", "INVITE", False),
        ("ringing", "SIP/2.0 180", True),
        ("in-progress", "SIP/2.0 200", True),
        ("completed", "BYE", False),
    ):
        at = next(m.at for m in trace if m.start_line.startswith(start) and m.sent == sent)
        assert stamps[status] - 0.1 <= at < stamps[status] + 1.1, (status, stamps, at)
    assert_action(
        scene,
        "/dial-done",
        number=number,
        status="completed",
        dial_status="completed",
        dial_sid=sid,
        dial_duration=(1, 2),
        ring_duration=(0, 1),
        bridged=True,
    )
    # DIAL-30: ringback reached the caller before the 200; nothing of the callee before it
    ok_at = _received_at(caller, "SIP/2.0 200")
    assert _rtp_before(calling, ok_at) > 10, "no ringback before the 200"
    scene.wait_idle()


def _contact(result: SippResult) -> str:
    """Where dialtone's BYE must go: the Contact of the device's 200 (RFC 3261 §12.1.2)."""
    ok = next(m for m in sip_trace(result.messages) if m.sent and m.start_line == "SIP/2.0 200 OK")
    contact = ok.header("Contact") or ""
    match = re.search(r"<([^>]+)>", contact)
    return match.group(1) if match else contact.split(";")[0]


def _received_at(result: SippResult, start: str) -> float:
    return next(m.at for m in sip_trace(result.messages) if m.start_line.startswith(start))


def _rtp_before(peer: SippPeer, when: float) -> int:
    assert peer.rtp is not None
    return sum(1 for at, _ in list(peer.rtp.packets) if at < when)


# ---- 2. two Clients and a Number; one Client wins, the others get CANCEL


def test_three_branches_one_client_wins_the_others_are_cancelled(scene: Scene) -> None:
    alice, bob = scene.api.create_client(), scene.api.create_client()
    nouns = (
        client_noun(alice.login, path="/cb-a")
        + client_noun(bob.login, path="/cb-b")
        + f'<Number statusCallback="/cb-n" statusCallbackEvent="{EVENTS}">123-321-4321</Number>'
    )
    number = scene.number(dial_rcml(nouns))
    for path in ("/cb-a", "/cb-b", "/cb-n"):
        scene.app.route(path, Route(204, content_type=None))
    scene.app.route("/dial-done", Route(body="<Response><Hangup/></Response>"))
    winner = scene.device(alice, "dial_uas_answer_bye", {"ring_ms": "800", "hold_ms": "1200"})
    loser = scene.device(bob, "dial_uas_ring")
    proxy = scene.uas("dial_uas_ring", scene.proxy_port, "proxy")
    # alice hangs up first: the caller goes on with the action's RCML, which hangs up (DIAL-44)
    caller = passed(scene.call("dial_uac_until_bye", number))
    won, bob_lost, proxy_lost = passed(winner), passed(loser), passed(proxy)
    for result in (bob_lost, proxy_lost):
        lost(result)
    parent = scene.parent_sid()
    assert_invite(won, f"sip:{alice.login}@127.0.0.1:{winner.port}", parent)
    assert_invite(bob_lost, f"sip:{bob.login}@127.0.0.1:{loser.port}", parent)
    assert_invite(proxy_lost, f"sip:1233214321@127.0.0.1:{scene.proxy_port}", parent)
    sids = [branch_sid(r) for r in (won, bob_lost, proxy_lost)]
    assert len(set(sids)) == 3
    assert sip_lines(caller.messages)[-2:] == [sip_lines(caller.messages)[-2], "SIP/2.0 200 OK"]
    assert sip_lines(caller.messages)[-2].startswith("BYE ")
    scene.wait_quiet({"/cb-a": 4, "/cb-b": 3, "/cb-n": 3, "/dial-done": 1})
    assert_lane(
        scene,
        "/cb-a",
        sids[0],
        parent=parent,
        to=f"client:{alice.login}",
        statuses=["initiated", "ringing", "in-progress", "completed"],
        sip_code="200",
        duration=(1, 2),
    )
    assert_lane(
        scene,
        "/cb-b",
        sids[1],
        parent=parent,
        to=f"client:{bob.login}",
        statuses=["initiated", "ringing", "canceled"],
        sip_code="487",
    )
    assert_lane(
        scene,
        "/cb-n",
        sids[2],
        parent=parent,
        to="1233214321",
        statuses=["initiated", "ringing", "canceled"],
        sip_code="487",
    )
    assert_action(
        scene,
        "/dial-done",
        number=number,
        status="in-progress",
        dial_status="completed",
        dial_sid=sids[0],
        dial_duration=(1, 2),
        ring_duration=(0, 2),
        bridged=True,
    )
    scene.wait_idle()


# ---- 3. one Client, two devices: both ring, one answers, the other gets CANCEL


def test_client_with_two_devices_one_answers_the_other_is_cancelled(scene: Scene) -> None:
    alice = scene.api.create_client()
    number = scene.number(dial_rcml(client_noun(alice.login)))
    scene.app.route("/cb", Route(204, content_type=None))
    scene.app.route("/dial-done", Route(body="<Response/>"))
    ringing = scene.device(alice, "dial_uas_ring")
    answering = scene.device(alice, "dial_uas_answer", {"ring_ms": "800"})
    assert len(scene.api.registrations(alice.sid)) == 2
    passed(scene.call("dial_uac_answered", number, {"hold_ms": "1000"}))
    first, second = passed(ringing), passed(answering)
    lost(first)
    parent = scene.parent_sid()
    assert_invite(first, f"sip:{alice.login}@127.0.0.1:{ringing.port}", parent)
    assert_invite(second, f"sip:{alice.login}@127.0.0.1:{answering.port}", parent)
    loser_sid, winner_sid = branch_sid(first), branch_sid(second)
    assert loser_sid != winner_sid
    scene.wait_quiet({"/cb": 7, "/dial-done": 1})
    to = f"client:{alice.login}"
    assert_lane(
        scene,
        "/cb",
        loser_sid,
        parent=parent,
        to=to,
        statuses=["initiated", "ringing", "canceled"],
        sip_code="487",
    )
    assert_lane(
        scene,
        "/cb",
        winner_sid,
        parent=parent,
        to=to,
        statuses=["initiated", "ringing", "in-progress", "completed"],
        sip_code="200",
        duration=(1, 2),
    )
    assert_action(
        scene,
        "/dial-done",
        number=number,
        status="completed",
        dial_status="completed",
        dial_sid=winner_sid,
        dial_duration=(1, 2),
        ring_duration=(0, 2),
        bridged=True,
    )
    scene.wait_idle()


# ---- 4. busy everywhere, no action: the caller gets 486 at the end of the document


def test_all_branches_busy_without_action_gives_the_caller_486(scene: Scene) -> None:
    alice, bob = scene.api.create_client(), scene.api.create_client()
    nouns = client_noun(alice.login, path="/cb-a") + client_noun(bob.login, path="/cb-b")
    number = scene.number(dial_rcml(nouns, attrs=""), StatusCallback=f"{scene.base}/ended")
    for path in ("/cb-a", "/cb-b", "/ended"):
        scene.app.route(path, Route(204, content_type=None))
    ring_busy = scene.device(alice, "dial_uas_ring_busy", {"ring_ms": "600"})
    busy = scene.device(bob, "dial_uas_busy")
    caller = passed(scene.call("dial_uac_rejected", number, keys={"final": "486"}))
    a, b = passed(ring_busy), passed(busy)
    parent = scene.parent_sid()
    scene.wait_quiet({"/cb-a": 3, "/cb-b": 2, "/ended": 1})
    assert_lane(
        scene,
        "/cb-a",
        branch_sid(a),
        parent=parent,
        to=f"client:{alice.login}",
        statuses=["initiated", "ringing", "busy"],
        sip_code="486",
    )
    assert_lane(
        scene,
        "/cb-b",
        branch_sid(b),
        parent=parent,
        to=f"client:{bob.login}",
        statuses=["initiated", "busy"],
        sip_code="486",
    )
    # the caller got 486 only after the last branch ended (Ex. D-3)
    assert _received_at(caller, "SIP/2.0 486") >= _received_at(a, "SIP/2.0 486")
    (ended,) = scene.app.requests_to("/ended")  # CB-14: the inbound call's own callback
    assert ended.params["CallStatus"] == "busy" and ended.params["CallSid"] == parent
    assert signed(scene, ended)
    scene.wait_idle()


# ---- 5. nobody answers within timeout: no-answer, the caller gets 480


def test_no_answer_within_timeout_gives_no_answer_and_480(scene: Scene) -> None:
    alice = scene.api.create_client()
    number = scene.number(
        dial_rcml(client_noun(alice.login), attrs=' action="/dial-done" timeout="2"'),
        StatusCallback=f"{scene.base}/ended",
    )
    scene.app.route("/cb", Route(204, content_type=None))
    scene.app.route("/ended", Route(204, content_type=None))
    scene.app.route("/dial-done", Route(body="<Response/>"))
    device = scene.device(alice, "dial_uas_ring")
    passed(scene.call("dial_uac_rejected", number, keys={"final": "480"}))
    callee = passed(device)
    lost(callee)
    trace = sip_trace(callee.messages)
    invite_at = next(m.at for m in trace if m.start_line.startswith("INVITE"))
    cancel_at = next(m.at for m in trace if m.start_line.startswith("CANCEL"))
    assert 1.8 <= cancel_at - invite_at <= 3.0, cancel_at - invite_at  # DIAL-35
    parent, sid = scene.parent_sid(), branch_sid(callee)
    scene.wait_quiet({"/cb": 3, "/dial-done": 1, "/ended": 1})
    assert_lane(
        scene,
        "/cb",
        sid,
        parent=parent,
        to=f"client:{alice.login}",
        statuses=["initiated", "ringing", "no-answer"],
        sip_code="487",
    )
    assert_action(
        scene,
        "/dial-done",
        number=number,
        status="ringing",
        dial_status="no-answer",
        dial_sid=sid,
        dial_duration=(0, 0),
        ring_duration=(2, 3),
        bridged=False,
    )
    (ended,) = scene.app.requests_to("/ended")
    assert ended.params["CallStatus"] == "no-answer", ended.params  # CB-14: after our 480
    scene.wait_idle()


# ---- 6. the caller gives up while the branches ring


def test_caller_cancel_while_ringing_cancels_every_branch(scene: Scene) -> None:
    alice, bob = scene.api.create_client(), scene.api.create_client()
    nouns = client_noun(alice.login, path="/cb-a") + client_noun(bob.login, path="/cb-b")
    number = scene.number(dial_rcml(nouns))
    for path in ("/cb-a", "/cb-b"):
        scene.app.route(path, Route(204, content_type=None))
    scene.app.route("/dial-done", Route(body="<Response><Say>discarded</Say></Response>"))
    first, second = scene.device(alice, "dial_uas_ring"), scene.device(bob, "dial_uas_ring")
    caller = passed(scene.call("dial_uac_cancel", number, {"ring_ms": "1000"}))
    a, b = passed(first), passed(second)
    lost(a)
    lost(b)
    assert "SIP/2.0 487 Request Terminated" in sip_lines(caller.messages)
    parent = scene.parent_sid()
    scene.wait_quiet({"/cb-a": 3, "/cb-b": 3, "/dial-done": 1})
    for path, login, result in (("/cb-a", alice.login, a), ("/cb-b", bob.login, b)):
        assert_lane(
            scene,
            path,
            branch_sid(result),
            parent=parent,
            to=f"client:{login}",
            statuses=["initiated", "ringing", "canceled"],
            sip_code="487",
        )
    assert_action(
        scene,
        "/dial-done",
        number=number,
        status="canceled",
        dial_status="canceled",
        dial_sid=branch_sid(a),
        dial_duration=(0, 0),
        ring_duration=(1, 2),
        bridged=False,
    )
    scene.wait_idle()


# ---- 7. a whisper that speaks, then accepts


def test_whisper_says_hi_then_the_branch_is_bridged(scene: Scene) -> None:
    alice = scene.api.create_client()
    number = scene.number(dial_rcml(client_noun(alice.login, ' url="/whisper"')))
    scene.app.route("/cb", Route(204, content_type=None))
    scene.app.route("/whisper", Route(body="<Response><Say>hi</Say></Response>"))
    scene.app.route("/dial-done", Route(body="<Response/>"))
    device = scene.device(alice, "dial_uas_answer", {"ring_ms": "300"})
    caller = passed(scene.call("dial_uac_answered", number, {"hold_ms": "1000"}))
    callee = passed(device)
    parent, sid = scene.parent_sid(), branch_sid(callee)
    scene.wait_quiet({"/cb": 4, "/whisper": 1, "/dial-done": 1})
    (whisper,) = scene.app.requests_to("/whisper")  # WSP-2
    p = whisper.params
    assert whisper.method == "POST" and signed(scene, whisper)
    assert p["CallSid"] == sid and p["ParentCallSid"] == parent
    assert p["CallStatus"] == "in-progress" and p["Direction"] == "outbound-dial"
    assert p["From"] == CALLER and p["To"] == f"client:{alice.login}"
    assert_lane(
        scene,
        "/cb",
        sid,
        parent=parent,
        to=f"client:{alice.login}",
        statuses=["initiated", "ringing", "in-progress", "completed"],
        sip_code="200",
        duration=(1, 4),
    )
    # WSP-3/WSP-5: the callee heard "hi" (the caller sends no RTP, so all speech the callee
    # got is the whisper's), and the caller was answered only after it ended
    caller_ok = _received_at(caller, "SIP/2.0 200")
    assert device.rtp is not None
    speech = [at for at, data in device.rtp.packets if set(data[12:]) - {SILENCE[0]}]
    assert speech, "no whisper speech reached the callee"
    assert speech[-1] < caller_ok + 0.1, "the caller was answered before the whisper ended"
    assert_action(
        scene,
        "/dial-done",
        number=number,
        status="completed",
        dial_status="completed",
        dial_sid=sid,
        dial_duration=(1, 2),
        ring_duration=(0, 1),
        bridged=True,
    )
    scene.wait_idle()


# ---- 8. a whisper holding <Dial>: the branch fails with 13201


def test_whisper_with_dial_fails_the_branch_with_13201(scene: Scene) -> None:
    alice = scene.api.create_client()
    number = scene.number(dial_rcml(client_noun(alice.login, ' url="/whisper"')))
    scene.app.route("/cb", Route(204, content_type=None))
    scene.app.route(
        "/whisper", Route(body="<Response><Say>hi</Say><Dial>+15551230000</Dial></Response>")
    )
    scene.app.route("/dial-done", Route(body="<Response/>"))
    device = scene.device(alice, "dial_uas_answer", {"ring_ms": "300"})
    passed(scene.call("dial_uac_rejected", number, keys={"final": "480"}))
    callee = passed(device)  # answered, then BYE from dialtone (WSP-7)
    parent, sid = scene.parent_sid(), branch_sid(callee)
    scene.wait_quiet({"/cb": 4, "/whisper": 1, "/dial-done": 1})
    assert_lane(
        scene,
        "/cb",
        sid,
        parent=parent,
        to=f"client:{alice.login}",
        statuses=["initiated", "ringing", "in-progress", "failed"],
        sip_code="200",
        duration=(0, 1),
    )
    assert_action(
        scene,
        "/dial-done",
        number=number,
        status="ringing",
        dial_status="failed",
        dial_sid=sid,
        dial_duration=(0, 0),
        ring_duration=(0, 2),
        bridged=False,
    )
    url = f"{scene.server.api}/Calls/{sid}/Notifications.json"
    notes = scene.api.http.get(url).json()["notifications"]
    (note,) = [n for n in notes if n["error_code"] == "13201"]
    assert note["log"] == "0" and note["call_sid"] == sid
    assert f"{scene.base}/whisper" in (note["message_text"] or "") + (note["request_url"] or "")
    assert device.rtp is not None  # WSP-4: no verb of that document ran, so no "hi"
    assert not [d for _, d in device.rtp.packets if set(d[12:]) - {SILENCE[0]}], "hi was played"
    scene.wait_idle()


# ---- 9. <Sip username= password=> towards a far end that challenges


def test_sip_noun_answers_a_digest_challenge(scene: Scene) -> None:
    port = free_udp_port()
    uri = f"sip:carol@127.0.0.1:{port}"
    noun = (
        f'<Sip username="carol" password="s3cret" statusCallback="/cb" '
        f'statusCallbackEvent="{EVENTS}">{uri}</Sip>'
    )
    number = scene.number(dial_rcml(noun))
    scene.app.route("/cb", Route(204, content_type=None))
    scene.app.route("/dial-done", Route(body="<Response/>"))
    far = scene.uas(
        "dial_uas_challenge",
        port,
        "carol",
        {"ring_ms": "300"},
        {"user": "carol", "password": "s3cret", "realm": "peer.test"},
    )
    passed(scene.call("dial_uac_answered", number, {"hold_ms": "1000"}))
    callee = passed(far)
    lines = sip_lines(callee.messages)
    assert [line for line in lines if line.startswith("INVITE")] == [f"INVITE {uri} SIP/2.0"] * 2
    parent, sid = scene.parent_sid(), branch_sid(callee)
    assert_invite(callee, uri, parent)
    scene.wait_quiet({"/cb": 4, "/dial-done": 1})
    assert_lane(
        scene,
        "/cb",
        sid,
        parent=parent,
        to=uri,
        statuses=["initiated", "ringing", "in-progress", "completed"],
        sip_code="200",
        duration=(1, 2),
    )
    assert_action(
        scene,
        "/dial-done",
        number=number,
        status="completed",
        dial_status="completed",
        dial_sid=sid,
        dial_duration=(1, 2),
        ring_duration=(0, 1),
        bridged=True,
    )
    scene.wait_idle()


# ---- 10. DIAL-24: a 2xx crossing the CANCEL gets ACK and BYE; the branch stays canceled


def test_an_answer_crossing_the_cancel_gets_ack_and_bye(scene: Scene) -> None:
    alice, bob = scene.api.create_client(), scene.api.create_client()
    nouns = client_noun(alice.login, path="/cb-a") + client_noun(bob.login, path="/cb-b")
    number = scene.number(dial_rcml(nouns))
    for path in ("/cb-a", "/cb-b"):
        scene.app.route(path, Route(204, content_type=None))
    scene.app.route("/dial-done", Route(body="<Response/>"))
    winner = scene.device(alice, "dial_uas_answer", {"ring_ms": "800"})
    late = scene.device(bob, "dial_uas_answer_after_cancel")
    passed(scene.call("dial_uac_answered", number, {"hold_ms": "1000"}))
    won, crossed = passed(winner), passed(late)
    trace = sip_trace(crossed.messages)
    ok_at = next(
        m.at for m in trace if m.sent and "CSeq: 1 INVITE" in m.text and "200 OK" in m.start_line
    )
    bye_at = next(m.at for m in trace if m.start_line.startswith("BYE"))
    assert bye_at - ok_at < 0.5, "no BYE at once after the late 2xx (DIAL-24)"
    parent = scene.parent_sid()
    scene.wait_quiet({"/cb-a": 4, "/cb-b": 3, "/dial-done": 1})
    assert_lane(
        scene,
        "/cb-b",
        branch_sid(crossed),
        parent=parent,
        to=f"client:{bob.login}",
        statuses=["initiated", "ringing", "canceled"],
        sip_code={"200", "487"},
    )
    assert_action(
        scene,
        "/dial-done",
        number=number,
        status="completed",
        dial_status="completed",
        dial_sid=branch_sid(won),
        dial_duration=(1, 2),
        ring_duration=(0, 2),
        bridged=True,
    )
    scene.wait_idle()


# ---- 11. DIAL-25/LEG-5: a second challenge fails the <Sip> branch


def test_a_second_challenge_fails_the_sip_branch(scene: Scene) -> None:
    port = free_udp_port()
    uri = f"sip:carol@127.0.0.1:{port}"
    noun = (
        f'<Sip username="carol" password="wrong" statusCallback="/cb" '
        f'statusCallbackEvent="{EVENTS}">{uri}</Sip>'
    )
    number = scene.number(dial_rcml(noun))
    scene.app.route("/cb", Route(204, content_type=None))
    scene.app.route("/dial-done", Route(body="<Response/>"))
    far = scene.uas("dial_uas_challenge_twice", port, "carol", keys={"realm": "peer.test"})
    passed(scene.call("dial_uac_rejected", number, keys={"final": "480"}))
    callee = passed(far)
    lines = sip_lines(callee.messages)
    assert [line for line in lines if line.startswith("INVITE")] == [f"INVITE {uri} SIP/2.0"] * 2
    parent, sid = scene.parent_sid(), branch_sid(callee)
    scene.wait_quiet({"/cb": 2, "/dial-done": 1})
    assert_lane(
        scene,
        "/cb",
        sid,
        parent=parent,
        to=uri,
        statuses=["initiated", "failed"],
        sip_code="401",
    )
    assert_action(
        scene,
        "/dial-done",
        number=number,
        status="ringing",
        dial_status="failed",
        dial_sid=sid,
        dial_duration=(0, 0),
        ring_duration=(0, 2),
        bridged=False,
    )
    scene.wait_idle()


# ---- 12. DIAL-36: timeLimit ends the bridge; the caller goes on with the action


def test_time_limit_ends_the_bridge_and_the_caller_continues(scene: Scene) -> None:
    alice = scene.api.create_client()
    number = scene.number(
        dial_rcml(client_noun(alice.login), attrs=' action="/dial-done" timeLimit="1"')
    )
    scene.app.route("/cb", Route(204, content_type=None))
    scene.app.route("/dial-done", Route(body="<Response><Hangup/></Response>"))
    device = scene.device(alice, "dial_uas_answer", {"ring_ms": "300"})
    caller = passed(scene.call("dial_uac_until_bye", number))
    callee = passed(device)
    trace = sip_trace(callee.messages)
    ok_at = next(m.at for m in trace if m.sent and m.start_line == "SIP/2.0 200 OK")
    bye_at = next(m.at for m in trace if m.start_line.startswith("BYE"))
    assert 0.9 <= bye_at - ok_at <= 2.0, bye_at - ok_at
    assert _received_at(caller, "BYE") >= bye_at
    parent, sid = scene.parent_sid(), branch_sid(callee)
    scene.wait_quiet({"/cb": 4, "/dial-done": 1})
    assert_lane(
        scene,
        "/cb",
        sid,
        parent=parent,
        to=f"client:{alice.login}",
        statuses=["initiated", "ringing", "in-progress", "completed"],
        sip_code="200",
        duration=(1, 2),
    )
    assert_action(
        scene,
        "/dial-done",
        number=number,
        status="in-progress",
        dial_status="completed",
        dial_sid=sid,
        dial_duration=(1, 2),
        ring_duration=(0, 1),
        bridged=True,
    )
    scene.wait_idle()


# ---- 13. DIAL-37: the caller's * ends the bridge


def test_hangup_on_star_ends_the_bridge(scene: Scene) -> None:
    alice = scene.api.create_client()
    number = scene.number(
        dial_rcml(client_noun(alice.login), attrs=' action="/dial-done" hangupOnStar="true"')
    )
    scene.app.route("/cb", Route(204, content_type=None))
    scene.app.route("/dial-done", Route(body="<Response><Hangup/></Response>"))
    device = scene.device(alice, "dial_uas_answer", {"ring_ms": "300"})
    calling = scene.call("dial_uac_star", number, {"star_ms": "800"})
    caller, callee = passed(calling), passed(device)
    ack_at = next(m.at for m in sip_trace(caller.messages) if m.start_line.startswith("ACK"))
    bye_at = next(m.at for m in sip_trace(callee.messages) if m.start_line.startswith("BYE"))
    assert 0.7 <= bye_at - ack_at <= 2.5, bye_at - ack_at  # after the *, not at once
    parent, sid = scene.parent_sid(), branch_sid(callee)
    scene.wait_quiet({"/cb": 4, "/dial-done": 1})
    assert_lane(
        scene,
        "/cb",
        sid,
        parent=parent,
        to=f"client:{alice.login}",
        statuses=["initiated", "ringing", "in-progress", "completed"],
        sip_code="200",
        duration=(0, 2),
    )
    assert_action(
        scene,
        "/dial-done",
        number=number,
        status="in-progress",
        dial_status="completed",
        dial_sid=sid,
        dial_duration=(0, 2),
        ring_duration=(0, 1),
        bridged=True,
    )
    scene.wait_idle()


# ---- 14. DIAL-13: an unknown and an offline Client fail at once, without SIP


def test_unknown_and_offline_clients_fail_at_once_while_another_answers(scene: Scene) -> None:
    alice, offline = scene.api.create_client(), scene.api.create_client()
    unknown = "nobody" + secrets.token_hex(3)
    nouns = (
        client_noun(unknown, path="/cb-u")
        + client_noun(offline.login, path="/cb-o")
        + client_noun(alice.login, path="/cb-a")
    )
    number = scene.number(dial_rcml(nouns))
    for path in ("/cb-u", "/cb-o", "/cb-a"):
        scene.app.route(path, Route(204, content_type=None))
    scene.app.route("/dial-done", Route(body="<Response/>"))
    device = scene.device(alice, "dial_uas_answer", {"ring_ms": "300"})
    passed(scene.call("dial_uac_answered", number, {"hold_ms": "1000"}))
    callee = passed(device)
    parent = scene.parent_sid()
    scene.wait_quiet({"/cb-u": 1, "/cb-o": 1, "/cb-a": 4, "/dial-done": 1})
    failed: dict[str, str] = {}
    for path, login, code in (("/cb-u", unknown, "82001"), ("/cb-o", offline.login, "82002")):
        (only,) = scene.app.requests_to(path)
        sid = only.params["CallSid"]
        failed[code] = sid
        assert_lane(
            scene,
            path,
            sid,
            parent=parent,
            to=f"client:{login}",
            statuses=["failed"],
            sip_code=None,
        )
    assert_lane(
        scene,
        "/cb-a",
        branch_sid(callee),
        parent=parent,
        to=f"client:{alice.login}",
        statuses=["initiated", "ringing", "in-progress", "completed"],
        sip_code="200",
        duration=(1, 2),
    )
    assert_action(
        scene,
        "/dial-done",
        number=number,
        status="completed",
        dial_status="completed",
        dial_sid=branch_sid(callee),
        dial_duration=(1, 2),
        ring_duration=(0, 1),
        bridged=True,
    )
    notes = scene.api.http.get(f"{scene.server.api}/Notifications.json").json()["notifications"]
    for code, sid in failed.items():
        mine = [n for n in notes if n["error_code"] == code and n["call_sid"] in (sid, parent)]
        assert mine and all(n["log"] == "1" for n in mine), (code, notes)
    scene.wait_idle()


# ---- 15. DIAL-33: media flows both ways once bridged, and not before


def test_media_is_bridged_both_ways_only_after_the_answer(scene: Scene) -> None:
    alice = scene.api.create_client()
    number = scene.number(dial_rcml(client_noun(alice.login)))
    scene.app.route("/cb", Route(204, content_type=None))
    scene.app.route("/dial-done", Route(body="<Response/>"))
    device = scene.device(alice, "dial_uas_answer", {"ring_ms": "1200"})
    calling = scene.call("dial_uac_answered", number, {"hold_ms": "1500"})
    assert calling.rtp is not None and device.rtp is not None
    # both parties talk from the start: the caller to its 180's SDP, the callee to the offer
    early = calling.wait_message("SIP/2.0 180", body="m=audio")
    calling.rtp.stream(early.audio_port, 0x2A, 3.5)
    offer = device.wait_message("INVITE")
    device.rtp.stream(offer.audio_port, 0x3C, 3.0)
    caller, callee = passed(calling), passed(device)
    caller_ok = _received_at(caller, "SIP/2.0 200")
    callee_ok = next(
        m.at for m in sip_trace(callee.messages) if m.sent and m.start_line == "SIP/2.0 200 OK"
    )
    heard_by_callee = device.rtp.payloads(0x2A)
    heard_by_caller = calling.rtp.payloads(0x3C)
    assert len(heard_by_callee) > 25 and len(heard_by_caller) > 25, (
        len(heard_by_callee),
        len(heard_by_caller),
    )
    assert heard_by_callee[0] >= callee_ok - 0.02, "the callee heard the caller before answering"
    assert heard_by_caller[0] >= caller_ok - 0.05, "the caller heard the callee before its 200"
    scene.wait_quiet({"/cb": 4, "/dial-done": 1})
    scene.wait_idle()


# ---- 16. DIAL-31: one <Number> with early media: the caller hears it instead of ringback


def test_single_number_branch_relays_its_early_media(scene: Scene) -> None:
    number = scene.number(
        dial_rcml(f'<Number statusCallback="/cb" statusCallbackEvent="{EVENTS}">5550100</Number>')
    )
    scene.app.route("/cb", Route(204, content_type=None))
    scene.app.route("/dial-done", Route(body="<Response/>"))
    proxy = scene.uas("dial_uas_early_media", scene.proxy_port, "proxy", {"ring_ms": "1500"})
    calling = scene.call("dial_uac_answered", number, {"hold_ms": "800"})
    assert proxy.rtp is not None and calling.rtp is not None
    offer = proxy.wait_message("INVITE")
    proxy.rtp.stream(offer.audio_port, 0x55, 1.4)  # while it rings (183 … 200)
    caller, far = passed(calling), passed(proxy)
    caller_ok = _received_at(caller, "SIP/2.0 200")
    early = [at for at in calling.rtp.payloads(0x55) if at < caller_ok]
    assert len(early) > 25, f"only {len(early)} packets of the branch's early media"
    parent, sid = scene.parent_sid(), branch_sid(far)
    assert_invite(far, f"sip:5550100@127.0.0.1:{scene.proxy_port}", parent)
    scene.wait_quiet({"/cb": 4, "/dial-done": 1})
    assert_lane(
        scene,
        "/cb",
        sid,
        parent=parent,
        to="5550100",
        statuses=["initiated", "ringing", "in-progress", "completed"],
        sip_code="200",
        duration=(0, 1),
    )
    scene.wait_idle()


# ---- 17. WSP-9: another branch wins while a whisper runs: BYE to the whispering one


def test_a_branch_still_whispering_gets_bye_when_another_wins(scene: Scene) -> None:
    alice, bob = scene.api.create_client(), scene.api.create_client()
    nouns = client_noun(alice.login, ' url="/whisper"', path="/cb-a") + client_noun(
        bob.login, path="/cb-b"
    )
    number = scene.number(dial_rcml(nouns))
    for path in ("/cb-a", "/cb-b"):
        scene.app.route(path, Route(204, content_type=None))
    scene.app.route("/whisper", Route(body='<Response><Pause length="10"/></Response>'))
    scene.app.route("/dial-done", Route(body="<Response/>"))
    whispering = scene.device(alice, "dial_uas_answer", {"ring_ms": "200"})
    winner = scene.device(bob, "dial_uas_answer", {"ring_ms": "1500"})
    passed(scene.call("dial_uac_answered", number, {"hold_ms": "800"}))
    a, b = passed(whispering), passed(winner)
    a_bye = next(m.at for m in sip_trace(a.messages) if m.start_line.startswith("BYE"))
    b_ok = next(m.at for m in sip_trace(b.messages) if m.start_line == "SIP/2.0 200 OK")
    assert 0 <= a_bye - b_ok < 0.5, "the whispering branch did not get BYE at once"
    parent = scene.parent_sid()
    scene.wait_quiet({"/cb-a": 4, "/cb-b": 4, "/whisper": 1, "/dial-done": 1})
    assert_lane(
        scene,
        "/cb-a",
        branch_sid(a),
        parent=parent,
        to=f"client:{alice.login}",
        statuses=["initiated", "ringing", "in-progress", "completed"],
        sip_code="200",
        duration=(1, 2),
    )
    assert_lane(
        scene,
        "/cb-b",
        branch_sid(b),
        parent=parent,
        to=f"client:{bob.login}",
        statuses=["initiated", "ringing", "in-progress", "completed"],
        sip_code="200",
        duration=(0, 2),
    )
    assert_action(
        scene,
        "/dial-done",
        number=number,
        status="completed",
        dial_status="completed",
        dial_sid=branch_sid(b),
        dial_duration=(0, 2),
        ring_duration=(1, 2),
        bridged=True,
    )
    scene.wait_idle()


# ---- 18. WSP-6: a whisper that declines ends only its branch; GET callbacks (HOOK-1, CB-2)


def test_a_declining_whisper_ends_its_branch_and_get_callbacks_are_signed(scene: Scene) -> None:
    alice, bob = scene.api.create_client(), scene.api.create_client()
    nouns = (
        f'<Client url="/whisper" statusCallback="/cb?leg=a" statusCallbackMethod="GET">'
        f"{alice.login}</Client>"
        f'<Client statusCallback="/cb?leg=b" statusCallbackMethod="GET">{bob.login}</Client>'
    )
    number = scene.number(dial_rcml(nouns))
    scene.app.route("/cb", Route(204, content_type=None))
    scene.app.route("/whisper", Route(body="<Response><Hangup/></Response>"))
    scene.app.route("/dial-done", Route(body="<Response/>"))
    declining = scene.device(alice, "dial_uas_answer", {"ring_ms": "200"})
    winner = scene.device(bob, "dial_uas_answer", {"ring_ms": "1200"})
    passed(scene.call("dial_uac_answered", number, {"hold_ms": "800"}))
    a, b = passed(declining), passed(winner)
    a_bye = next(m.at for m in sip_trace(a.messages) if m.start_line.startswith("BYE"))
    b_ok = next(m.at for m in sip_trace(b.messages) if m.start_line == "SIP/2.0 200 OK")
    assert a_bye < b_ok, "the declined branch was not ended before the other answered"
    scene.wait_quiet({"/cb": 2, "/whisper": 1, "/dial-done": 1})
    # CB-2: a URL without an event list gets only completed; GET puts the parameters in the
    # query after the URL's own (HOOK-1) and signs that whole URL (HOOK-10)
    for leg, result in (("a", a), ("b", b)):
        (cb,) = [r for r in scene.app.requests_to("/cb") if r.params.get("leg") == leg]
        assert cb.method == "GET" and cb.form == [] and cb.query[0] == ("leg", leg), cb.url
        assert cb.url.startswith(f"{scene.base}/cb?leg={leg}&"), cb.url
        assert signed(scene, cb) and cb.signature_valid is True
        p = cb.params
        assert p["CallSid"] == branch_sid(result) and p["CallStatus"] == "completed", p
        assert p["SequenceNumber"] == "0" and p["SipResponseCode"] == "200", p
    assert_action(
        scene,
        "/dial-done",
        number=number,
        status="completed",
        dial_status="completed",
        dial_sid=branch_sid(b),
        dial_duration=(0, 2),
        ring_duration=(1, 2),
        bridged=True,
    )
    scene.wait_idle()


# ---- 19. DIAL-23: a branch silent when the winner is chosen gets CANCEL on its first 180


def test_a_branch_that_had_not_responded_is_cancelled_on_its_first_provisional(
    scene: Scene,
) -> None:
    alice, bob = scene.api.create_client(), scene.api.create_client()
    nouns = client_noun(alice.login, path="/cb-a") + client_noun(bob.login, path="/cb-b")
    number = scene.number(dial_rcml(nouns))
    for path in ("/cb-a", "/cb-b"):
        scene.app.route(path, Route(204, content_type=None))
    scene.app.route("/dial-done", Route(body="<Response/>"))
    winner = scene.device(alice, "dial_uas_answer", {"ring_ms": "200"})
    slow = scene.device(bob, "dial_uas_late_ring", {"ring_ms": "1500"})
    # the bridge lasts past bob's 180 (test 20 covers a 180 after the call)
    passed(scene.call("dial_uac_answered", number, {"hold_ms": "3000"}))
    won, late = passed(winner), passed(slow)
    trace = sip_trace(late.messages)
    ringing_at = next(m.at for m in trace if m.start_line == "SIP/2.0 180 Ringing")
    cancel_at = next(m.at for m in trace if m.start_line.startswith("CANCEL"))
    assert 0 <= cancel_at - ringing_at < 0.5, "no CANCEL at once on the late 180"
    parent = scene.parent_sid()
    scene.wait_quiet({"/cb-a": 4, "/dial-done": 1}, timeout=20)
    wait_for(lambda: scene.lane("/cb-b", branch_sid(late))[-1:] != [], timeout=10)
    lane = [r.params["CallStatus"] for r in scene.lane("/cb-b", branch_sid(late))]
    # canceled at once when alice won (DIAL-23): its completed may fire then (no SIP response
    # yet, so no SipResponseCode) or when the 487 arrives; "ringing" only if it fired first
    assert lane in (["initiated", "canceled"], ["initiated", "ringing", "canceled"]), lane
    assert_lane(
        scene,
        "/cb-b",
        branch_sid(late),
        parent=parent,
        to=f"client:{bob.login}",
        statuses=lane,
        sip_code={"487", None},
    )
    assert_action(
        scene,
        "/dial-done",
        number=number,
        status="completed",
        dial_status="completed",
        dial_sid=branch_sid(won),
        dial_duration=(3, 4),
        ring_duration=(0, 1),
        bridged=True,
    )
    scene.wait_idle()


# ---- 20/21. DIAL-23/DIAL-24 after the call: a late 180 still gets CANCEL, a late 2xx ACK+BYE


@pytest.mark.parametrize("late", ["dial_uas_late_ring", "dial_uas_late_answer"])
def test_a_late_response_after_the_call_is_still_ended(scene: Scene, late: str) -> None:
    alice, bob = scene.api.create_client(), scene.api.create_client()
    nouns = client_noun(alice.login, path="/cb-a") + client_noun(bob.login, path="/cb-b")
    number = scene.number(dial_rcml(nouns))
    for path in ("/cb-a", "/cb-b"):
        scene.app.route(path, Route(204, content_type=None))
    scene.app.route("/dial-done", Route(body="<Response/>"))
    winner = scene.device(alice, "dial_uas_answer", {"ring_ms": "200"})
    slow = scene.device(bob, late, {"ring_ms": "2500"})  # after the caller's BYE (~1.2 s)
    passed(scene.call("dial_uac_answered", number, {"hold_ms": "1000"}))
    passed(winner)
    result = passed(slow, timeout=8)
    trace = sip_trace(result.messages)
    late_at = next(m.at for m in trace if m.sent and m.start_line.startswith("SIP/2.0 "))
    end_at = next(m.at for m in trace if not m.sent and m.start_line.startswith(("CANCEL", "BYE")))
    assert end_at - late_at < 0.5, "not ended at once"
    scene.wait_idle()
