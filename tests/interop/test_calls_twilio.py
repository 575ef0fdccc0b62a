"""Outbound-api calls through the official twilio library, answered by SIPp devices (issue 7).

The library is pointed at a real ``dialtone serve`` (``client.api.base_url``); every Call is
placed on a Client whose device is SIPp in server mode bound to the registered contact's
port (REGISTER sent by our own UDP client, which then frees the port for SIPp).  Every
webhook dialtone sends is checked with twilio-python's ``RequestValidator`` over the exact
URL dialtone requested (API-8, API-20..API-25, CB-1..CB-8, REQ-1..REQ-4, HOOK-10).
"""

from __future__ import annotations

import email.utils
import re
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client as TwilioClient

from dialtone.media.rtp import parse_rtp
from dialtone.testing.webhook_app import RecordedRequest, Route, WebhookApp, serve_in_thread
from tests.interop.conftest import Api, wait_for
from tests.support.ports import free_port
from tests.support.server import ServerProcess
from tests.support.sipclient import UdpRegistrar
from tests.support.sipp import SCENARIOS

pytestmark = pytest.mark.interop

RFC2822_UTC = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} \+0000$"
)
# Every key twilio-python's CallInstance reads from a Call payload (twilio 9.x).
LIBRARY_CALL_FIELDS = (
    "sid", "date_created", "date_updated", "parent_call_sid", "account_sid", "to",
    "to_formatted", "from", "from_formatted", "phone_number_sid", "status", "start_time",
    "end_time", "duration", "price", "price_unit", "direction", "answered_by", "api_version",
    "forwarded_from", "group_sid", "caller_name", "queue_time", "stir_verstat", "trunk_sid",
    "uri", "subresource_uris",
)  # fmt: skip
HOLD = '<Response><Pause length="5"/></Response>'
LONG_HOLD = '<Response><Pause length="30"/></Response>'
FROM = "+15550001111"
SILENCE = b"\xff" * 160  # PCMU silence, one 20 ms packet


# --- peers ----------------------------------------------------------------------------------


class RtpSink:
    """A UDP socket standing in for a device's media port: keeps dialtone's RTP, timestamped."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.packets: list[tuple[float, bytes]] = []  # (time.time(), datagram)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtp-sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            self.packets.append((time.time(), data))

    def speech_between(self, start: float, end: float) -> int:
        """How many non-silent PCMU packets arrived between two ``time.time()`` readings."""
        count = 0
        for arrived, data in list(self.packets):
            if start <= arrived <= end:
                packet = parse_rtp(data)
                if packet.payload_type == 0 and packet.payload != SILENCE:
                    count += 1
        return count

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def register_device(server: ServerProcess, login: str, password: str) -> UdpRegistrar:
    """REGISTER ``login`` from a fresh UDP port (its socket stays open: the caller decides)."""
    registrar = UdpRegistrar(("127.0.0.1", server.sip_port), login, password)
    answer = registrar.register()
    assert answer.status == 200, f"REGISTER {login}: {answer.status}"
    return registrar


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@dataclass
class UasResult:
    """What a background SIPp UAS did: exit code (None when it had to be killed) and traces."""

    returncode: int | None
    errors: str
    messages: str
    logs: str

    def describe(self) -> str:
        return (
            f"sipp exit {self.returncode}\n--- errors\n{self.errors[-3000:]}\n"
            f"--- logs\n{self.logs[-2000:]}\n--- messages\n{self.messages[-6000:]}"
        )

    def invite_sids(self) -> list[str]:
        """The X-Dialtone-CallSid of every INVITE the scenario accepted (its log lines)."""
        return re.findall(r"invite call_sid=(CA[0-9a-f]{32})", self.logs)

    def received_at(self, method: str) -> list[float]:
        """``time.time()`` of every ``method`` request SIPp received (its message trace)."""
        stamps: list[float] = []
        blocks = re.split(
            r"^-{20,} (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+)\s*$", self.messages, flags=re.M
        )
        for stamp, block in zip(blocks[1::2], blocks[2::2], strict=True):
            lines = [line for line in block.strip().splitlines() if line.strip()]
            if len(lines) >= 2 and "received" in lines[0] and lines[1].startswith(method + " "):
                local = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")
                stamps.append(local.timestamp())  # SIPp prints local time
        return stamps


@dataclass
class Uas:
    """One SIPp UAS scenario on a device port, running in the background (stopped by PID)."""

    scenario: str
    port: int
    workdir: Path
    account_sid: str
    rtp_port: int
    ring_ms: int | None = None
    calls: int = 1
    timeout: float = 60.0
    name: str = field(default_factory=lambda: "uas-" + secrets.token_hex(3))
    process: subprocess.Popen[bytes] | None = None

    def path(self, kind: str) -> Path:
        return self.workdir / f"{self.name}-{kind}.log"

    def start(self) -> Uas:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            "sipp",
            "-sf",
            str(SCENARIOS / f"{self.scenario}.xml"),
            "-t",
            "u1",
            "-i",
            "127.0.0.1",
            "-ci",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-mp",
            str(free_port(socket.SOCK_DGRAM)),
            "-m",
            str(self.calls),
            "-nostdin",
            "-key",
            "account_sid",
            self.account_sid,
            "-key",
            "rtp_port",
            str(self.rtp_port),
            "-timeout",
            f"{int(self.timeout)}s",
            "-timeout_error",
            "-trace_err",
            "-error_file",
            str(self.path("errors")),
            "-trace_msg",
            "-message_file",
            str(self.path("messages")),
            "-trace_logs",
            "-log_file",
            str(self.path("logs")),
        ]
        if self.ring_ms is not None:
            args += ["-set", "ring_ms", str(self.ring_ms)]
        self.process = subprocess.Popen(
            args, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(lambda: _port_taken(self.port) or self.process.poll() is not None, timeout=5)
        assert self.process.poll() is None, f"sipp exited at once: {self.read('errors')}"
        return self

    def read(self, kind: str) -> str:
        path = self.path(kind)
        return path.read_text(errors="replace") if path.exists() else ""

    def snapshot(self) -> UasResult:
        """The traces so far (SIPp still running)."""
        code = None if self.process is None else self.process.poll()
        return UasResult(code, self.read("errors"), self.read("messages"), self.read("logs"))

    def finish(self, within: float = 20.0) -> UasResult:
        """Wait for SIPp to end by itself; kill it (by PID) after ``within`` s: code None."""
        assert self.process is not None
        code: int | None
        try:
            code = self.process.wait(within)
        except subprocess.TimeoutExpired:
            self.stop()
            code = None  # a killed SIPp exits 0: that is no verdict
        return UasResult(code, self.read("errors"), self.read("messages"), self.read("logs"))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@dataclass
class Device:
    """A registered Client device, free for a SIPp UAS to bind (the registrar socket closed)."""

    login: str
    port: int


class Peers:
    """Devices and UASes of one test; every SIPp and sink is stopped at the end."""

    def __init__(self, server: ServerProcess, rest: Api, workdir: Path) -> None:
        self.server = server
        self.rest = rest
        self.workdir = workdir
        self.uases: list[Uas] = []
        self.sinks: list[RtpSink] = []

    def client(self, devices: int = 1) -> tuple[str, list[Device]]:
        """A new Client with ``devices`` registered devices; returns its login and devices."""
        account = self.rest.create_client("bob" + secrets.token_hex(3), "s3cret")
        found = []
        for _ in range(devices):
            registrar = register_device(self.server, account.login, account.password)
            found.append(Device(account.login, registrar.port))
            registrar.close()
        return account.login, found

    def sink(self) -> RtpSink:
        sink = RtpSink()
        self.sinks.append(sink)
        return sink

    def uas(
        self,
        scenario: str,
        device: Device,
        *,
        ring_ms: int | None = None,
        sink: RtpSink | None = None,
    ) -> Uas:
        rtp = sink.port if sink is not None else self.sink().port
        uas = Uas(scenario, device.port, self.workdir, self.server.account_sid, rtp, ring_ms)
        self.uases.append(uas)
        return uas.start()

    def close(self) -> None:
        for uas in self.uases:
            uas.stop()
        for sink in self.sinks:
            sink.close()


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def peers(
    sip_server: ServerProcess, rest: Api, tmp_path: Path, peer_binaries: None
) -> Iterator[Peers]:
    found = Peers(sip_server, rest, tmp_path)
    try:
        yield found
    finally:
        found.close()


@pytest.fixture
def webhook(sip_server: ServerProcess) -> Iterator[tuple[WebhookApp, str]]:
    app = WebhookApp(auth_token=sip_server.auth_token)
    with serve_in_thread(app) as running:
        yield app, running.base_url


@pytest.fixture
def twilio(sip_server: ServerProcess) -> TwilioClient:
    client = TwilioClient(sip_server.account_sid, sip_server.auth_token)
    client.api.base_url = sip_server.base_url  # the library, pointed at dialtone
    return client


# --- checks ---------------------------------------------------------------------------------


def raw_call(rest: Api, sid: str) -> dict[str, Any]:
    response = rest.http.get(f"{rest.server.api}/Calls/{sid}.json")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_status(rest: Api, sid: str, *statuses: str, timeout: float = 15.0) -> dict[str, Any]:
    """Poll the Call until its status is one of ``statuses``; return it."""
    seen: list[str] = []

    def reached() -> bool:
        status = raw_call(rest, sid)["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        return status in statuses

    try:
        wait_for(reached, timeout=timeout, interval=0.05)
    except AssertionError:
        raise AssertionError(f"Call {sid} went {seen}, never {statuses}") from None
    return raw_call(rest, sid)


def assert_idle(rest: Api, within: float = 10.0) -> None:
    """Nothing is left behind (API-60): no live call, SIP dialog or media port."""
    keys = ("calls", "sip_dialogs", "media_ports")
    try:
        wait_for(lambda: all(rest.stats()[k] == 0 for k in keys), timeout=within)
    except AssertionError:
        raise AssertionError(f"left behind after {within} s: {rest.stats()}") from None


def assert_signed(token: str, request: RecordedRequest, expected_url: str) -> None:
    """HOOK-10, checked here with twilio's RequestValidator over the URL dialtone requested."""
    signature = request.header("X-Twilio-Signature")
    assert signature, f"{request.method} {request.url}: no X-Twilio-Signature"
    if request.method == "POST":
        assert request.url == expected_url, (request.url, expected_url)
        params: dict[str, str] = dict(request.form)
    else:
        assert request.url.startswith(expected_url), (request.url, expected_url)
        params = {}
    assert RequestValidator(token).validate(request.url, params, signature), (
        f"RequestValidator refused {request.method} {request.url} {params}"
    )


def assert_rfc2822_utc(value: str, *, near: float) -> None:
    assert RFC2822_UTC.match(value), value
    when = email.utils.parsedate_to_datetime(value)
    assert when.tzinfo is not None and when.utcoffset() is not None
    assert abs(when.timestamp() - near) < 120, (value, near)


def callbacks(
    app: WebhookApp, path: str, count: int, within: float = 15.0
) -> list[RecordedRequest]:
    found = app.wait_for_sync(count, path=path, within=within)
    time.sleep(0.3)  # nothing more may follow (CB-8)
    found = app.requests_to(path)
    assert len(found) == count, [r.params.get("CallStatus") for r in found]
    return found


def check_progress(
    server: ServerProcess,
    found: list[RecordedRequest],
    url: str,
    call_sid: str,
    statuses: list[str],
    *,
    api_version: str = "2010-04-01",
) -> dict[str, str]:
    """The callbacks of one API call (CB-3..CB-7); returns the ``completed`` one's params."""
    assert [r.params["CallStatus"] for r in found] == statuses
    assert [r.params["SequenceNumber"] for r in found] == [str(i) for i in range(len(statuses))]
    now = time.time()
    for request in found:
        params = request.params
        assert_signed(server.auth_token, request, url)
        assert params["CallSid"] == call_sid and params["AccountSid"] == server.account_sid
        assert params["Direction"] == "outbound-api" and "ParentCallSid" not in params
        assert params["ApiVersion"] == api_version
        assert params["CallbackSource"] == "call-progress-events"
        assert params["Caller"] == params["From"] and params["Called"] == params["To"]
        assert all(value != "" for value in params.values()), params  # REQ-2
        assert_rfc2822_utc(params["Timestamp"], near=now)
        if params["CallStatus"] in ("initiated", "ringing", "in-progress"):
            assert "CallDuration" not in params and "SipResponseCode" not in params, params
    stamps = [email.utils.parsedate_to_datetime(r.params["Timestamp"]) for r in found]
    assert stamps == sorted(stamps)
    return found[-1].params


# --- the main path --------------------------------------------------------------------------


def test_create_fetch_list_redirect_through_the_library(
    sip_server: ServerProcess,
    rest: Api,
    peers: Peers,
    webhook: tuple[WebhookApp, str],
    twilio: TwilioClient,
) -> None:
    app, base = webhook
    app.route("/answer", Route(body=HOLD))
    app.route("/cb", Route(204, content_type=None))
    login, (device,) = peers.client()
    sink = peers.sink()
    uas = peers.uas("api_uas_until_bye", device, sink=sink)
    cb_url = f"{base}/cb?leg=api"
    call = twilio.calls.create(
        to=f"client:{login}",
        from_=FROM,
        url=f"{base}/answer",
        status_callback=cb_url,
        status_callback_event=["initiated ringing", "answered", "completed"],
    )
    # API-21: 201 with the Call as created.
    assert re.fullmatch(r"CA[0-9a-f]{32}", call.sid)
    assert call.status == "queued" and call.direction == "outbound-api"
    assert call.to == f"client:{login}" and call._from == FROM
    assert call.account_sid == sip_server.account_sid and call.api_version == "2010-04-01"
    assert call.parent_call_sid is None and call.duration is None
    assert isinstance(call.date_created, datetime) and call.date_created.tzinfo is not None

    # The RCML request: answered, signed, REQ-1 parameters (REQ-3: in-progress).
    (voice,) = app.wait_for_sync(1, path="/answer", within=15)
    assert_signed(sip_server.auth_token, voice, f"{base}/answer")
    params = voice.params
    assert params["CallSid"] == call.sid and params["CallStatus"] == "in-progress"
    assert params["Direction"] == "outbound-api" and params["From"] == FROM
    assert params["To"] == f"client:{login}" and params["ApiVersion"] == "2010-04-01"
    assert "ParentCallSid" not in params

    # Fetch: in progress, every field the library reads is there and parses.
    wait_status(rest, call.sid, "in-progress")
    fetched = twilio.calls(call.sid).fetch()
    assert fetched.status == "in-progress" and fetched.sid == call.sid
    assert isinstance(fetched.start_time, datetime) and fetched.end_time is None
    assert fetched.duration is None and fetched.answered_by is None
    raw = raw_call(rest, call.sid)
    missing = [name for name in LIBRARY_CALL_FIELDS if name not in raw]
    assert not missing, f"fields twilio-python reads but the Call lacks: {missing}"
    assert raw["uri"] == f"/2010-04-01/Accounts/{sip_server.account_sid}/Calls/{call.sid}.json"
    assert RFC2822_UTC.match(raw["date_created"]) and RFC2822_UTC.match(raw["start_time"])

    # List, filtered by To and Status (API-22).
    live = twilio.calls.list(to=f"client:{login}", status="in-progress")
    assert [c.sid for c in live] == [call.sid]
    assert twilio.calls.list(to=f"client:{login}", status="completed") == []
    assert call.sid in [c.sid for c in twilio.calls.list(from_=FROM, status="in-progress")]

    # Redirect with inline TwiML (API-25): the Pause stops, "bye" is spoken, then BYE.
    redirected_at = time.time()
    updated = twilio.calls(call.sid).update(twiml="<Response><Say>bye</Say><Hangup/></Response>")
    assert updated.sid == call.sid and updated.status == "in-progress"
    result = uas.finish(within=20)
    assert result.returncode == 0, result.describe() + sip_server.log()[-3000:]
    assert result.invite_sids() == [call.sid]
    (bye_at,) = result.received_at("BYE")
    assert bye_at > redirected_at
    assert bye_at - redirected_at < 4.5, "BYE came at the end of the Pause, not after the Say"
    speech = sink.speech_between(redirected_at, bye_at + 0.05)
    assert speech >= 10, f"only {speech} speech packets between the redirect and the BYE"
    assert sink.speech_between(0, redirected_at) == 0, "speech before the redirect"

    # Call-progress callbacks (CB-3, CB-5..CB-7) and the final resource (CB-6).
    found = callbacks(app, "/cb", 4)
    statuses = ["initiated", "ringing", "in-progress", "completed"]
    completed = check_progress(sip_server, found, cb_url, call.sid, statuses)
    assert completed["SipResponseCode"] == "200"
    assert found[0].params["leg"] == "api"  # HOOK-1: the URL's query is kept
    final = wait_status(rest, call.sid, "completed")
    assert completed["CallDuration"] == final["duration"]
    assert int(final["duration"]) in range(0, 10)
    assert final["sip_response_code"] == 200
    assert RFC2822_UTC.match(final["end_time"])
    done = twilio.calls(call.sid).fetch()
    assert done.status == "completed" and isinstance(done.end_time, datetime)
    assert [c.sid for c in twilio.calls.list(to=f"client:{login}", status="completed")] == [
        call.sid
    ]
    assert len(app.requests_to("/answer")) == 1
    assert_idle(rest)


def test_status_completed_hangs_up_an_answered_call(
    sip_server: ServerProcess,
    rest: Api,
    peers: Peers,
    webhook: tuple[WebhookApp, str],
    twilio: TwilioClient,
) -> None:
    app, base = webhook
    app.route("/answer", Route(body=LONG_HOLD))
    app.route("/cb", Route(204, content_type=None))
    login, (device,) = peers.client()
    uas = peers.uas("api_uas_until_bye", device)
    call = twilio.calls.create(
        to=f"client:{login}", from_=FROM, url=f"{base}/answer", status_callback=f"{base}/cb"
    )
    app.wait_for_sync(1, path="/answer", within=15)
    wait_status(rest, call.sid, "in-progress")
    time.sleep(1.2)
    # API-24: canceled leaves an answered call alone ...
    assert twilio.calls(call.sid).update(status="canceled").status == "in-progress"
    time.sleep(0.3)
    assert uas.process is not None and uas.process.poll() is None
    assert "BYE sip:" not in uas.snapshot().messages
    # ... completed sends BYE.
    twilio.calls(call.sid).update(status="completed")
    result = uas.finish(within=15)
    assert result.returncode == 0, result.describe() + sip_server.log()[-3000:]
    final = wait_status(rest, call.sid, "completed")
    assert int(final["duration"]) >= 1 and final["sip_response_code"] == 200
    # CB-2: a callback without events gets only completed.
    (ended,) = callbacks(app, "/cb", 1)
    params = check_progress(sip_server, [ended], f"{base}/cb", call.sid, ["completed"])
    assert params["CallDuration"] == final["duration"] and params["SipResponseCode"] == "200"
    # An ended call cannot be modified (API-25: 21220), by Status or by RCML.
    for change in ({"status": "completed"}, {"twiml": "<Response><Hangup/></Response>"}):
        with pytest.raises(TwilioRestException) as caught:
            twilio.calls(call.sid).update(**change)
        assert (caught.value.status, caught.value.code) == (400, 21220), caught.value.msg
    assert raw_call(rest, call.sid)["status"] == "completed"
    assert_idle(rest)


def test_status_canceled_while_ringing_cancels_the_invite(
    sip_server: ServerProcess,
    rest: Api,
    peers: Peers,
    webhook: tuple[WebhookApp, str],
    twilio: TwilioClient,
) -> None:
    app, base = webhook
    app.route("/answer", Route(body=HOLD))
    app.route("/cb", Route(204, content_type=None))
    login, (device,) = peers.client()
    uas = peers.uas("api_uas_ring", device)
    cb_url = f"{base}/cb"
    call = twilio.calls.create(
        to=f"client:{login}",
        from_=FROM,
        url=f"{base}/answer",
        status_callback=cb_url,
        status_callback_event=["initiated,ringing,answered,completed"],
    )
    wait_for(lambda: "SIP/2.0 180 Ringing" in uas.snapshot().messages, timeout=10)
    wait_status(rest, call.sid, "ringing")
    app.wait_for_sync(2, path="/cb", within=10)  # initiated, ringing
    assert twilio.calls(call.sid).update(status="canceled").sid == call.sid
    result = uas.finish(within=15)
    assert result.returncode == 0, result.describe() + sip_server.log()[-3000:]
    assert f"cancel call_sid={call.sid}" in result.logs
    final = wait_status(rest, call.sid, "canceled")
    assert final["duration"] == "0" and final["sip_response_code"] == 487
    found = callbacks(app, "/cb", 3)
    params = check_progress(
        sip_server, found, cb_url, call.sid, ["initiated", "ringing", "canceled"]
    )
    assert params["CallDuration"] == "0" and params["SipResponseCode"] == "487"
    assert app.requests_to("/answer") == []  # never answered: no RCML
    assert_idle(rest)


def test_every_device_rings_the_first_to_answer_wins(
    sip_server: ServerProcess,
    rest: Api,
    peers: Peers,
    webhook: tuple[WebhookApp, str],
    twilio: TwilioClient,
) -> None:
    app, base = webhook
    app.route("/answer", Route(body='<Response><Pause length="1"/><Hangup/></Response>'))
    app.route("/cb", Route(204, content_type=None))
    login, (first, second) = peers.client(devices=2)
    assert len(rest.registrations(_client_sid(rest, login))) == 2
    ringer = peers.uas("api_uas_ring", first)
    answerer = peers.uas("api_uas_until_bye", second, ring_ms=700)
    cb_url = f"{base}/cb"
    call = twilio.calls.create(
        to=f"client:{login}",
        from_=FROM,
        url=f"{base}/answer",
        status_callback=cb_url,
        status_callback_event=["initiated", "ringing", "answered", "completed"],
    )
    won = answerer.finish(within=20)
    lost = ringer.finish(within=10)
    assert won.returncode == 0, won.describe() + sip_server.log()[-3000:]
    assert lost.returncode == 0, lost.describe() + sip_server.log()[-3000:]
    # Both INVITEs are attempts of the one call (API-21): same CallSid, no child rows.
    assert won.invite_sids() == [call.sid] and lost.invite_sids() == [call.sid]
    (cancel_at,) = lost.received_at("CANCEL")
    (answer_invite_at,) = won.received_at("INVITE")
    assert cancel_at > answer_invite_at + 0.5  # cancelled once the other answered (~0.7 s)
    final = wait_status(rest, call.sid, "completed")
    assert final["sip_response_code"] == 200
    assert [c.sid for c in twilio.calls.list(to=f"client:{login}")] == [call.sid]
    assert twilio.calls.list(parent_call_sid=call.sid) == []
    # Events once each for the call, not per attempt (CB-3).
    found = callbacks(app, "/cb", 4)
    statuses = ["initiated", "ringing", "in-progress", "completed"]
    check_progress(sip_server, found, cb_url, call.sid, statuses)
    assert len(app.requests_to("/answer")) == 1
    assert_idle(rest)


def _client_sid(rest: Api, login: str) -> str:
    response = rest.http.get(f"{rest.server.api}/Clients.json", params={"Login": login})
    assert response.status_code == 200, response.text
    (client,) = response.json()["clients"]
    sid: str = client["sid"]
    return sid


def test_timeout_ends_an_unanswered_call_no_answer(
    sip_server: ServerProcess,
    rest: Api,
    peers: Peers,
    webhook: tuple[WebhookApp, str],
    twilio: TwilioClient,
) -> None:
    app, base = webhook
    app.route("/answer", Route(body=HOLD))
    app.route("/cb", Route(204, content_type=None))
    login, (device,) = peers.client()
    uas = peers.uas("api_uas_ring", device)
    call = twilio.calls.create(
        to=f"client:{login}",
        from_=FROM,
        url=f"{base}/answer",
        status_callback=f"{base}/cb",
        timeout=2,
    )
    result = uas.finish(within=15)
    assert result.returncode == 0, result.describe() + sip_server.log()[-3000:]
    (invite_at,) = result.received_at("INVITE")
    (cancel_at,) = result.received_at("CANCEL")
    assert 1.5 <= cancel_at - invite_at <= 4.0, cancel_at - invite_at
    final = wait_status(rest, call.sid, "no-answer")
    assert final["duration"] == "0"
    (ended,) = callbacks(app, "/cb", 1)
    params = check_progress(sip_server, [ended], f"{base}/cb", call.sid, ["no-answer"])
    assert params["CallDuration"] == "0"
    assert app.requests_to("/answer") == []
    assert_idle(rest)


def test_restcomm_prefix_gives_api_version_2012_04_24(
    sip_server: ServerProcess,
    rest: Api,
    peers: Peers,
    webhook: tuple[WebhookApp, str],
) -> None:
    app, base = webhook
    app.route("/answer", Route(body=LONG_HOLD))
    app.route("/cb", Route(204, content_type=None))
    login, (device,) = peers.client()
    uas = peers.uas("api_uas_until_bye", device)
    with httpx.Client(auth=(sip_server.account_sid, sip_server.auth_token), timeout=10) as http:
        created = http.post(
            f"{sip_server.restcomm_api}/Calls.json",
            data={
                "To": f"client:{login}",
                "From": FROM,
                "Url": f"{base}/answer",
                "StatusCallback": f"{base}/cb",
                "StatusCallbackEvent": "initiated answered completed",
                "StatusCallbackMethod": "GET",
            },
        )
        assert created.status_code == 201, created.text
        call = created.json()
        sid = call["sid"]
        assert call["api_version"] == "2012-04-24" and call["status"] == "queued"
        assert call["uri"] == (
            f"/restcomm/2012-04-24/Accounts/{sip_server.account_sid}/Calls/{sid}.json"
        )
        (voice,) = app.wait_for_sync(1, path="/answer", within=15)
        assert voice.params["ApiVersion"] == "2012-04-24"
        assert_signed(sip_server.auth_token, voice, f"{base}/answer")
        wait_status(rest, sid, "in-progress")
        fetched = http.get(
            f"{sip_server.restcomm_api}/Calls/{sid}", headers={"Accept": "application/json"}
        )
        assert fetched.status_code == 200, fetched.text
        assert fetched.json()["status"] == "in-progress"
        hung_up = http.post(
            f"{sip_server.restcomm_api}/Calls/{sid}.json", data={"Status": "completed"}
        )
        assert hung_up.status_code == 200, hung_up.text
    result = uas.finish(within=15)
    assert result.returncode == 0, result.describe()
    found = callbacks(app, "/cb", 3)
    check_progress(
        sip_server,
        found,
        f"{base}/cb",
        sid,
        ["initiated", "in-progress", "completed"],
        api_version="2012-04-24",
    )
    assert {r.method for r in found} == {"GET"} and all(r.form == [] for r in found)
    assert raw_call(rest, sid)["api_version"] == "2012-04-24"
    assert_idle(rest)


@pytest.fixture
def lone_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of its own, for a test whose leftovers must not spill into the others."""
    proc = ServerProcess(data_dir=tmp_path / "lone").start()
    yield proc
    assert proc.stop() == 0, proc.log()[-4000:]


def test_a_client_without_devices_makes_the_call_fail(lone_server: ServerProcess) -> None:
    rest = Api(lone_server)
    app = WebhookApp(auth_token=lone_server.auth_token)
    app.route("/cb", Route(204, content_type=None))
    twilio = TwilioClient(lone_server.account_sid, lone_server.auth_token)
    twilio.api.base_url = lone_server.base_url
    offline = rest.create_client("off" + secrets.token_hex(3))
    with serve_in_thread(app) as running:
        base = running.base_url
        call = twilio.calls.create(
            to=f"client:{offline.login}",
            from_=FROM,
            twiml="<Response><Say>nobody hears this</Say></Response>",
            status_callback=f"{base}/cb",
            status_callback_event=["initiated", "ringing", "answered", "completed"],
        )
        assert call.status == "queued"
        final = wait_status(rest, call.sid, "failed")
        assert final["duration"] == "0"
        (ended,) = callbacks(app, "/cb", 1)  # no INVITE was sent: no initiated (CB-3)
    params = check_progress(lone_server, [ended], f"{base}/cb", call.sid, ["failed"])
    assert params["CallDuration"] == "0"
    assert_idle(rest)  # the call's RTP port is released too
    rest.http.close()


# --- bad input: Twilio-shaped errors, nothing dialled ---------------------------------------


BAD_CREATES: list[tuple[str, dict[str, Any], int]] = [
    ("To missing", {"to": ""}, 21201),
    ("From missing", {"from_": ""}, 21213),
    ("Url and Twiml missing", {"url": None}, 21205),
    ("To names no Client", {"to": "client:nobody-here"}, 21211),
    ("To malformed", {"to": "not a number!"}, 21211),
    ("To a number without outbound proxy", {"to": "+15557654321"}, 21214),
    ("From too long", {"from_": "x" * 65}, 21212),
    ("Url not http", {"url": "ftp://127.0.0.1/answer"}, 21205),
    ("Method bad", {"method": "PUT"}, 21209),
    ("Timeout 0", {"timeout": 0}, 21208),
    ("Timeout 601", {"timeout": 601}, 21208),
    ("Timeout not a number", {"timeout": "soon"}, 21208),
    ("StatusCallbackEvent unknown", {"status_callback_event": ["initiated", "bogus"]}, 21626),
    ("Twiml malformed", {"url": None, "twiml": "<Response><Say>hi</Response>"}, 12100),
    ("Twiml unknown verb", {"url": None, "twiml": "<Response><Sing>la</Sing></Response>"}, 12200),
]


def test_bad_input_is_refused_twilio_shaped_and_nothing_is_dialled(
    sip_server: ServerProcess,
    rest: Api,
    webhook: tuple[WebhookApp, str],
    twilio: TwilioClient,
) -> None:
    app, base = webhook
    account = rest.create_client("bad" + secrets.token_hex(3), "s3cret")
    device = register_device(sip_server, account.login, account.password)  # stays open
    try:
        before = [c.sid for c in twilio.calls.list()]
        good: dict[str, Any] = {
            "to": f"client:{account.login}",
            "from_": FROM,
            "url": f"{base}/answer",
            "status_callback": f"{base}/cb",
        }
        problems = []
        for label, change, code in BAD_CREATES:
            kwargs = {**good, **change}
            kwargs = {k: v for k, v in kwargs.items() if v is not None}
            try:
                twilio.calls.create(**kwargs)
            except TwilioRestException as exc:
                if (exc.status, exc.code) != (400, code):
                    problems.append(f"{label}: {exc.status} {exc.code} {exc.msg}")
                continue
            problems.append(f"{label}: accepted")
        # Parameters really absent (not empty), over plain HTTP.
        for missing, code in (("To", 21201), ("From", 21213), ("Url", 21205)):
            form = {"To": f"client:{account.login}", "From": FROM, "Url": f"{base}/answer"}
            del form[missing]
            answer = rest.http.post(f"{sip_server.api}/Calls.json", data=form)
            body = answer.json()
            if (
                answer.status_code != 400
                or body.get("code") != code
                or missing not in body.get("message", "")
            ):
                problems.append(f"{missing} absent: {answer.status_code} {body}")
            elif body.get("more_info") != f"{sip_server.base_url}/docs/errors/{code}":
                problems.append(f"{missing} absent: more_info {body.get('more_info')}")
        # Modify: unknown CallSid, another account's path, bad Status, Status with Twiml.
        unknown = "CA" + secrets.token_hex(16)
        for label, call_sid, change, status, code in (
            ("unknown CallSid", unknown, {"status": "completed"}, 404, 20404),
            ("Status bogus", unknown, {"status": "bogus"}, 404, 20404),
        ):
            try:
                twilio.calls(call_sid).update(**change)
                problems.append(f"{label}: accepted")
            except TwilioRestException as exc:
                if (exc.status, exc.code) != (status, code):
                    problems.append(f"{label}: {exc.status} {exc.code} {exc.msg}")
        other = TwilioClient(
            sip_server.account_sid, sip_server.auth_token, account_sid="AC" + secrets.token_hex(16)
        )
        other.api.base_url = sip_server.base_url
        for label, action in (
            ("create under another account", lambda: other.calls.create(**good)),
            (
                "modify under another account",
                lambda: other.calls(unknown).update(status="completed"),
            ),
        ):
            try:
                action()
                problems.append(f"{label}: accepted")
            except TwilioRestException as exc:
                if (exc.status, exc.code) != (403, 20403):
                    problems.append(f"{label}: {exc.status} {exc.code} {exc.msg}")
        assert not problems, "\n".join(problems)
        # Nothing was dialled: the device got no datagram, no Call, no webhook.
        device.sock.settimeout(1.0)
        try:
            data, _ = device.sock.recvfrom(65536)
        except TimeoutError:
            data = b""
        assert data == b"", f"the device received {data[:300]!r}"
        assert [c.sid for c in twilio.calls.list()] == before
        assert app.requests == []
        assert_idle(rest)
    finally:
        device.close()


def test_modify_rejections_on_a_live_call_change_nothing(
    sip_server: ServerProcess,
    rest: Api,
    peers: Peers,
    webhook: tuple[WebhookApp, str],
    twilio: TwilioClient,
) -> None:
    app, base = webhook
    app.route("/answer", Route(body=LONG_HOLD))
    login, (device,) = peers.client()
    uas = peers.uas("api_uas_until_bye", device)
    call = twilio.calls.create(to=f"client:{login}", from_=FROM, url=f"{base}/answer")
    wait_status(rest, call.sid, "in-progress")
    problems = []
    for label, change, code in (
        ("Status bogus", {"status": "bogus"}, 20422),
        ("Status with Twiml", {"status": "completed", "twiml": "<Response/>"}, 20422),
        ("nothing to change", {}, 20422),
        ("Twiml malformed", {"twiml": "<Response><Say>hi</Response>"}, 12100),
        ("Url not http", {"url": "ftp://127.0.0.1/x"}, 21205),
        ("Method bad", {"url": f"{base}/answer", "method": "PUT"}, 21209),
    ):
        try:
            twilio.calls(call.sid).update(**change)
            problems.append(f"{label}: accepted")
        except TwilioRestException as exc:
            if (exc.status, exc.code) != (400, code):
                problems.append(f"{label}: {exc.status} {exc.code} {exc.msg}")
    assert not problems, "\n".join(problems)
    time.sleep(0.5)
    assert raw_call(rest, call.sid)["status"] == "in-progress"
    assert "BYE sip:" not in uas.snapshot().messages
    assert len(app.requests_to("/answer")) == 1  # nothing was redirected
    twilio.calls(call.sid).update(status="completed")
    result = uas.finish(within=15)
    assert result.returncode == 0, result.describe()
    assert_idle(rest)


def test_update_twiml_on_a_parent_in_a_dial_ends_the_dial_without_its_action(
    sip_server: ServerProcess,
    rest: Api,
    peers: Peers,
    webhook: tuple[WebhookApp, str],
    twilio: TwilioClient,
) -> None:
    """API-25 through the library on an outbound-api call whose RCML is in a ``<Dial>``: the
    ringing branch gets CANCEL at once, the action URL is never requested, the new TwiML
    plays to the called party and hangs up."""
    app, base = webhook
    dialled, (carol_device,) = peers.client()
    events = "initiated ringing answered completed"
    app.route(
        "/answer",
        Route(
            body='<Response><Dial action="/dial-done">'
            f'<Client statusCallback="/cb-c" statusCallbackEvent="{events}">{dialled}</Client>'
            "</Dial></Response>"
        ),
    )
    app.route("/cb-c", Route(204, content_type=None))
    app.route("/dial-done", Route(body="<Response><Say>not played</Say></Response>"))
    login, (device,) = peers.client()
    sink = peers.sink()
    uas = peers.uas("api_uas_until_bye", device, sink=sink)
    carol = peers.uas("dial_uas_ring", carol_device)
    call = twilio.calls.create(to=f"client:{login}", from_=FROM, url=f"{base}/answer")
    wait_for(lambda: "SIP/2.0 180 Ringing" in carol.snapshot().messages, timeout=15)
    app.wait_for_sync(2, path="/cb-c", within=10)  # initiated, ringing
    redirected_at = time.time()
    updated = twilio.calls(call.sid).update(
        twiml="<Response><Say>The transfer was cancelled</Say><Hangup/></Response>"
    )
    assert updated.sid == call.sid and updated.status == "in-progress"
    # the branch: CANCEL at once (DIAL-23), 487, ACK
    dialled_result = carol.finish(within=15)
    assert dialled_result.returncode == 0, dialled_result.describe() + sip_server.log()[-3000:]
    (cancel_at,) = dialled_result.received_at("CANCEL")
    assert 0 < cancel_at - redirected_at < 1.0
    # the called party of the API call hears the new TwiML, then gets BYE
    result = uas.finish(within=20)
    assert result.returncode == 0, result.describe() + sip_server.log()[-3000:]
    (bye_at,) = result.received_at("BYE")
    assert bye_at - redirected_at > 0.5, "BYE before the Say"
    assert sink.speech_between(redirected_at, bye_at + 0.05) >= 10
    # the branch's callbacks; no action request; the parent's RCML was fetched once
    found = callbacks(app, "/cb-c", 3)
    assert [r.params["CallStatus"] for r in found] == ["initiated", "ringing", "canceled"]
    assert [r.params["SequenceNumber"] for r in found] == ["0", "1", "2"]
    for request in found:
        assert_signed(sip_server.auth_token, request, f"{base}/cb-c")
        assert request.params["ParentCallSid"] == call.sid
        assert request.params["Direction"] == "outbound-dial"
    assert found[-1].params["SipResponseCode"] == "487"
    assert app.requests_to("/dial-done") == []
    assert len(app.requests_to("/answer")) == 1
    final = wait_status(rest, call.sid, "completed")
    assert final["sip_response_code"] == 200
    (branch,) = twilio.calls.list(parent_call_sid=call.sid)
    assert branch.status == "canceled" and branch.direction == "outbound-dial"
    assert branch.sid == found[0].params["CallSid"]
    assert_idle(rest)
