"""Inbound calls from SIPp: routing, RCML, speech on the wire, BYE from dialtone (issue 5)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialtone.media.rtp import parse_rtp
from dialtone.testing.webhook_app import Route, WebhookApp, serve_in_thread
from tests.interop.conftest import Api, wait_for
from tests.support.ports import free_port
from tests.support.server import ServerProcess
from tests.support.sipp import SippResult, run_scenario

pytestmark = pytest.mark.interop


class RtpSink:
    """A UDP socket standing in for the caller's media port: counts dialtone's RTP."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.packets: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            self.packets.append(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def dial_number(
    server: ServerProcess, tmp_path: Path, scenario: str, service: str
) -> tuple[SippResult, RtpSink]:
    """Run a caller scenario against ``service`` with an RTP sink as its media port."""
    sink = RtpSink()
    try:
        result = run_scenario(
            scenario, server.sip_port, tmp_path, service=service, keys={"rtp_port": str(sink.port)}
        )
    finally:
        time.sleep(0.2)  # the last packets of the call
        sink.close()
    return result, sink


@pytest.fixture
def webhook(sip_server: ServerProcess) -> Iterator[tuple[WebhookApp, str]]:
    app = WebhookApp(auth_token=sip_server.auth_token)
    with serve_in_thread(app) as running:
        yield app, running.base_url


def create_number(rest: Api, voice_url: str, **extra: str) -> str:
    number = "+1555" + str(free_port()).zfill(7)[-7:]
    response = rest.http.post(
        f"{rest.server.api}/IncomingPhoneNumbers.json",
        data={"PhoneNumber": number, "VoiceUrl": voice_url, **extra},
    )
    assert response.status_code == 201, response.text
    return number


def test_say_then_hangup_plays_speech_and_dialtone_sends_bye(
    sip_server: ServerProcess,
    rest: Api,
    webhook: tuple[WebhookApp, str],
    tmp_path: Path,
    peer_binaries: None,
) -> None:
    app, base = webhook
    app.route("/voice", Route(body="<Response><Say>Hello from dialtone</Say><Hangup/></Response>"))
    app.route("/ended", Route(204, content_type=None))
    number = create_number(rest, f"{base}/voice", StatusCallback=f"{base}/ended")
    result, sink = dial_number(sip_server, tmp_path, "uac_until_bye", number)
    assert result.returncode == 0, result.describe() + sip_server.log()[-3000:]
    assert "SIP/2.0 180 Ringing" in result.messages
    assert "BYE sip:" in result.messages
    packets = [parse_rtp(p) for p in sink.packets]
    assert len(packets) > 25, f"only {len(packets)} RTP packets"  # > 0.5 s of speech
    assert {p.payload_type for p in packets} == {0}  # PCMU, the first offered
    assert any(p.payload != b"\xff" * 160 for p in packets), "only silence arrived"
    # The voice request: signed, with the REQ-1 parameters.
    (voice,) = app.requests_to("/voice")
    assert voice.signature_valid is True
    params = voice.params
    assert params["To"] == number and params["From"] == "+15557654321"
    assert params["Direction"] == "inbound" and params["CallStatus"] == "ringing"
    assert params["CallerName"] == "SIPp Caller"
    assert params["SipHeader_X-Test-Header"] == "hello"
    call_sid = params["CallSid"]

    def finished() -> bool:
        call = rest.http.get(f"{rest.server.api}/Calls/{call_sid}.json").json()
        return call.get("status") == "completed" and call.get("duration") is not None

    wait_for(finished, timeout=10)
    call = rest.http.get(f"{rest.server.api}/Calls/{call_sid}.json").json()
    assert call["direction"] == "inbound" and call["to"] == number
    wait_for(lambda: len(app.requests_to("/ended")) == 1, timeout=10)
    ended = app.requests_to("/ended")[0].params
    assert ended["CallStatus"] == "completed" and ended["SequenceNumber"] == "0"
    assert ended["CallbackSource"] == "call-progress-events"
    wait_for(lambda: rest.stats()["calls"] == 0 and rest.stats()["media_ports"] == 0)


def test_unknown_number_is_404(
    sip_server: ServerProcess, tmp_path: Path, peer_binaries: None
) -> None:
    result, _ = dial_number(sip_server, tmp_path, "uac_until_bye", "+19999999999")
    assert result.returncode != 0
    assert "SIP/2.0 404" in result.messages


def test_broken_document_gets_500_with_warning_and_a_notification(
    sip_server: ServerProcess,
    rest: Api,
    webhook: tuple[WebhookApp, str],
    tmp_path: Path,
    peer_binaries: None,
) -> None:
    app, base = webhook
    app.route("/bad", Route(body="<Response><Say>hi</Say><Dail>+1555</Dail></Response>"))
    number = create_number(rest, f"{base}/bad")
    result, _ = dial_number(sip_server, tmp_path, "uac_until_bye", number)
    assert result.returncode != 0
    assert "SIP/2.0 500" in result.messages and "12200" in result.messages
    call_sid = app.requests_to("/bad")[0].params["CallSid"]

    def noted() -> bool:
        notes = rest.http.get(f"{rest.server.api}/Calls/{call_sid}/Notifications.json").json()
        return any(n["error_code"] == "12200" for n in notes.get("notifications", []))

    wait_for(noted, timeout=10)


def test_caller_cancel_while_ringing_gets_487_and_the_call_is_canceled(
    sip_server: ServerProcess,
    rest: Api,
    webhook: tuple[WebhookApp, str],
    tmp_path: Path,
    peer_binaries: None,
) -> None:
    app, base = webhook
    app.route("/wait", Route(body='<Response><Pause length="20"/><Say>late</Say></Response>'))
    app.route("/ended", Route(204, content_type=None))
    number = create_number(rest, f"{base}/wait", StatusCallback=f"{base}/ended")
    result, _ = dial_number(sip_server, tmp_path, "uac_cancel", number)
    assert result.returncode == 0, result.describe()
    call_sid = app.requests_to("/wait")[0].params["CallSid"]
    wait_for(lambda: len(app.requests_to("/ended")) == 1, timeout=10)
    ended = app.requests_to("/ended")[0].params
    assert ended["CallStatus"] == "canceled" and ended["CallDuration"] == "0"
    assert ended["SipResponseCode"] == "487"
    call = rest.http.get(f"{rest.server.api}/Calls/{call_sid}.json").json()
    assert call["status"] == "canceled" and call["sip_response_code"] == 487
    wait_for(lambda: rest.stats()["calls"] == 0 and rest.stats()["sip_dialogs"] == 0)


def test_caller_bye_during_speech_ends_the_call_and_frees_everything(
    sip_server: ServerProcess,
    rest: Api,
    webhook: tuple[WebhookApp, str],
    tmp_path: Path,
    peer_binaries: None,
) -> None:
    app, base = webhook
    app.route("/long", Route(body='<Response><Say loop="0">This goes on and on.</Say></Response>'))
    number = create_number(rest, f"{base}/long")
    result, _ = dial_number(sip_server, tmp_path, "uac_bye", number)
    assert result.returncode == 0, result.describe()
    call_sid = app.requests_to("/long")[0].params["CallSid"]

    def completed() -> bool:
        call = rest.http.get(f"{rest.server.api}/Calls/{call_sid}.json").json()
        return call["status"] == "completed" and call["duration"] in ("1", "2")

    wait_for(completed, timeout=10)
    stats = rest.stats()
    wait_for(lambda: rest.stats()["calls"] == 0 and rest.stats()["media_ports"] == 0)
    assert stats["sip_dialogs"] == 0
