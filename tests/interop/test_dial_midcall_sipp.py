"""Mid-call on a bridged ``<Dial>`` with real SIPp phones on 127.0.0.1 (spec SIP-11, SIP-12,
DIAL-33).

A SIPp caller dials a number whose VoiceUrl answers ``<Dial><Client>``; the Client's device
is a SIPp registered from its own port.  Once bridged, one party sends re-INVITEs in *its*
dialog (the caller in the inbound one, the callee in the branch one): hold (``sendonly``)
and resume, a PCMA-only re-offer, a re-offer without a common codec.  SIP-11: dialtone
answers each locally (200 with its own SDP, the hold direction mirrored) and forwards
nothing to the other party.  SIP-12 / DIAL-33: the bridge relays RTP both ways, transcoded
PCMU↔PCMA when the legs' codecs differ; no common codec → 488 and the bridge goes on.

Both phones' RTP is a socket the test owns (:class:`RtpSink`, the SDP address) that also
*sends* a constant payload (:class:`RtpStream`, one byte value per party), so every packet
a party receives can be told apart: the other party's audio relayed (exact bytes), the
same audio transcoded (another law, same level), or anything else.  The windows between
the re-INVITEs are cut with the SIPp traces' timestamps.  Each test also checks the
webhook side (one ``completed`` per branch with its Call record, the Dial's action, the
parent's own StatusCallback) and that ``/dialtone/stats.json`` live counts drop to zero.

Negative controls: every "nothing arrives in this window" is paired with windows of the
same call where the very same stream does arrive; "transcoded" is paired with the
pass-through before the codec change and with a check that an untranscoded (relabelled)
packet would fail the level comparison; "no re-INVITE forwarded" counts the one INVITE
that must be there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dialtone.media.rtp import RtpPacket
from dialtone.testing.webhook_app import Route, WebhookApp, serve_in_thread
from tests.interop.conftest import Api, wait_for
from tests.interop.test_call_midcall_sipp import (
    directions,
    final,
    rtp_between,
    sdp_formats,
    sdp_origin,
)
from tests.interop.test_dial_sipp import (
    Scene,
    assert_action,
    assert_lane,
    branch_sid,
    client_noun,
    dial_rcml,
    passed,
    signed,
)
from tests.support.dialpeers import (
    RtpSink,
    RtpStream,
    SippPeer,
    SippPeers,
    TracedMessage,
    sip_trace,
)
from tests.support.server import ServerProcess
from tests.support.sipp import SippResult

pytestmark = pytest.mark.interop

PCMU, PCMA = 0, 8
CALLER_FILL = 0x9A  # the caller's PCMU byte (+10876); read as A-law it would be +4032
CALLEE_FILL = 0x2B  # the callee's PCMU byte (-5116); read as A-law it would be -31232
CALLER_ALAW = 0xA5  # the caller's A-law byte after its move to PCMA (+16896; as μ-law +6652)
CALLEE_ALAW = 0x1C  # the callee's A-law byte after its move to PCMA (-3264; as μ-law -9852)
MARGIN = 0.15  # s after a 200 was received: packets already on their way may still arrive
EVENTS = "initiated ringing answered completed"
LANE = ["initiated", "ringing", "in-progress", "completed"]


# --------------------------------------------------------------------------- G.711 reference


def ulaw_level(byte: int) -> int:
    """ITU-T G.711 μ-law → 16-bit linear (the classic Sun reference), independent of
    dialtone's codec tables."""
    u = ~byte & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return 0x84 - t if u & 0x80 else t - 0x84


def alaw_level(byte: int) -> int:
    """ITU-T G.711 A-law → 16-bit linear (Sun reference)."""
    a = byte ^ 0x55
    t = (a & 0x0F) << 4
    segment = (a & 0x70) >> 4
    if segment == 0:
        t += 8
    elif segment == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (segment - 1)
    return t if a & 0x80 else -t


def level(pt: int, byte: int) -> int:
    return ulaw_level(byte) if pt == PCMU else alaw_level(byte)


def same_level(got: int, want: int) -> bool:
    """Within G.711 quantisation (a step is at most 1/16 of the level, plus a margin)."""
    return abs(got - want) <= abs(want) // 10 + 64


def test_the_g711_reference_tells_transcoding_from_relabelling() -> None:
    """The level check bites: each party's bytes relabelled to the other law (no
    transcoding) are far off, while the law's own reading is exact.  Fixed points of
    G.711: μ-law 0xFF and A-law 0xD5 are (near) zero, μ-law 0x80 is the maximum."""
    assert ulaw_level(0xFF) == 0 and alaw_level(0xD5) == 8 and ulaw_level(0x80) == 32124
    for pt, byte in ((PCMU, CALLER_FILL), (PCMU, CALLEE_FILL), (PCMA, CALLER_ALAW)):
        other = PCMA if pt == PCMU else PCMU
        assert same_level(level(pt, byte), level(pt, byte))
        assert not same_level(level(other, byte), level(pt, byte)), hex(byte)
    assert not same_level(level(PCMU, CALLEE_ALAW), level(PCMA, CALLEE_ALAW))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def mid_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A dialtone server of this module."""
    proc = ServerProcess(data_dir=tmp_path_factory.mktemp("dialtone-dial-mid")).start()
    yield proc
    assert proc.stop() == 0, proc.log()[-4000:]


@pytest.fixture
def scene(mid_server: ServerProcess, tmp_path: Path, peer_binaries: None) -> Iterator[Scene]:
    """One test's world (see ``test_dial_sipp.Scene``); every SIPp it started is killed by
    PID at the end, every RTP sink and stream closed."""
    api = Api(mid_server)
    app = WebhookApp(auth_token=mid_server.auth_token)
    with serve_in_thread(app) as running, SippPeers(tmp_path) as peers:
        world = Scene(mid_server, api, app, running.base_url, peers, proxy_port=0)
        try:
            yield world
        finally:
            peers.close()
            world.close()
            api.http.close()


# --------------------------------------------------------------------------- helpers


@dataclass
class Bridge:
    """A bridged ``<Dial>``: both SIPps and the RTP each phone sends from its SDP address."""

    number: str
    login: str
    caller: SippPeer
    callee: SippPeer
    caller_stream: RtpStream
    callee_stream: RtpStream

    @property
    def caller_sink(self) -> RtpSink:
        """What dialtone sends the caller."""
        assert self.caller.rtp is not None
        return self.caller.rtp

    @property
    def callee_sink(self) -> RtpSink:
        """What dialtone sends the callee."""
        assert self.callee.rtp is not None
        return self.callee.rtp

    def finished(self) -> tuple[SippResult, SippResult]:
        """Wait for both SIPps to pass (caller, callee), then stop both phones' RTP."""
        results = passed(self.caller), passed(self.callee)
        self.caller_stream.stop()
        self.callee_stream.stop()
        return results

    def started(self) -> float:
        """When both phones were sending (wall clock)."""
        return max(self.caller_stream.switches[0][0], self.callee_stream.switches[0][0])


def wait_traced(
    peer: SippPeer, start: str, cseq: str | None = None, *, sent: bool, timeout: float = 15.0
) -> TracedMessage:
    """Wait (polling SIPp's per-message trace, bounded) for the first message ``peer``
    sent/received whose start line begins with ``start`` (and whose CSeq is ``cseq``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = peer.messages.read_text(errors="replace") if peer.messages.exists() else ""
        for message in sip_trace(text):
            if (
                message.sent == sent
                and message.start_line.startswith(start)
                and (cseq is None or message.header("CSeq") == cseq)
            ):
                return message
        if not peer.running():
            break
        time.sleep(0.02)
    raise AssertionError(f"{peer.name}: no {start!r} {cseq}:\n{peer.result().describe()}")


def start_bridge(
    scene: Scene,
    caller_scenario: str,
    callee_scenario: str,
    *,
    action: str,
    callee_sets: dict[str, str] | None = None,
) -> Bridge:
    """A Client device running ``callee_scenario``, a caller running ``caller_scenario``
    towards a number that dials it; returns once both phones send their RTP: the callee
    from dialtone's branch INVITE on (to its offer's port), the caller from its 200 on."""
    alice = scene.api.create_client()
    number = scene.number(dial_rcml(client_noun(alice.login)), StatusCallback=f"{scene.base}/ended")
    scene.app.route("/cb", Route(204, content_type=None))
    scene.app.route("/ended", Route(204, content_type=None))
    scene.app.route("/dial-done", Route(body=action))
    callee = scene.device(alice, callee_scenario, callee_sets)
    caller = scene.call(caller_scenario, number)
    assert callee.rtp is not None and caller.rtp is not None
    offer = wait_traced(callee, "INVITE", sent=False)
    callee_stream = RtpStream(callee.rtp, offer.audio_port, CALLEE_FILL)
    answer = wait_traced(caller, "SIP/2.0 200", "1 INVITE", sent=False)
    caller_stream = RtpStream(caller.rtp, answer.audio_port, CALLER_FILL)
    return Bridge(number, alice.login, caller, callee, caller_stream, callee_stream)


def at(result: SippResult, start: str, cseq: str, *, sent: bool) -> float:
    """When the first message with that start line and CSeq was sent/received."""
    for message in sip_trace(result.messages):
        matches = message.sent == sent and message.start_line.startswith(start)
        if matches and message.header("CSeq") == cseq:
            return message.at
    raise AssertionError(f"no {start} {cseq} ({'sent' if sent else 'received'})")


def requests(result: SippResult, method: str, *, sent: bool) -> list[TracedMessage]:
    """The ``method`` requests a SIPp sent/received (retransmissions included)."""
    return [
        m
        for m in sip_trace(result.messages)
        if m.sent == sent and m.start_line.startswith(f"{method} ")
    ]


def describe(packets: list[RtpPacket]) -> str:
    """What a window held, for failure messages: (PT, payload bytes) → count."""
    seen: dict[tuple[int, str], int] = {}
    for p in packets:
        key = (p.payload_type, p.payload[:2].hex() + ("…" if len(set(p.payload)) > 1 else ""))
        seen[key] = seen.get(key, 0) + 1
    return str(seen)


def exact(packets: list[RtpPacket], pt: int, fill: int) -> list[RtpPacket]:
    """The packets that are a party's stream relayed untouched: ``pt``, all ``fill``."""
    want = bytes([fill]) * 160
    return [p for p in packets if p.payload_type == pt and p.payload == want]


def transcoded(packets: list[RtpPacket], pt: int, src_pt: int, src_fill: int) -> list[RtpPacket]:
    """The packets that are a party's ``src_pt`` stream of ``src_fill`` converted to the
    other law: payload type ``pt``, 160 equal bytes at the same level, other bytes."""
    want = level(src_pt, src_fill)
    found = []
    for p in packets:
        if p.payload_type != pt or len(p.payload) != 160 or len(set(p.payload)) != 1:
            continue
        byte = p.payload[0]
        if byte != src_fill and same_level(level(pt, byte), want):
            found.append(p)
    return found


Select = Callable[[list[RtpPacket]], list[RtpPacket]]


def relayed(pt: int, fill: int) -> Select:
    """Picks a party's stream relayed untouched."""
    return lambda packets: exact(packets, pt, fill)


def converted(pt: int, src_pt: int, src_fill: int) -> Select:
    """Picks a party's stream transcoded to ``pt``."""
    return lambda packets: transcoded(packets, pt, src_pt, src_fill)


def assert_flows(
    sink: RtpSink, window: tuple[float, float], select: Select, what: str, *, only: bool = True
) -> None:
    """In ``window`` (wall clock) ``sink`` got a 20 ms stream of what ``select`` picks (at
    least 60 % of the packets due), and with ``only`` nothing else."""
    start, end = window
    assert end - start > 0.8, f"{what}: the window is only {end - start:.2f} s"
    packets = rtp_between(sink, start, end)
    chosen = select(packets)
    due = int(0.6 * (end - start) / 0.02)
    assert len(chosen) >= due, (
        f"{what}: {len(chosen)} packets in {end - start:.2f} s (want {due}+); "
        f"the window held {describe(packets)}"
    )
    if only:
        assert len(chosen) == len(packets), f"{what}: other packets too: {describe(packets)}"


def assert_silent(sink: RtpSink, window: tuple[float, float], what: str) -> None:
    """``sink`` got no RTP at all in ``window``."""
    start, end = window
    assert end - start > 0.8, f"{what}: the window is only {end - start:.2f} s"
    packets = rtp_between(sink, start, end)
    assert packets == [], f"{what}: {len(packets)} packets: {describe(packets)}"


def assert_records(
    scene: Scene,
    bridge: Bridge,
    callee: SippResult,
    *,
    duration: tuple[int, int],
    parent_status: str,
) -> None:
    """The webhook side and the live counts: the branch's four call-progress callbacks
    (one ``completed``) and its Call record (``assert_lane``), the Dial's action once
    (``completed``, bridged), the parent's own StatusCallback once (``completed``) and its
    Call record, and
    ``/dialtone/stats.json`` back to zero calls, dialogs and media ports."""
    scene.wait_quiet({"/cb": 4, "/dial-done": 1, "/ended": 1})
    parent, sid = scene.parent_sid(), branch_sid(callee)
    assert_lane(
        scene,
        "/cb",
        sid,
        parent=parent,
        to=f"client:{bridge.login}",
        statuses=LANE,
        sip_code="200",
        duration=duration,
    )
    assert_action(
        scene,
        "/dial-done",
        number=bridge.number,
        status=parent_status,
        dial_status="completed",
        dial_sid=sid,
        dial_duration=duration,
        ring_duration=(0, 2),
        bridged=True,
    )
    (ended,) = scene.app.requests_to("/ended")
    assert signed(scene, ended), ended.url
    assert ended.params["CallSid"] == parent, ended.params
    assert ended.params["CallStatus"] == "completed", ended.params
    url = f"{scene.server.api}/Calls/{parent}.json"

    def parent_stored() -> bool:
        row = scene.api.http.get(url).json()
        return row.get("status") == "completed" and row.get("end_time") is not None

    wait_for(parent_stored, timeout=10)
    row = scene.api.http.get(url).json()
    assert str(row["duration"]) == ended.params["CallDuration"], row  # CB-6
    scene.wait_idle()


def assert_answer(message: TracedMessage, port: int, formats: list[int], dirs: list[str]) -> None:
    """A 200 answer of dialtone's: its port, the payload types, the direction attribute
    (``[]`` accepted for ``sendrecv``, the default), and a Contact."""
    assert message.start_line == "SIP/2.0 200 OK", message.text
    assert message.header("Contact"), message.text  # RFC 3261 §12.1.1, §14.2
    assert message.audio_port == port, message.text
    assert sdp_formats(message) == formats, message.text
    if dirs == ["sendrecv"]:
        assert directions(message) in ([], ["sendrecv"]), message.text
    else:
        assert directions(message) == dirs, message.text


# =========================================================================== 1. the caller holds


def test_caller_hold_is_answered_locally_and_stops_the_relay_towards_the_caller(
    scene: Scene,
) -> None:
    """SIP-11 on the inbound leg of a bridge: the caller's re-INVITE ``a=sendonly`` gets
    200 from dialtone itself, ``a=recvonly`` (mirrored, RFC 3264 §8.4), the same port and
    PCMU; the callee gets no re-INVITE (its device takes exactly one INVITE, the branch's,
    and fails on anything unexpected before dialtone's BYE).  While held dialtone sends the
    caller nothing (a ``recvonly`` answerer must not send, RFC 3264 §6.1), while the
    caller's own audio (its music on hold) still reaches the callee (SIP-12: relayed).
    ``sendrecv`` resumes the callee's audio to the caller.  Controls: the callee's audio
    reaches the caller before the hold and after the resume, untouched (PCMU, its bytes)."""
    bridge = start_bridge(
        scene,
        "dial_mid_uac_hold",
        "dial_uas_answer",
        action="<Response/>",
        callee_sets={"ring_ms": "200"},
    )
    caller, callee = bridge.finished()
    first, hold, resume = (final(caller, f"{n} INVITE") for n in (1, 2, 3))
    port = first.audio_port
    assert_answer(first, port, [PCMU, 101], ["sendrecv"])
    assert_answer(hold, port, [PCMU, 101], ["recvonly"])
    assert_answer(resume, port, [PCMU, 101], ["sendrecv"])
    session, version = sdp_origin(first)  # RFC 3264 §8: one up per changed answer
    assert [sdp_origin(m) for m in (hold, resume)] == [
        (session, version + 1),
        (session, version + 2),
    ]
    assert final(caller, "4 BYE").start_line == "SIP/2.0 200 OK"
    # Not forwarded: the callee's only INVITE is the branch's (CSeq of dialtone's space).
    assert len({m.header("CSeq") for m in requests(callee, "INVITE", sent=False)}) == 1
    assert requests(callee, "INVITE", sent=True) == []
    ack = at(caller, "ACK", "1 ACK", sent=True)
    bridged = (max(ack, bridge.started()) + 0.2, at(caller, "INVITE", "2 INVITE", sent=True))
    held = (hold.at + MARGIN, at(caller, "INVITE", "3 INVITE", sent=True))
    resumed = (resume.at + MARGIN, at(caller, "BYE", "4 BYE", sent=True))
    to_caller, to_callee = bridge.caller_sink, bridge.callee_sink
    callee_audio, caller_audio = relayed(PCMU, CALLEE_FILL), relayed(PCMU, CALLER_FILL)
    assert_flows(to_caller, bridged, callee_audio, "callee → caller, bridged")
    assert_silent(to_caller, held, "dialtone → the held caller")
    assert_flows(to_caller, resumed, callee_audio, "callee → caller, resumed")
    assert_flows(to_callee, bridged, caller_audio, "caller → callee, bridged")
    assert_flows(to_callee, held, caller_audio, "caller (sendonly) → callee, held")
    assert_flows(to_callee, resumed, caller_audio, "caller → callee, resumed")
    assert_records(scene, bridge, callee, duration=(4, 7), parent_status="completed")


# =========================================================================== 2. the callee holds


def test_callee_hold_in_the_branch_dialog_is_answered_locally_and_not_forwarded(
    scene: Scene,
) -> None:
    """SIP-11 on the branch leg: the called device re-INVITEs dialtone in the branch
    dialog (to dialtone's Contact, its own CSeq space): ``sendonly`` → 200 ``recvonly`` at
    dialtone's branch port (its offer's), ``sendrecv`` → 200 sendrecv.  The caller gets
    nothing (no INVITE at all after its own; its scenario fails on anything unexpected
    before dialtone's BYE).  While held the callee gets no RTP; its own audio still
    reaches the caller.  Controls: the caller's audio reaches the callee before and after
    the hold.  The callee hangs up; the action's ``<Hangup/>`` ends the caller."""
    bridge = start_bridge(
        scene, "dial_uac_until_bye", "dial_mid_uas_hold", action="<Response><Hangup/></Response>"
    )
    caller, callee = bridge.finished()
    offer = next(m for m in requests(callee, "INVITE", sent=False))
    hold, resume = final(callee, "101 INVITE"), final(callee, "102 INVITE")
    assert_answer(hold, offer.audio_port, [PCMU, 101], ["recvonly"])
    assert_answer(resume, offer.audio_port, [PCMU, 101], ["sendrecv"])
    session, version = sdp_origin(offer)  # dialtone's offer is its first SDP in the dialog
    assert [sdp_origin(m) for m in (hold, resume)] == [
        (session, version + 1),
        (session, version + 2),
    ]
    assert final(callee, "103 BYE").start_line == "SIP/2.0 200 OK"
    # Not forwarded: the caller sent its INVITE and received none.
    assert len({m.header("CSeq") for m in requests(caller, "INVITE", sent=True)}) == 1
    assert requests(caller, "INVITE", sent=False) == []
    ack = next(m.at for m in requests(callee, "ACK", sent=False))
    bridged = (max(ack, bridge.started()) + 0.2, at(callee, "INVITE", "101 INVITE", sent=True))
    held = (hold.at + MARGIN, at(callee, "INVITE", "102 INVITE", sent=True))
    resumed = (resume.at + MARGIN, at(callee, "BYE", "103 BYE", sent=True))
    to_caller, to_callee = bridge.caller_sink, bridge.callee_sink
    callee_audio, caller_audio = relayed(PCMU, CALLEE_FILL), relayed(PCMU, CALLER_FILL)
    assert_flows(to_callee, bridged, caller_audio, "caller → callee, bridged")
    assert_silent(to_callee, held, "dialtone → the held callee")
    assert_flows(to_callee, resumed, caller_audio, "caller → callee, resumed")
    assert_flows(to_caller, bridged, callee_audio, "callee → caller, bridged")
    assert_flows(to_caller, held, callee_audio, "callee (sendonly) → caller, held")
    assert_flows(to_caller, resumed, callee_audio, "callee → caller, resumed")
    assert_records(scene, bridge, callee, duration=(4, 7), parent_status="in-progress")


# =========================================================================== 3. codec change


def test_caller_moves_to_pcma_and_the_bridge_transcodes_both_ways(scene: Scene) -> None:
    """SIP-12: the caller re-offers PCMA only; dialtone answers PCMA (payload types
    ``8 101``, same port) without telling the callee (one INVITE there), and from then on
    the caller receives PT 8 and the callee PT 0: the other party's audio transcoded (the
    same G.711 level in the other law, checked with an independent G.711 reference; other
    bytes than those sent).  Control: before the change both get the other's PCMU bytes
    untouched, so the windows do see each stream."""
    bridge = start_bridge(
        scene,
        "dial_mid_uac_pcma",
        "dial_uas_answer",
        action="<Response/>",
        callee_sets={"ring_ms": "200"},
    )
    moved_at = wait_traced(bridge.caller, "SIP/2.0 200", "2 INVITE", sent=False).at
    bridge.caller_stream.switch(CALLER_ALAW, PCMA)  # the phone now speaks what it offered
    switched = bridge.caller_stream.switches[-1][0]
    caller, callee = bridge.finished()
    first, moved = final(caller, "1 INVITE"), final(caller, "2 INVITE")
    assert moved.at == moved_at
    assert_answer(first, first.audio_port, [PCMU, 101], ["sendrecv"])
    assert_answer(moved, first.audio_port, [PCMA, 101], ["sendrecv"])
    session, version = sdp_origin(first)
    assert sdp_origin(moved) == (session, version + 1), moved.text
    assert final(caller, "3 BYE").start_line == "SIP/2.0 200 OK"
    assert len({m.header("CSeq") for m in requests(callee, "INVITE", sent=False)}) == 1
    ack = at(caller, "ACK", "1 ACK", sent=True)
    bridged = (max(ack, bridge.started()) + 0.2, at(caller, "INVITE", "2 INVITE", sent=True))
    bye = at(caller, "BYE", "3 BYE", sent=True)
    to_caller, to_callee = bridge.caller_sink, bridge.callee_sink
    assert_flows(to_caller, bridged, relayed(PCMU, CALLEE_FILL), "callee → caller, PCMU")
    assert_flows(to_callee, bridged, relayed(PCMU, CALLER_FILL), "caller → callee, PCMU")
    assert_flows(
        to_caller,
        (moved.at + MARGIN, bye),
        converted(PCMA, PCMU, CALLEE_FILL),
        "callee's PCMU → the PCMA caller",
    )
    assert_flows(
        to_callee,
        (switched + MARGIN, bye),
        converted(PCMU, PCMA, CALLER_ALAW),
        "caller's PCMA → the PCMU callee",
    )
    assert_records(scene, bridge, callee, duration=(3, 5), parent_status="completed")


# =========================================================================== 4. 488 on the branch


def test_branch_reoffer_without_common_codec_gets_488_and_the_bridge_goes_on(
    scene: Scene,
) -> None:
    """SIP-12 / RFC 3261 §14.2 on the branch leg: the callee's re-INVITE with G.729 only
    gets 488 (ACKed in its transaction) and changes nothing: both streams go on, PCMU,
    untouched.  Then a PCMA-only re-offer in the same dialog is answered PCMA (``8 101``,
    dialtone's branch port) and the bridge transcodes: the callee receives PT 8, the
    caller still PT 0.  The caller never hears of either (no INVITE received).  Control:
    the bridged window before the 488 shows the same streams as after it."""
    bridge = start_bridge(
        scene, "dial_uac_until_bye", "dial_mid_uas_488", action="<Response><Hangup/></Response>"
    )
    moved_at = wait_traced(bridge.callee, "SIP/2.0 200", "102 INVITE", sent=False).at
    bridge.callee_stream.switch(CALLEE_ALAW, PCMA)
    switched = bridge.callee_stream.switches[-1][0]
    caller, callee = bridge.finished()
    offer = next(m for m in requests(callee, "INVITE", sent=False))
    refused, moved = final(callee, "101 INVITE"), final(callee, "102 INVITE")
    assert refused.start_line.startswith("SIP/2.0 488"), refused.text
    assert moved.at == moved_at
    assert_answer(moved, offer.audio_port, [PCMA, 101], ["sendrecv"])
    session, version = sdp_origin(offer)  # the 488 changed nothing: one version up only
    assert sdp_origin(moved) == (session, version + 1), moved.text
    assert final(callee, "103 BYE").start_line == "SIP/2.0 200 OK"
    assert requests(caller, "INVITE", sent=False) == []
    ack = next(m.at for m in requests(callee, "ACK", sent=False))
    bridged = (max(ack, bridge.started()) + 0.2, at(callee, "INVITE", "101 INVITE", sent=True))
    after_488 = (refused.at, at(callee, "INVITE", "102 INVITE", sent=True))
    bye = at(callee, "BYE", "103 BYE", sent=True)
    to_caller, to_callee = bridge.caller_sink, bridge.callee_sink
    callee_audio, caller_audio = relayed(PCMU, CALLEE_FILL), relayed(PCMU, CALLER_FILL)
    assert_flows(to_callee, bridged, caller_audio, "caller → callee, before the 488")
    assert_flows(to_caller, bridged, callee_audio, "callee → caller, before the 488")
    assert_flows(to_callee, after_488, caller_audio, "caller → callee, after the 488")
    assert_flows(to_caller, after_488, callee_audio, "callee → caller, after the 488")
    assert_flows(
        to_callee,
        (moved.at + MARGIN, bye),
        converted(PCMA, PCMU, CALLER_FILL),
        "caller's PCMU → the PCMA callee",
    )
    assert_flows(
        to_caller,
        (switched + MARGIN, bye),
        converted(PCMU, PCMA, CALLEE_ALAW),
        "callee's PCMA → the PCMU caller",
    )
    assert_records(scene, bridge, callee, duration=(4, 7), parent_status="in-progress")


# =========================================================================== 5. 2xx retransmission


LATE_ACK = [
    # (side, caller scenario, callee scenario, the re-INVITE's CSeq, action, parent status)
    pytest.param(
        "caller",
        "dial_mid_uac_late_ack",
        "dial_uas_answer",
        "2",
        "<Response/>",
        "completed",
        id="caller",
    ),
    pytest.param(
        "callee",
        "dial_uac_until_bye",
        "dial_mid_uas_late_ack",
        "101",
        "<Response><Hangup/></Response>",
        "in-progress",
        id="callee",
    ),
]


@pytest.mark.parametrize(
    ("side", "caller_scenario", "callee_scenario", "seq", "action", "parent_status"),
    LATE_ACK,
)
def test_the_200_to_a_reinvite_is_retransmitted_until_its_ack(
    scene: Scene,
    side: str,
    caller_scenario: str,
    callee_scenario: str,
    seq: str,
    action: str,
    parent_status: str,
) -> None:
    """SIP-11's local answer is a UAS 2xx like any other: over UDP it is retransmitted at
    T1, 2·T1, … until the ACK (RFC 3261 §13.3.1.4; ``Dialog.handle_request`` promises it),
    whichever leg of the bridge sent the re-INVITE.  The phone holds its ACK back for 3 s:
    at least two retransmissions (at +0.5 s and +1.5 s) must arrive, identical to the first
    200, none after the ACK has had time to land.  The ``caller`` case is the control that
    the phone and the trace see retransmissions at all."""
    bridge = start_bridge(
        scene,
        caller_scenario,
        callee_scenario,
        action=action,
        callee_sets={"ring_ms": "200"} if side == "caller" else None,
    )
    caller, callee = bridge.finished()
    phone = caller if side == "caller" else callee
    oks = [
        m
        for m in sip_trace(phone.messages)
        if not m.sent
        and m.start_line.startswith("SIP/2.0 200")
        and m.header("CSeq") == f"{seq} INVITE"
    ]
    ack = at(phone, "ACK", f"{seq} ACK", sent=True)
    assert oks, phone.describe()
    assert len(oks) >= 3, (
        f"{len(oks) - 1} retransmissions of the 200 in 3 s:\n{phone.messages[-4000:]}"
    )
    assert {m.text for m in oks} == {oks[0].text}, "a retransmission differs from the 200"
    assert all(m.at < ack + 0.3 for m in oks), "200s went on after the ACK"
    assert_records(scene, bridge, callee, duration=(4, 7), parent_status=parent_status)
