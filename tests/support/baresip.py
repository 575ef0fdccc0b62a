"""Drive a real baresip 1.0 softphone from tests, over its ``ctrl_tcp`` socket.

One :class:`Baresip` is one ``baresip -f DIR`` process on 127.0.0.1 with its own
config directory, no sound card and no terminal:

* audio source ``ausine`` (a sine tone), player an unconnected ``aubridge``;
* ``sndfile`` dumps what the phone encodes (``*-enc.wav``) and decodes
  (``*-dec.wav``) to :attr:`Baresip.audio_dir`; :func:`audio_rms` measures a dump;
* codecs PCMU/PCMA only (``g711``), DTMF as RFC 4733 telephone-events (the only
  DTMF mode baresip 1.0 has);
* ``ctrl_tcp`` for control: netstrings of JSON, see :class:`NetstringDecoder`;
* ``-s``: the SIP trace goes to :attr:`Baresip.log_path`, parsed by
  :meth:`Baresip.sip_messages` / :meth:`Baresip.sip_start_lines`.

Facts about baresip 1.0 that shaped this driver (read from its v1.0.0 source):

* ``ctrl_tcp`` accepts ONE client; a new connection replaces the old one and
  events are dropped while no client is connected.  We connect right after the
  start and keep that connection; registration is polled with ``reginfo``.
* Commands run on the *current* user agent; ``dial``/``accept``/``hangup``/
  ``reginfo`` come from the ``menu`` module, which must be loaded, and
  ``sndcode`` only exists while a call is active.
* ``sndcode X`` sends the digits of X as RFC 4733 events followed by a key release.
* The netstring reader in ctrl_tcp mis-handles several frames in one TCP segment,
  so this driver sends one command at a time and waits for its response.
* Responses (``{"response":true,"ok":..,"data":..,"token":..}``) and events
  (``{"event":true,"type":..,"class":..,"accountaor":..,"param":..}``) share the
  socket in any order; responses are matched by ``token``.
* ``reginfo`` prints ``OK``/``ERR``/``zzz`` in ANSI colours per register client.
* ``dial URI`` appends the account's own URI parameters (``;transport=tcp``) to
  URI, so :attr:`Baresip.uri` carries none.
* REGISTER over UDP to a closed port stays ``zzz`` (baresip ignores the ICMP
  error and retransmits for 32 s); over TCP the refused connect makes it ``ERR``
  at once.  ``quit`` then waits for that transaction: :meth:`Baresip.stop` copes.
* In the ``-s`` trace, TCP messages show the listening address, not the
  connection's, as source or destination; direction is therefore derived from the
  top Via (ours on requests we send and on responses we receive).
* sndfile's file names are ``dump-YYYY-MM-DD-HH-MM-SS-{enc,dec}.wav`` in a 128-byte
  buffer (so the directory path must be short), a second call in the same second
  overwrites the dump, and the WAV header is only written when the call's audio
  stream is destroyed (after ``CALL_CLOSED``): :meth:`Baresip.wait_audio_dump`.

Set ``BARESIP_KEEP=1`` to keep the temp work dirs (config, log, dumps) for a look.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal, Self

from tests.support.ports import free_port, free_udp_tcp_port

BARESIP = "baresip"
MODULE_PATH = "/usr/lib/baresip/modules"
SHARE_PATH = "/usr/share/baresip"

#: RTP/RTCP ports baresip may use: below the kernel's ephemeral range (where
#: :func:`free_port` picks SIP/control ports) and above the ports < 10000 that
#: :func:`free_sip_port` hands out for sipsak, so media never steals a SIP port.
RTP_PORTS = (10000, 19999)

Transport = Literal["udp", "tcp"]
AnswerMode = Literal["manual", "early", "auto"]
DumpKind = Literal["enc", "dec"]
Direction = Literal["sent", "received"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z\]]|\x07")
_TRACE = re.compile(
    r"\x1b\[36;1m#\r?\n(?P<tp>\S+) (?P<src>\S+) -> (?P<dst>\S+)\r?\n(?P<msg>.*?)\x1b\[;m",
    re.DOTALL,
)
_VIA = re.compile(r"^(?:Via|v)\s*:\s*SIP/2\.0/\S+\s+([^;,\s]+)", re.IGNORECASE | re.MULTILINE)
_REG = re.compile(r" (OK|ERR|zzz) +(.*?) Expires (\d+)s")
# sndfile's own buffer is 128 bytes: "<snd_path>/dump-YYYY-MM-DD-HH-MM-SS-enc.wav"
_SNDFILE_NAME_MAX = 127 - len("/dump-2020-01-01-00-00-00-enc.wav")

_reserved_lock = threading.Lock()
_reserved_ports: set[int] = set()


class BaresipError(RuntimeError):
    """baresip failed; the message carries the tail of its output."""


class BaresipTimeout(BaresipError, TimeoutError):
    """A bounded wait on baresip ran out; the message carries its output."""


def strip_ansi(text: str) -> str:
    """``text`` without ANSI colour/terminal escape sequences (and BEL)."""
    return _ANSI.sub("", text)


def _port_free(port: int, kinds: Iterable[int], host: str = "127.0.0.1") -> bool:
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def _reserve(port: int) -> bool:
    with _reserved_lock:
        if port in _reserved_ports:
            return False
        _reserved_ports.add(port)
        return True


def free_sip_port(below: int | None = None) -> int:
    """A SIP port for baresip: ``PORT`` free for UDP+TCP and ``PORT+1`` for TCP (TLS).

    Ports handed out by this process are remembered, and a port is refused when it
    or its neighbours were handed out already, so instances stay >= 2 ports apart.
    With ``below`` (e.g. 10000, for peers such as sipsak that mangle 5-digit
    ports) the port is drawn at random from ``5100 .. below-2``.
    """
    for _ in range(200):
        port = free_udp_tcp_port() if below is None else random.randrange(5100, below - 1)
        if port in (5060, 5061) or port + 1 > 65535:
            continue
        with _reserved_lock:
            if {port - 1, port, port + 1} & _reserved_ports:
                continue
        if not _port_free(port, (socket.SOCK_DGRAM, socket.SOCK_STREAM)):
            continue
        if not _port_free(port + 1, (socket.SOCK_STREAM,)):
            continue
        with _reserved_lock:
            if {port - 1, port, port + 1} & _reserved_ports:
                continue
            _reserved_ports.update((port, port + 1))
        return port
    raise BaresipError("no free SIP port pair found")


def _free_tcp_port() -> int:
    for _ in range(50):
        port = free_port(socket.SOCK_STREAM)
        if _reserve(port):
            return port
    raise BaresipError("no free TCP port found")


# --------------------------------------------------------------------------- netstrings


def netstring(payload: bytes) -> bytes:
    """Encode ``payload`` as a netstring: ``b"<len>:<payload>,"``."""
    return str(len(payload)).encode() + b":" + payload + b","


class NetstringDecoder:
    """Incremental netstring decoder for a byte stream (ctrl_tcp's framing)."""

    def __init__(self, max_size: int = 10_000_000) -> None:
        """Decode frames of at most ``max_size`` bytes."""
        self._buf = bytearray()
        self._max = max_size

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the payloads of all frames now complete."""
        self._buf += data
        frames: list[bytes] = []
        while True:
            colon = self._buf.find(b":")
            if colon < 0:
                if len(self._buf) > 10 or (self._buf and not self._buf.isdigit()):
                    raise ValueError(f"bad netstring header: {bytes(self._buf[:20])!r}")
                return frames
            head = bytes(self._buf[:colon])
            if not head.isdigit() or (len(head) > 1 and head.startswith(b"0")):
                raise ValueError(f"bad netstring length: {head!r}")
            size = int(head)
            if size > self._max:
                raise ValueError(f"netstring too long: {size}")
            end = colon + 1 + size
            if len(self._buf) < end + 1:
                return frames
            if self._buf[end] != ord(","):
                raise ValueError("netstring without trailing comma")
            frames.append(bytes(self._buf[colon + 1 : end]))
            del self._buf[: end + 1]


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class BaresipEvent:
    """One ctrl_tcp event, e.g. ``CALL_INCOMING`` (the JSON is in :attr:`raw`)."""

    type: str
    event_class: str
    param: str
    accountaor: str
    direction: str
    peeruri: str
    call_id: str
    raw: Mapping[str, Any]
    received_at: float

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], received_at: float) -> BaresipEvent:
        """Build from a decoded ctrl_tcp event object."""

        def text(key: str) -> str:
            value = obj.get(key)
            return "" if value is None else str(value)

        return cls(
            type=text("type"),
            event_class=text("class"),
            param=text("param"),
            accountaor=text("accountaor"),
            direction=text("direction"),
            peeruri=text("peeruri"),
            call_id=text("id"),
            raw=dict(obj),
            received_at=received_at,
        )


@dataclass(frozen=True)
class CommandResult:
    """A ctrl_tcp response: ``ok`` and the command's printout (ANSI stripped)."""

    ok: bool
    data: str
    raw: Mapping[str, Any]


@dataclass(frozen=True)
class Registration:
    """One register client of one UA, from ``reginfo``."""

    aor: str
    state: Literal["OK", "ERR", "zzz"]
    server: str
    expires: int

    @property
    def ok(self) -> bool:
        """True when the last REGISTER got a 200."""
        return self.state == "OK"


@dataclass(frozen=True)
class SipMessage:
    """One SIP message from baresip's ``-s`` trace."""

    transport: str
    src: str
    dst: str
    direction: Direction
    text: str

    @property
    def start_line(self) -> str:
        """Request line or status line, e.g. ``INVITE sip:b@127.0.0.1:5070 SIP/2.0``."""
        return self.text.split("\n", 1)[0].rstrip("\r")

    @property
    def is_request(self) -> bool:
        """True for requests, False for responses."""
        return not self.start_line.startswith("SIP/2.0 ")

    @property
    def method(self) -> str:
        """The request method, or the CSeq method of a response."""
        if self.is_request:
            return self.start_line.split(" ", 1)[0]
        match = re.search(r"^CSeq\s*:\s*\d+\s+(\S+)", self.text, re.IGNORECASE | re.MULTILINE)
        return match.group(1) if match else ""

    @property
    def status(self) -> int | None:
        """The status code of a response, None for requests."""
        if self.is_request:
            return None
        return int(self.start_line.split(" ", 2)[1])

    def header(self, name: str) -> list[str]:
        """Values of header ``name`` (case-insensitive; no compact forms)."""
        head = self.text.split("\r\n\r\n", 1)[0].split("\n\n", 1)[0]
        pattern = re.compile(rf"^{re.escape(name)}\s*:\s*(.*?)\r?$", re.IGNORECASE | re.MULTILINE)
        return pattern.findall(head)


# --------------------------------------------------------------------------- audio


def audio_stat(path: Path | str, timeout: float = 10.0) -> dict[str, float]:
    """``sox PATH -n stat`` as a dict, e.g. ``{"Length (seconds)": 2.1, "RMS amplitude": 0.35,
    "Rough frequency": 882.0, ...}``.  Raises :class:`BaresipError` with sox's output on failure.
    """
    proc = subprocess.run(
        ["sox", str(path), "-n", "stat"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    out = proc.stdout + proc.stderr
    stats: dict[str, float] = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        with suppress(ValueError):
            stats[" ".join(key.split())] = float(value)
    if proc.returncode != 0 or "RMS amplitude" not in stats:
        raise BaresipError(f"sox stat {path} failed (rc={proc.returncode}):\n{out}")
    return stats


def audio_rms(path: Path | str, timeout: float = 10.0) -> float:
    """RMS amplitude (0.0 silence .. 1.0 full scale) of an audio file, by ``sox … -n stat``.

    Raises :class:`BaresipError` (with sox's output) if sox fails or prints no RMS.
    """
    return audio_stat(path, timeout)["RMS amplitude"]


def wav_complete(path: Path) -> bool:
    """True when ``path`` is a WAV whose RIFF size matches the file (sndfile closed it)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
        size = path.stat().st_size
    except OSError:
        return False
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    (riff_size,) = struct.unpack("<I", head[4:8])
    return bool(riff_size + 8 == size and size > 44)


# --------------------------------------------------------------------------- the driver


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    result: CommandResult | None = None


class Baresip:
    """A baresip 1.0 process on 127.0.0.1, controlled over ``ctrl_tcp``.

    With ``user`` and ``registrar`` (``"127.0.0.1:PORT"``) the phone registers
    as ``sip:user@registrar`` (``password`` for digest auth, ``transport`` for the
    REGISTER and the calls).  Without ``registrar`` it is a plain UA
    ``sip:<user or "baresip">@127.0.0.1`` that never registers; reach it directly
    at :attr:`uri`.  Use as a context manager, which always stops the process::

        with Baresip(user="b") as b, Baresip(user="a") as a:
            a.dial(b.uri)
            b.wait_event("CALL_INCOMING")
            b.accept()

    ``workdir`` (default: a fresh temp dir, removed by :meth:`stop`, so call it
    even for a phone never started) holds the config, ``accounts``, the log and
    ``audio/``; it must be a short path because sndfile's file-name buffer is 128
    bytes.  Ports default to free ones (:func:`free_sip_port`).
    """

    def __init__(
        self,
        user: str | None = None,
        password: str | None = None,
        registrar: str | None = None,
        transport: Transport = "udp",
        regint: int = 3600,
        *,
        domain: str | None = None,
        auth_user: str | None = None,
        display_name: str | None = None,
        answermode: AnswerMode = "manual",
        audio_codecs: Sequence[str] | None = None,
        sine_hz: int = 440,
        sip_port: int | None = None,
        ctrl_port: int | None = None,
        workdir: Path | None = None,
        sip_trace: bool = True,
        verbose: bool = False,
        max_lifetime: int | None = 600,
        extra_config: Mapping[str, str] | None = None,
        extra_account_params: Mapping[str, str] | None = None,
        binary: str = BARESIP,
    ) -> None:
        """Prepare (but do not start) a phone; see the class docstring."""
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be udp or tcp, not {transport!r}")
        if not 10 <= sine_hz <= 20000:
            raise ValueError("ausine needs 10 <= sine_hz <= 20000")
        self.user = user or "baresip"
        self.password = password
        self.registrar = registrar
        self.transport: Transport = transport
        self.regint = regint if registrar else 0
        self.domain = domain or registrar or "127.0.0.1"
        self.auth_user = auth_user
        self.display_name = display_name
        self.answermode: AnswerMode = answermode
        self.audio_codecs = list(audio_codecs) if audio_codecs else None
        self.sine_hz = sine_hz
        self._auto_sip_port = sip_port is None
        self._auto_ctrl_port = ctrl_port is None
        self.sip_port = sip_port if sip_port is not None else free_sip_port()
        self.ctrl_port = ctrl_port if ctrl_port is not None else _free_tcp_port()
        self.sip_trace = sip_trace
        self.verbose = verbose
        self.max_lifetime = max_lifetime
        self.extra_config = dict(extra_config or {})
        self.extra_account_params = dict(extra_account_params or {})
        self.binary = binary

        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else self._make_tempdir()
        self.audio_dir = self.workdir / "audio"
        if len(str(self.audio_dir)) > _SNDFILE_NAME_MAX:
            raise ValueError(
                f"workdir too long for sndfile's 128-byte file names: {self.audio_dir}"
            )
        self.log_path = self.workdir / "baresip.log"

        self.process: subprocess.Popen[bytes] | None = None
        self._log_fh: BinaryIO | None = None
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._events: list[BaresipEvent] = []
        self._consumed: set[int] = set()
        self._pending: dict[str, _Pending] = {}
        self._token = 0
        self._ctrl_closed = False
        self._ctrl_error: str | None = None
        self.stop_method: str | None = None

    @staticmethod
    def _make_tempdir() -> Path:
        base = tempfile.gettempdir()
        if len(base) > 40:
            base = "/tmp"
        return Path(tempfile.mkdtemp(prefix="baresip-", dir=base))

    # ------------------------------------------------------------------ identity

    @property
    def aor(self) -> str:
        """The account's address of record, e.g. ``sip:alice@127.0.0.1:5070``."""
        return f"sip:{self.user}@{self.domain}"

    @property
    def uri(self) -> str:
        """Where this phone listens (UDP and TCP): ``sip:user@127.0.0.1:SIP_PORT``.

        No ``;transport=`` here: baresip appends its own account's URI parameters
        to every dialled URI, so a TCP caller adds ``;transport=tcp`` by itself.
        """
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    @property
    def pid(self) -> int | None:
        """PID of the running process (None before :meth:`start`)."""
        return self.process.pid if self.process else None

    @property
    def returncode(self) -> int | None:
        """Exit status once the process has ended, else None."""
        return self.process.poll() if self.process else None

    # ------------------------------------------------------------------ config

    def account_line(self) -> str:
        """The line written to the ``accounts`` file."""
        uri_params = ";transport=tcp" if self.transport == "tcp" else ""
        params: dict[str, str] = {
            "regint": str(self.regint),
            "answermode": self.answermode,
            "ptime": "20",
            "mwi": "no",
            "call_transfer": "no",
        }
        if self.password is not None:
            params["auth_pass"] = self.password
        if self.auth_user is not None:
            params["auth_user"] = self.auth_user
        if self.audio_codecs:
            params["audio_codecs"] = ",".join(self.audio_codecs)
        if self.registrar and self.domain != self.registrar:
            params["outbound"] = f'"sip:{self.registrar}{uri_params}"'
        params.update(self.extra_account_params)
        name = f'"{self.display_name}" ' if self.display_name else ""
        tail = "".join(f";{k}={v}" for k, v in params.items())
        return f"{name}<sip:{self.user}@{self.domain}{uri_params}>{tail}"

    def config_text(self) -> str:
        """The ``config`` file: loopback only, no sound card, no UI, g711, ctrl_tcp."""
        lines = [
            f"sip_listen\t\t127.0.0.1:{self.sip_port}",
            "net_interface\t\t127.0.0.1",
            "call_max_calls\t\t4",
            "call_local_timeout\t120",
            f"audio_path\t\t{SHARE_PATH}",
            "audio_player\t\taubridge,play",
            f"audio_source\t\tausine,{self.sine_hz}",
            "audio_alert\t\taubridge,alert",
            "ausrc_srate\t\t48000",
            "ausrc_channels\t\t2",
            "audio_level\t\tno",
            "ausrc_format\t\ts16",
            "auplay_format\t\ts16",
            "auenc_format\t\ts16",
            "audec_format\t\ts16",
            "audio_buffer\t\t20-160",
            f"rtp_ports\t\t{RTP_PORTS[0]}-{RTP_PORTS[1]}",
            "rtp_stats\t\tno",
            f"module_path\t\t{MODULE_PATH}",
            "module\t\t\tg711.so",
            "module\t\t\tsndfile.so",
            "module\t\t\taubridge.so",
            "module\t\t\tausine.so",
            "module_tmp\t\taccount.so",
            "module_app\t\tmenu.so",
            "module_app\t\tctrl_tcp.so",
            f"ctrl_tcp_listen\t\t127.0.0.1:{self.ctrl_port}",
            f"snd_path\t\t{self.audio_dir}",
            "menu_bell\t\tno",
            "ringback_disabled\tyes",
            "statmode_default\toff",
            "redial_attempts\t\t0",
        ]
        lines += [f"{key}\t\t{value}" for key, value in self.extra_config.items()]
        return "\n".join(lines) + "\n"

    def write_config(self) -> None:
        """Write ``config`` and ``accounts`` into :attr:`workdir`."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.audio_dir.mkdir(exist_ok=True)
        (self.workdir / "config").write_text(self.config_text())
        (self.workdir / "accounts").write_text(self.account_line() + "\n")
        (self.workdir / "contacts").write_text("")

    def command_line(self) -> list[str]:
        """The argv that starts this phone."""
        argv = [self.binary, "-4", "-f", str(self.workdir)]
        if self.sip_trace:
            argv.append("-s")
        if self.verbose:
            argv.append("-v")
        if self.max_lifetime:
            argv += ["-t", str(self.max_lifetime)]
        return argv

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 10.0, attempts: int = 3) -> Self:
        """Write the config, launch baresip and connect to ctrl_tcp (each try bounded by
        ``timeout``).

        If a port chosen by this object turns out to be taken ("Address already in
        use": another process grabbed it between the check and baresip's bind), new
        ports are picked and baresip is started again, up to ``attempts`` times.
        """
        if self.process is not None:
            raise BaresipError("already started")
        if shutil.which(self.binary) is None:
            raise BaresipError(
                f"{self.binary} not found: apt-get install -y baresip-core "
                "(see shared/recipes/sip-peers.md)"
            )
        for attempt in range(1, attempts + 1):
            try:
                self._launch(timeout)
                return self
            except BaseException:
                in_use = "Address already in use" in self.log()
                self._terminate()
                retry = in_use and (self._auto_sip_port or self._auto_ctrl_port)
                if not retry or attempt == attempts:
                    self._cleanup_files()
                    raise
            if self._auto_sip_port:
                self.sip_port = free_sip_port()
            if self._auto_ctrl_port:
                self.ctrl_port = _free_tcp_port()
        raise AssertionError("unreachable")

    def _launch(self, timeout: float) -> None:
        self._reset_runtime()
        self.write_config()
        self._log_fh = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command_line(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        self._connect(timeout)
        # one round trip proves the command path works, and that the ctrl port we
        # reached is ours (it lists our AOR), before any test uses it
        data = self.command("reginfo", timeout=timeout).data
        if not re.search(rf"^[> ] {re.escape(self.aor)}\s", data, re.MULTILINE):
            raise BaresipError(self._failure(f"ctrl port {self.ctrl_port} is not ours: {data!r}"))

    def _reset_runtime(self) -> None:
        self.process = None
        self.stop_method = None
        self._ctrl_closed = False
        self._ctrl_error = None
        with self._cond:
            self._events.clear()
            self._consumed.clear()

    def _connect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: OSError | None = None
        while time.monotonic() < deadline:
            self._check_alive("connecting to ctrl_tcp")
            try:
                sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1.0)
            except OSError as exc:
                last = exc
                time.sleep(0.05)
                continue
            sock.settimeout(None)
            self._sock = sock
            self._reader = threading.Thread(
                target=self._read_loop, name=f"baresip-ctrl-{self.ctrl_port}", daemon=True
            )
            self._reader.start()
            return
        raise BaresipTimeout(self._failure(f"ctrl_tcp 127.0.0.1:{self.ctrl_port} refused ({last})"))

    def stop(self, quit_timeout: float = 2.0, term_timeout: float = 2.0) -> int | None:
        """Stop the process: ``quit`` command, then SIGTERM (twice), then SIGKILL, by PID.

        baresip's ``quit`` and its first SIGTERM both stop the UAs gracefully
        (un-REGISTER, BYE) and wait for pending SIP transactions, which to a dead
        registrar takes up to 32 s; its second SIGTERM exits at once.  Returns the
        exit status (None if never started).  Idempotent; :attr:`stop_method`
        tells which step ended the process.
        """
        code = self._terminate(quit_timeout, term_timeout)
        self._cleanup_files()
        return code

    def _terminate(self, quit_timeout: float = 2.0, term_timeout: float = 2.0) -> int | None:
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is not None and self.stop_method is None:
            self.stop_method = "exited"
        quit_sent = False
        if proc.poll() is None and self._sock is not None and not self._ctrl_closed:
            with suppress(OSError):
                self._send({"command": "quit", "token": "quit"})
                quit_sent = True
            self.stop_method = "quit"
            self._wait_exit(proc, quit_timeout)
        if proc.poll() is None:
            self.stop_method = "sigterm"
            self._signal(proc, signal.SIGTERM)
            # after a quit, the 1st SIGTERM adds nothing: only arm the 2nd
            self._wait_exit(proc, 0.2 if quit_sent else term_timeout)
        if proc.poll() is None:
            self.stop_method = "sigterm2"
            self._signal(proc, signal.SIGTERM)
            self._wait_exit(proc, term_timeout)
        if proc.poll() is None:
            self.stop_method = "sigkill"
            self._signal(proc, signal.SIGKILL)
            proc.wait(timeout=10)
        self._close_ctrl()
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        return proc.returncode

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(proc.pid, sig)

    @staticmethod
    def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> None:
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)

    def _close_ctrl(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._reader is not None:
            self._reader.join(timeout=2)
            self._reader = None

    def _cleanup_files(self) -> None:
        if self._own_workdir and not os.environ.get("BARESIP_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        """Start (if not started yet) and return self."""
        if self.process is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Always stop the process."""
        self.stop()

    # ------------------------------------------------------------------ ctrl_tcp

    def _send(self, obj: Mapping[str, Any]) -> None:
        sock = self._sock
        if sock is None:
            raise BaresipError("not connected to ctrl_tcp")
        sock.sendall(netstring(json.dumps(obj).encode()))

    def _read_loop(self) -> None:
        decoder = NetstringDecoder()
        sock = self._sock
        assert sock is not None
        error: str | None = None
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                for frame in decoder.feed(data):
                    self._dispatch(frame)
        except (OSError, ValueError) as exc:
            error = repr(exc)
        with self._cond:
            self._ctrl_closed = True
            self._ctrl_error = error
            self._cond.notify_all()
        for pending in list(self._pending.values()):
            pending.done.set()

    def _dispatch(self, frame: bytes) -> None:
        try:
            obj = json.loads(frame.decode("utf-8", errors="replace"))
        except json.JSONDecodeError:
            return
        if not isinstance(obj, dict):
            return
        now = time.monotonic()
        if obj.get("event"):
            with self._cond:
                self._events.append(BaresipEvent.from_json(obj, now))
                self._cond.notify_all()
        elif obj.get("response"):
            token = str(obj.get("token", ""))
            result = CommandResult(
                ok=bool(obj.get("ok")), data=strip_ansi(str(obj.get("data", ""))), raw=obj
            )
            pending = self._pending.get(token)
            if pending is not None:
                pending.result = result
                pending.done.set()

    def command(self, name: str, params: str | None = None, timeout: float = 5.0) -> CommandResult:
        """Run a baresip long command (``dial``, ``reginfo``, ``quit``…) and return its result.

        One command is in flight at a time.  Raises :class:`BaresipTimeout` if no
        response arrives within ``timeout`` (or the control connection drops).
        """
        with self._send_lock:
            self._check_alive(f"command {name!r}")
            if self._ctrl_closed:
                raise BaresipError(self._failure(f"command {name!r}: ctrl_tcp connection closed"))
            self._token += 1
            token = f"t{self._token}"
            pending = _Pending()
            self._pending[token] = pending
            msg: dict[str, str] = {"command": name, "token": token}
            if params is not None:
                msg["params"] = params
            try:
                self._send(msg)
                pending.done.wait(timeout)
            finally:
                self._pending.pop(token, None)
            if pending.result is None:
                what = "ctrl_tcp closed" if self._ctrl_closed else f"no response in {timeout}s"
                raise BaresipTimeout(self._failure(f"command {msg}: {what}"))
            return pending.result

    def _ok(self, name: str, params: str | None = None, timeout: float = 5.0) -> CommandResult:
        result = self.command(name, params, timeout)
        if not result.ok:
            raise BaresipError(self._failure(f"command {name} {params or ''} failed: {result}"))
        return result

    def dial(self, uri: str) -> CommandResult:
        """Call ``uri`` from the current UA (``dial`` command); raises if refused."""
        return self._ok("dial", uri)

    def accept(self) -> CommandResult:
        """Answer the current incoming call (``accept``)."""
        return self._ok("accept")

    def hangup(self) -> CommandResult:
        """Hang up the current call (``hangup``)."""
        return self._ok("hangup")

    def send_dtmf(self, digits: str) -> None:
        """Send ``digits`` as RFC 4733 events, one ``sndcode`` command per digit."""
        for digit in digits:
            if digit not in "0123456789*#ABCD":
                raise ValueError(f"not a DTMF digit: {digit!r}")
            self._ok("sndcode", digit)

    def reginfo(self) -> str:
        """The ``reginfo`` printout, ANSI colours stripped."""
        return self._ok("reginfo").data

    def registrations(self) -> list[Registration]:
        """The register clients of every UA, parsed from ``reginfo``."""
        regs: list[Registration] = []
        for line in self.reginfo().splitlines():
            match = re.match(r"^[> ] (\S+)(.*)$", line)
            if not match or not match.group(1).startswith(("sip:", "sips:")):
                continue
            for reg in _REG.finditer(match.group(2)):
                state: Literal["OK", "ERR", "zzz"] = reg.group(1)  # type: ignore[assignment]
                regs.append(Registration(match.group(1), state, reg.group(2), int(reg.group(3))))
        return regs

    def is_registered(self) -> bool:
        """True if the account has register clients and all got a 200."""
        regs = self.registrations()
        return bool(regs) and all(r.ok for r in regs)

    def wait_registered(self, timeout: float = 10.0, interval: float = 0.1) -> list[Registration]:
        """Poll ``reginfo`` until registered; raise :class:`BaresipTimeout` after ``timeout``."""
        deadline = time.monotonic() + timeout
        regs: list[Registration] = []
        while True:
            regs = self.registrations()
            if regs and all(r.ok for r in regs):
                return regs
            if time.monotonic() >= deadline:
                raise BaresipTimeout(self._failure(f"not registered after {timeout}s: {regs}"))
            time.sleep(interval)

    def wait_registration_state(
        self, state: Literal["OK", "ERR", "zzz"], timeout: float = 10.0, interval: float = 0.1
    ) -> list[Registration]:
        """Poll ``reginfo`` until every register client is in ``state``."""
        deadline = time.monotonic() + timeout
        while True:
            regs = self.registrations()
            if regs and all(r.state == state for r in regs):
                return regs
            if time.monotonic() >= deadline:
                raise BaresipTimeout(self._failure(f"registration never {state}: {regs}"))
            time.sleep(interval)

    # ------------------------------------------------------------------ events

    def events(self) -> list[BaresipEvent]:
        """Every event received so far (consumed or not), oldest first."""
        with self._cond:
            return list(self._events)

    def wait_event(
        self,
        type: str,
        timeout: float = 10.0,
        where: Callable[[BaresipEvent], bool] | None = None,
    ) -> BaresipEvent:
        """Wait for the oldest not-yet-consumed event of ``type`` (and ``where``), consume it.

        Events of other types stay available for later waits.  Raises
        :class:`BaresipTimeout` with the events seen and the process output.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index, event in enumerate(self._events):
                    if index in self._consumed or event.type != type:
                        continue
                    if where is not None and not where(event):
                        continue
                    self._consumed.add(index)
                    return event
                remaining = deadline - time.monotonic()
                problem = None
                if remaining <= 0:
                    problem = f"no {type} within {timeout}s"
                elif self._ctrl_closed:
                    problem = f"ctrl_tcp closed ({self._ctrl_error}) while waiting for {type}"
                elif self.process is not None and self.process.poll() is not None:
                    problem = f"baresip exited ({self.process.returncode}) waiting for {type}"
                if problem:
                    seen = [f"{e.type}({e.param})" for e in self._events]
                    raise BaresipTimeout(self._failure(f"{problem}; events: {seen}"))
                self._cond.wait(min(remaining, 0.2))

    def wait_dtmf(self, count: int, timeout: float = 10.0) -> str:
        """Collect ``count`` received digits (``CALL_DTMF_START`` events) within ``timeout``."""
        deadline = time.monotonic() + timeout
        digits = ""
        for _ in range(count):
            event = self.wait_event("CALL_DTMF_START", max(0.0, deadline - time.monotonic()))
            digits += event.param
        return digits

    # ------------------------------------------------------------------ output

    def log(self) -> str:
        """Everything baresip printed so far (stdout+stderr, SIP trace), ANSI stripped."""
        return strip_ansi(self._raw_log())

    def _raw_log(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def sip_log(self) -> str:
        """The SIP trace: every traced message as ``<tp> <src> -> <dst>`` plus its text."""
        return "\n".join(
            f"# {m.direction} {m.transport} {m.src} -> {m.dst}\n{m.text}"
            for m in self.sip_messages()
        )

    def sip_messages(self) -> list[SipMessage]:
        """The SIP messages in the ``-s`` trace, each marked ``sent`` or ``received``."""
        local = f"127.0.0.1:{self.sip_port}"
        messages: list[SipMessage] = []
        for match in _TRACE.finditer(self._raw_log()):
            text = match.group("msg").replace("\r\n", "\n").strip("\n") + "\n"
            src, dst = match.group("src"), match.group("dst")
            is_request = not text.startswith("SIP/2.0 ")
            via = _VIA.search(text)
            if via is not None:
                ours = via.group(1) == local
                direction: Direction = "sent" if ours == is_request else "received"
            else:
                direction = "sent" if src == local else "received"
            messages.append(SipMessage(match.group("tp"), src, dst, direction, text))
        return messages

    def sip_start_lines(self, direction: Direction | None = None) -> list[str]:
        """Request/status lines of traced messages, optionally only ``sent``/``received``."""
        return [
            m.start_line
            for m in self.sip_messages()
            if direction is None or m.direction == direction
        ]

    def audio_dumps(self, kind: DumpKind) -> list[Path]:
        """sndfile's WAV dumps of ``kind`` (``dec`` = received audio, ``enc`` = sent)."""
        return sorted(self.audio_dir.glob(f"dump-*-{kind}.wav"))

    def wait_audio_dump(self, kind: DumpKind = "dec", timeout: float = 10.0) -> Path:
        """Wait for a finished (header written, i.e. call closed) dump of ``kind``."""
        deadline = time.monotonic() + timeout
        while True:
            done = [p for p in self.audio_dumps(kind) if wav_complete(p)]
            if done:
                return done[-1]
            if time.monotonic() >= deadline:
                found = [(p.name, p.stat().st_size) for p in self.audio_dumps(kind)]
                raise BaresipTimeout(self._failure(f"no complete {kind} dump: {found}"))
            time.sleep(0.05)

    def _check_alive(self, doing: str) -> None:
        if self.process is None:
            raise BaresipError(f"{doing}: baresip not started")
        if self.process.poll() is not None:
            raise BaresipError(
                self._failure(f"{doing}: baresip exited ({self.process.returncode})")
            )

    def _failure(self, what: str, tail_chars: int = 12000) -> str:
        log = self.log()
        if len(log) > tail_chars:
            log = "…" + log[-tail_chars:]
        return (
            f"baresip {self.aor} (sip 127.0.0.1:{self.sip_port}, ctrl {self.ctrl_port}, "
            f"pid {self.pid}): {what}\n--- baresip output ({self.log_path}) ---\n{log}"
        )

    def __repr__(self) -> str:
        """Short identification for test output."""
        return f"<Baresip {self.aor} sip={self.sip_port} ctrl={self.ctrl_port} pid={self.pid}>"


class BaresipFactory:
    """Makes phones for one test and stops them all at the end.

    Typical fixture: ``with BaresipFactory(tmp_path) as make: yield make``; then
    ``make("alice", registrar=...)`` creates and starts a :class:`Baresip`.
    """

    def __init__(self, base_dir: Path | None = None) -> None:
        """Phones get work dirs under ``base_dir`` (default: their own temp dirs)."""
        self.base_dir = base_dir
        self.phones: list[Baresip] = []

    def __call__(self, name: str | None = None, **kwargs: Any) -> Baresip:
        """Create and start a phone; ``name`` is its user, ``kwargs`` go to :class:`Baresip`."""
        if (
            self.base_dir is not None
            and "workdir" not in kwargs
            and len(str(self.base_dir)) <= _SNDFILE_NAME_MAX - 30
        ):
            self.base_dir.mkdir(parents=True, exist_ok=True)
            kwargs["workdir"] = Path(tempfile.mkdtemp(prefix=f"{name or 'ua'}-", dir=self.base_dir))
        phone = Baresip(user=name, **kwargs)
        self.phones.append(phone)
        return phone.start()

    def __iter__(self) -> Iterator[Baresip]:
        """The phones made so far."""
        return iter(self.phones)

    def close(self) -> None:
        """Stop every phone (errors in one do not keep the others running)."""
        errors: list[BaseException] = []
        for phone in reversed(self.phones):
            try:
                phone.stop()
            except BaseException as exc:  # pragma: no cover - defensive
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        """Return self."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop every phone."""
        self.close()
