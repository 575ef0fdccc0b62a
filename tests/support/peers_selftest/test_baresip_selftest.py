"""Prove the baresip/sipsak harness against itself: no dialtone involved.

Two baresips call each other directly, a baresip registers to an unreachable
registrar and to a tiny stub registrar, and sipsak probes a baresip and the stub.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.support import sipsak
from tests.support.baresip import (
    Baresip,
    BaresipFactory,
    BaresipTimeout,
    NetstringDecoder,
    Transport,
    audio_rms,
    audio_stat,
    free_sip_port,
    netstring,
    strip_ansi,
)

pytestmark = pytest.mark.timeout(30)

interop = pytest.mark.interop


# --------------------------------------------------------------------------- direct call


@interop
def test_direct_call_dtmf_and_audio(phones: BaresipFactory) -> None:
    """A dials B directly; B answers; DTMF 1 2 3 arrives; B hears A's tone; A hangs up."""
    b = phones("b", sine_hz=440)
    a = phones("a", sine_hz=880)

    a.dial(b.uri)
    incoming = b.wait_event("CALL_INCOMING", timeout=5)
    assert incoming.peeruri == "sip:a@127.0.0.1"
    assert incoming.direction == "incoming"
    a.wait_event("CALL_RINGING", timeout=5)
    b.accept()
    a.wait_event("CALL_ESTABLISHED", timeout=5)
    b.wait_event("CALL_ESTABLISHED", timeout=5)
    b.wait_event("CALL_RTPESTAB", timeout=5)  # B has received A's RTP

    a.send_dtmf("123")
    assert b.wait_dtmf(3, timeout=5) == "123"

    a.hangup()
    a.wait_event("CALL_CLOSED", timeout=5)
    closed = b.wait_event("CALL_CLOSED", timeout=5)
    assert closed.call_id == incoming.call_id

    # what B decoded is A's 880 Hz tone, not silence (nor B's own 440 Hz)
    received = audio_stat(b.wait_audio_dump("dec", timeout=5))
    assert received["RMS amplitude"] > 0.1, received
    assert received["Length (seconds)"] > 0.2, received
    assert 800 < received["Rough frequency"] < 960, received
    assert audio_rms(a.wait_audio_dump("dec", timeout=5)) > 0.1

    # what the phones saw on the wire
    sent = a.sip_start_lines("sent")
    assert sent[0] == f"INVITE {b.uri} SIP/2.0"
    assert [line.split(" ")[0] for line in sent] == ["INVITE", "ACK", "BYE"]
    assert a.sip_start_lines("received") == [
        "SIP/2.0 180 Ringing",
        "SIP/2.0 200 Answering",
        "SIP/2.0 200 OK",
    ]
    invite = next(m for m in b.sip_messages() if m.direction == "received")
    assert invite.method == "INVITE"
    assert re.search(r"^m=audio \d+ RTP/AVP 0 8 101$", invite.text, re.MULTILINE), invite.text
    assert "a=rtpmap:101 telephone-event/8000" in invite.text
    assert [m.status for m in b.sip_messages() if m.direction == "sent"] == [180, 200, 200]


@interop
def test_call_over_tcp_callee_hangs_up(phones: BaresipFactory) -> None:
    """Same over TCP, and the callee ends the call."""
    b = phones("b", transport="tcp")
    a = phones("a", transport="tcp")
    a.dial(b.uri)
    b.wait_event("CALL_INCOMING", timeout=5)
    b.accept()
    a.wait_event("CALL_ESTABLISHED", timeout=5)
    b.wait_event("CALL_ESTABLISHED", timeout=5)
    b.hangup()
    b.wait_event("CALL_CLOSED", timeout=5)
    a.wait_event("CALL_CLOSED", timeout=5)
    messages = b.sip_messages()
    assert all(m.transport == "TCP" for m in messages)
    assert [m.start_line.split(" ")[0] for m in messages if m.direction == "sent"] == [
        "SIP/2.0",
        "SIP/2.0",
        "BYE",
    ]


@interop
def test_wait_event_times_out_with_output(phones: BaresipFactory) -> None:
    """A wait that cannot succeed fails within its timeout and shows baresip's output."""
    a = phones("a")
    started = time.monotonic()
    with pytest.raises(BaresipTimeout, match=r"no CALL_INCOMING within 0\.5s") as info:
        a.wait_event("CALL_INCOMING", timeout=0.5)
    assert time.monotonic() - started < 2
    assert "baresip is ready." in str(info.value)


@interop
def test_start_retries_when_its_port_was_taken(peer_binaries: None) -> None:
    """A port stolen between the check and baresip's bind costs a retry, not a failure."""
    phone = Baresip("c")
    stolen = phone.sip_port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as thief:
        thief.bind(("127.0.0.1", stolen))
        with phone:
            assert phone.sip_port != stolen
            assert phone.command("reginfo").ok
    assert phone.returncode == 0
    assert phone.stop_method == "quit"


# --------------------------------------------------------------------------- registration


@interop
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_unreachable_registrar_is_not_registered(
    phones: BaresipFactory, transport: Transport
) -> None:
    """An account pointed at a closed port is reported unregistered, promptly."""
    dead = free_sip_port()  # nothing listens there
    phone = phones("alice", password="secret", registrar=f"127.0.0.1:{dead}", transport=transport)
    started = time.monotonic()
    with pytest.raises(BaresipTimeout, match="not registered after 2"):
        phone.wait_registered(timeout=2)
    assert time.monotonic() - started < 4
    assert not phone.is_registered()
    if transport == "tcp":  # connection refused: baresip marks it failed at once
        assert phone.wait_registration_state("ERR", timeout=5)
    else:  # UDP: no answer, still trying
        assert {r.state for r in phone.registrations()} <= {"zzz", "ERR"}
        assert f"REGISTER sip:127.0.0.1:{dead} SIP/2.0" in phone.sip_start_lines("sent")
    started = time.monotonic()
    phone.stop()
    assert time.monotonic() - started < 6
    assert phone.returncode is not None


@dataclass
class StubRegistrar:
    """Just enough UDP registrar: MD5 challenge (no qop), 200 with the Contact, 403."""

    user: str
    password: str
    realm: str = "selftest"
    nonce: str = "0123456789abcdef"
    sock: socket.socket = field(init=False)
    requests: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            text = data.decode(errors="replace")
            self.requests.append(text)
            self.sock.sendto(self._answer(text).encode(), peer)

    def _answer(self, text: str) -> str:
        head = text.split("\r\n\r\n", 1)[0].split("\r\n")
        keep = [h for h in head[1:] if re.match(r"(Via|From|Call-ID|CSeq)\s*:", h, re.I)]
        to = next(h for h in head if re.match(r"To\s*:", h, re.I))
        keep.append(to if ";tag=" in to else to + ";tag=stub")
        auth = next((h for h in head if h.lower().startswith("authorization:")), None)
        if auth is None:
            challenge = f'WWW-Authenticate: Digest realm="{self.realm}", nonce="{self.nonce}"'
            return self._reply("401 Unauthorized", [*keep, challenge])
        if not self._valid(auth, head[0].split(" ", 1)[0]):
            return self._reply("403 Forbidden", keep)
        contacts = [h for h in head if re.match(r"(Contact|m)\s*:", h, re.I)]
        return self._reply("200 OK", [*keep, *contacts])

    def _valid(self, auth: str, method: str) -> bool:
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', auth.split(" ", 2)[2]))

        def md5(value: str) -> str:
            return hashlib.md5(value.encode()).hexdigest()

        ha1 = md5(f"{self.user}:{self.realm}:{self.password}")
        ha2 = md5(f"{method}:{fields.get('uri', '')}")
        return fields.get("username") == self.user and fields.get("response") == md5(
            f"{ha1}:{self.nonce}:{ha2}"
        )

    @staticmethod
    def _reply(status: str, headers: list[str]) -> str:
        return "\r\n".join([f"SIP/2.0 {status}", *headers, "Content-Length: 0", "", ""])

    def __enter__(self) -> StubRegistrar:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def registrar() -> Iterator[StubRegistrar]:
    """A stub registrar for user alice / password secret."""
    with StubRegistrar("alice", "secret") as stub:
        yield stub


@interop
def test_registers_with_digest_and_unregisters_on_quit(
    phones: BaresipFactory, registrar: StubRegistrar
) -> None:
    """The positive path of wait_registered(), and a graceful quit (un-REGISTER)."""
    phone = phones("alice", password="secret", registrar=f"127.0.0.1:{registrar.port}")
    regs = phone.wait_registered(timeout=5)
    assert [r.aor for r in regs] == [f"sip:alice@127.0.0.1:{registrar.port}"]
    assert phone.is_registered()
    assert phone.sip_start_lines()[:4] == [
        f"REGISTER sip:127.0.0.1:{registrar.port} SIP/2.0",
        "SIP/2.0 401 Unauthorized",
        f"REGISTER sip:127.0.0.1:{registrar.port} SIP/2.0",
        "SIP/2.0 200 OK",
    ]
    assert phone.sip_messages()[2].header("Authorization")
    phone.stop()
    assert phone.stop_method == "quit"
    assert re.search(r"expires=0|^Expires: 0", registrar.requests[-1], re.M | re.I)


# --------------------------------------------------------------------------- sipsak


@interop
@pytest.mark.parametrize("below", [10000, None], ids=["port<10000", "5-digit port"])
def test_sipsak_options_to_baresip(phones: BaresipFactory, below: int | None) -> None:
    """baresip answers sipsak's OPTIONS with 200; sipsak exits 0."""
    b = phones("b", sip_port=free_sip_port(below=below))
    result = sipsak.options("127.0.0.1", b.sip_port, timeout=5, user="b")
    assert result.returncode == sipsak.OK, result.output
    assert "200 OK" in result.output
    options = [m for m in b.sip_messages() if m.method == "OPTIONS"]
    assert [(m.direction, m.status) for m in options] == [("received", None), ("sent", 200)]
    port_part = f":{b.sip_port}" if b.sip_port < 10000 else ""
    assert options[0].start_line == f"OPTIONS sip:b@127.0.0.1{port_part} SIP/2.0"


@interop
def test_sipsak_exit_codes_are_bounded(peer_binaries: None) -> None:
    """No answer and a refused port both give 3, within the timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        started = time.monotonic()
        rc, output = sipsak.options("127.0.0.1", silent.getsockname()[1], timeout=1.5)
        assert rc == sipsak.REMOTE_ERROR, output
        assert time.monotonic() - started < 2.5
    rc, output = sipsak.options("127.0.0.1", free_sip_port(), timeout=1.5)
    assert rc == sipsak.REMOTE_ERROR, output


@interop
def test_sipsak_register_with_digest(registrar: StubRegistrar, peer_binaries: None) -> None:
    """register() answers the challenge (0); a wrong password gets 403 (1)."""
    ok = sipsak.register(
        "127.0.0.1", registrar.port, "alice", "secret", contact="sip:alice@127.0.0.1:5999"
    )
    assert ok.returncode == sipsak.OK, ok.output
    assert "Contact: sip:alice@127.0.0.1:5999" in registrar.requests[-1]
    bad = sipsak.register("127.0.0.1", registrar.port, "alice", "wrong", timeout=2)
    assert bad.returncode == sipsak.UNEXPECTED_RESPONSE, bad.output


# --------------------------------------------------------------------------- pure helpers


def test_netstring_decoder_reassembles_and_splits() -> None:
    """Frames split across reads and several frames in one read both decode."""
    stream = netstring(b'{"a":1}') + netstring(b"") + netstring(b"xyz")
    decoder = NetstringDecoder()
    frames = [frame for byte in stream for frame in decoder.feed(bytes([byte]))]
    assert frames == [b'{"a":1}', b"", b"xyz"]
    assert NetstringDecoder().feed(stream) == frames
    with pytest.raises(ValueError, match="comma"):
        NetstringDecoder().feed(b"3:abcd")
    with pytest.raises(ValueError, match="length"):
        NetstringDecoder().feed(b"01:a,")


def test_strip_ansi_and_account_line() -> None:
    """reginfo's colours go away; the accounts line carries the options."""
    assert strip_ansi("\x1b[33mzzz\x1b[;m  Expires 0s") == "zzz  Expires 0s"
    phone = Baresip("alice", "pw", "127.0.0.1:5070", transport="tcp", regint=60)
    assert phone.account_line() == (
        "<sip:alice@127.0.0.1:5070;transport=tcp>;regint=60;answermode=manual"
        ";ptime=20;mwi=no;call_transfer=no;auth_pass=pw"
    )
    assert phone.stop() is None
    assert not phone.workdir.exists()
