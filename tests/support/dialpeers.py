"""Real SIP peers for ``<Dial>`` tests: SIPp devices in the background, registered Clients.

A Client's device is a SIPp server scenario (``dial_uas_*.xml``, first element a ``recv``)
bound to the port the Client registered from: :class:`ContactRegistrar` sends the REGISTER
*from* that port (dialtone sends INVITEs to the source address a binding registered from,
REG-4), closes it, and SIPp binds it next.  :class:`SippPeers` starts SIPps without waiting
(``-m 1``, ``-timeout``), remembers each by PID and kills only those it started.
"""

from __future__ import annotations

import re
import secrets
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType

from tests.support.ports import free_port
from tests.support.sipclient import UdpRegistrar
from tests.support.sipp import SCENARIOS, SippResult

__all__ = [
    "ContactRegistrar",
    "RtpSink",
    "RtpStream",
    "SippPeer",
    "SippPeers",
    "TracedMessage",
    "call_sids",
    "free_udp_port",
    "sip_lines",
    "sip_trace",
]


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that is free right now."""
    return free_port(socket.SOCK_DGRAM)


@dataclass
class ContactRegistrar(UdpRegistrar):
    """:class:`UdpRegistrar` bound to a chosen local port, so Contact = source = that port."""

    local_port: int = 0

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.source, self.local_port))
        self.sock.settimeout(5)

    @classmethod
    def register_device(
        cls, server_port: int, login: str, password: str, port: int | None = None
    ) -> int:
        """Register ``login`` with Contact ``sip:login@127.0.0.1:port`` sent from that port.

        Returns the port, released again for the device (SIPp) to bind.
        """
        registrar = cls(("127.0.0.1", server_port), login, password, local_port=port or 0)
        try:
            response = registrar.register()
            assert response.status == 200, f"REGISTER of {login}: {response.status}"
            return registrar.port
        finally:
            registrar.close()

    @classmethod
    def unregister_device(cls, server_port: int, login: str, password: str, port: int) -> None:
        """Remove the binding of ``port`` again (best effort: the test is over)."""
        try:
            registrar = cls(("127.0.0.1", server_port), login, password, local_port=port)
        except OSError:
            return  # the port is taken again; the binding expires or fails its pings
        try:
            registrar.register(expires=0)
        except OSError:
            pass
        finally:
            registrar.close()


class RtpSink:
    """A UDP socket standing in for a peer's media port: collects dialtone's RTP.

    ``packets`` holds ``(wall-clock arrival, datagram)``, comparable with the times of
    :func:`sip_trace`.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.packets: list[tuple[float, bytes]] = []
        self._senders: list[threading.Thread] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
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

    def stream(self, port: int, fill: int, seconds: float, host: str = "127.0.0.1") -> None:
        """Send PCMU packets of ``fill`` bytes to ``host:port`` every 20 ms, in the background.

        From this socket, so the source is the address this sink stands for in SDP.
        """
        thread = threading.Thread(
            target=self._send, args=((host, port), fill, seconds), daemon=True
        )
        self._senders.append(thread)
        thread.start()

    def _send(self, target: tuple[str, int], fill: int, seconds: float) -> None:
        ssrc = secrets.randbits(32)
        payload = bytes([fill]) * 160
        start = time.monotonic()
        seq = secrets.randbits(16)
        stamp = secrets.randbits(32)
        for n in range(int(seconds / 0.02)):
            if self._stop.is_set():
                return
            header = struct.pack(
                "!BBHII", 0x80, 0, (seq + n) & 0xFFFF, (stamp + 160 * n) & 0xFFFFFFFF, ssrc
            )
            try:
                self.sock.sendto(header + payload, target)
            except OSError:
                return
            delay = start + (n + 1) * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def payloads(self, fill: int) -> list[float]:
        """Arrival times of the packets whose payload is all ``fill`` (our own stream's)."""
        wanted = bytes([fill]) * 160
        return [at for at, data in list(self.packets) if data[12:] == wanted]

    def close(self) -> None:
        """Stop receiving and sending; close the socket."""
        self._stop.set()
        for thread in self._senders:
            thread.join(2)
        self._thread.join(2)
        self.sock.close()


class RtpStream:
    """RTP from an :class:`RtpSink`'s socket (the address the sink stands for in SDP) to
    ``host:port``, one packet every 20 ms until :meth:`stop` (or ``seconds``, or the sink's
    close): 160 bytes of ``fill`` in payload type ``pt``, both changeable while it runs
    (:meth:`switch`, to follow a re-INVITE that changes the codec).  One SSRC, consecutive
    sequence numbers and timestamps across a switch, as a phone changing codec sends.
    ``switches`` holds ``(wall-clock time, fill, pt)`` of the start and of every switch.
    """

    def __init__(
        self,
        sink: RtpSink,
        port: int,
        fill: int,
        pt: int = 0,
        *,
        seconds: float = 40.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.sink = sink
        self.target = (host, port)
        self._lock = threading.Lock()
        self._fill, self._pt = fill, pt
        self.switches: list[tuple[float, int, int]] = [(time.time(), fill, pt)]
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(seconds,), daemon=True)
        sink._senders.append(self._thread)  # joined by sink.close(), which also stops it
        self._thread.start()

    def switch(self, fill: int, pt: int) -> None:
        """From the next packet on, send ``fill`` in payload type ``pt``."""
        with self._lock:
            self._fill, self._pt = fill, pt
            self.switches.append((time.time(), fill, pt))

    def stop(self) -> None:
        """Stop sending (idempotent); returns when the sender thread has ended."""
        self._stop.set()
        self._thread.join(2)

    def _run(self, seconds: float) -> None:
        ssrc, seq, stamp = secrets.randbits(32), secrets.randbits(16), secrets.randbits(32)
        start = time.monotonic()
        for n in range(int(seconds / 0.02)):
            if self._stop.is_set() or self.sink._stop.is_set():
                return
            with self._lock:
                fill, pt = self._fill, self._pt
            header = struct.pack(
                "!BBHII", 0x80, pt, (seq + n) & 0xFFFF, (stamp + 160 * n) & 0xFFFFFFFF, ssrc
            )
            try:
                self.sink.sock.sendto(header + bytes([fill]) * 160, self.target)
            except OSError:
                return
            self.sent += 1
            delay = start + (n + 1) * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class SippPeer:
    """One SIPp running in the background."""

    name: str
    scenario: str
    args: list[str]
    process: subprocess.Popen[str]
    errors: Path
    messages: Path
    logs: Path
    stdout: Path
    port: int
    rtp: RtpSink | None = None
    started: float = field(default_factory=time.monotonic)
    killed: bool = False

    def running(self) -> bool:
        """Whether SIPp has not exited yet."""
        return self.process.poll() is None

    def wait(self, timeout: float = 40.0) -> SippResult:
        """Wait for SIPp to exit; kill it (by PID) after ``timeout`` and say so."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return self.result()

    def kill(self) -> None:
        """Kill this SIPp if it still runs (SIPp exits 0 when killed: ``killed`` records it)."""
        if self.process.poll() is None:
            self.killed = True
            self.process.kill()
            self.process.wait(5)

    def result(self) -> SippResult:
        """Exit code, error file, message trace, and stdout with the scenario's log lines."""
        read = _read
        code = self.process.returncode
        if self.killed or code is None:
            code = -9  # never a pass: SIPp exits 0 when it is killed
        output = read(self.stdout) + "\n--- scenario log\n" + read(self.logs)
        return SippResult(code, read(self.errors), read(self.messages), output)

    def wait_message(self, start: str, *, body: str = "", timeout: float = 10.0) -> TracedMessage:
        """Wait (polling the trace, which SIPp flushes per message) for the first message
        whose start line begins with ``start`` and whose text contains ``body``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.messages.read_text(errors="replace") if self.messages.exists() else ""
            for message in sip_trace(text):
                if message.start_line.startswith(start) and body in message.text:
                    return message
            if not self.running():
                break
            time.sleep(0.02)
        trace = self.result().describe()
        raise AssertionError(f"{self.name}: no {start!r} with {body!r}:\n{trace}")

    @property
    def log(self) -> str:
        """The scenario's ``<log>`` lines so far."""
        return self.logs.read_text(errors="replace") if self.logs.exists() else ""


class SippPeers:
    """Starts SIPps for one test and kills (by PID) whatever is still running at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.peers: list[SippPeer] = []

    def __enter__(self) -> SippPeers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Kill the SIPps still running and close their RTP sinks."""
        for peer in self.peers:
            peer.kill()
            if peer.rtp is not None:
                peer.rtp.close()

    def start(
        self,
        scenario: str,
        *,
        name: str | None = None,
        remote: int | None = None,
        port: int | None = None,
        service: str = "sipp",
        keys: dict[str, str] | None = None,
        sets: dict[str, str] | None = None,
        extra: list[str] | None = None,
        rtp: bool = True,
        timeout: float = 30.0,
    ) -> SippPeer:
        """Start ``scenario`` (``-m 1``) on ``127.0.0.1:port``, towards ``remote`` if given.

        ``rtp`` gives the peer an :class:`RtpSink` passed as ``-key rtp_port``; ``sets`` are
        global variables (``-set``), ``keys`` generic keywords (``-key``).
        """
        name = name or f"{scenario}-{len(self.peers)}"
        work = self.workdir / name
        work.mkdir(parents=True, exist_ok=True)
        port = port or free_udp_port()
        sink = RtpSink() if rtp else None
        all_keys = dict(keys or {})
        if sink is not None:
            all_keys.setdefault("rtp_port", str(sink.port))
        args = ["sipp"]
        if remote is not None:
            args.append(f"127.0.0.1:{remote}")
        args += [
            *("-sf", str(SCENARIOS / f"{scenario}.xml")),
            *("-t", "u1", "-i", "127.0.0.1", "-ci", "127.0.0.1"),
            *("-p", str(port), "-mp", str(free_udp_port())),
            *("-m", "1", "-nostdin", "-s", service),
            *("-default_behaviors", "all,-bye", "-recv_timeout", "10000"),
            *("-timeout", f"{int(timeout)}s", "-timeout_error"),
            *("-trace_err", "-error_file", str(work / "errors.log")),
            *("-trace_msg", "-message_file", str(work / "messages.log")),
            *("-trace_logs", "-log_file", str(work / "logs.log")),
        ]
        for key, value in all_keys.items():
            args += ["-key", key, value]
        for var, value in (sets or {}).items():
            args += ["-set", var, value]
        args += extra or []
        stdout = work / "stdout.txt"
        with stdout.open("w") as out:
            process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, text=True, cwd=work
            )
        peer = SippPeer(
            name,
            scenario,
            args,
            process,
            work / "errors.log",
            work / "messages.log",
            work / "logs.log",
            stdout,
            port,
            sink,
        )
        self.peers.append(peer)
        return peer

    def wait_listening(self, peer: SippPeer, timeout: float = 5.0) -> None:
        """Wait until ``peer`` has bound its UDP port (or fail if it exited)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not peer.running():
                raise AssertionError(f"{peer.name} exited early:\n{peer.result().describe()}")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind(("127.0.0.1", peer.port))
                except OSError:
                    return  # taken: SIPp is listening
            time.sleep(0.02)
        raise AssertionError(f"{peer.name} did not bind 127.0.0.1:{peer.port}")


@dataclass(frozen=True)
class TracedMessage:
    """One message of a SIPp ``-trace_msg`` file."""

    at: float  # wall clock (SIPp writes local time; the test machine runs UTC or local alike)
    sent: bool
    start_line: str
    text: str

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (any case), without the name."""
        match = re.search(rf"^{re.escape(name)}:\s*(.*?)\s*$", self.text, re.M | re.I)
        return match.group(1) if match else None

    @property
    def audio_port(self) -> int:
        """The port of the SDP body's ``m=audio`` line."""
        match = re.search(r"^m=audio (\d+) ", self.text, re.M)
        assert match, f"no m=audio in {self.text}"
        return int(match.group(1))


_BLOCK = re.compile(
    r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n"
    r"(?:UDP|TCP) message (sent|received)[^\n]*\n\n?(.*?)(?=^-{20,} \d{4}-|\Z)",
    re.M | re.S,
)


def sip_trace(messages: str) -> list[TracedMessage]:
    """The messages of a SIPp trace, in order, with their times."""
    out: list[TracedMessage] = []
    for stamp, direction, text in _BLOCK.findall(messages):
        when = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
        text = text.strip("\r\n")
        first = text.split("\n", 1)[0].strip()
        out.append(TracedMessage(when, direction == "sent", first, text))
    return out


_START = re.compile(r"^(?:(?:[A-Z]+) \S+ SIP/2\.0|SIP/2\.0 \d{3}[^\r\n]*)$", re.M)


def sip_lines(messages: str) -> list[str]:
    """The start lines (``INVITE sip:… SIP/2.0``, ``SIP/2.0 180 Ringing``) of a trace."""
    return [m.group(0).strip() for m in _START.finditer(messages)]


def call_sids(messages: str, header: str = "X-Dialtone-CallSid") -> list[str]:
    """Every value of ``header`` in a SIPp message trace, in order, without repeats."""
    found = re.findall(rf"^{re.escape(header)}:\s*(\S+)", messages, re.M | re.I)
    return list(dict.fromkeys(found))
