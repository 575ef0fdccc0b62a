"""The callee: one Client registered from the port a SIPp UAS then listens on.

`register` sends REGISTER over UDP from a chosen port, answers the MD5 digest challenge
(qop=auth, RFC 7616 with MD5 as dialtone offers it by default) and returns once the binding
is stored; the socket is then closed so SIPp can bind the same port. Every INVITE dialtone
sends for `client:<login>` then reaches that SIPp (REG-1, LEG-1).

`UasStep` is one SIPp run of `uas_answer_bye.xml` for one step: `-m calls`, bounded by
`-timeout`, statistics in a `-trace_stat` CSV read with bench.register's parser.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from bench.common.ports import LOOPBACK
from bench.common.procs import ManagedProcess

SCENARIO = Path(__file__).with_name("uas_answer_bye.xml")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - SIP digest is MD5


def _params(challenge: str) -> dict[str, str]:
    return {k.lower(): v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', challenge)}


def _register_request(
    login: str, port: int, server_port: int, call_id: str, cseq: int, auth: str | None
) -> bytes:
    lines = [
        f"REGISTER sip:{LOOPBACK}:{server_port} SIP/2.0",
        f"Via: SIP/2.0/UDP {LOOPBACK}:{port};branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        f"From: <sip:{login}@{LOOPBACK}>;tag={secrets.token_hex(4)}",
        f"To: <sip:{login}@{LOOPBACK}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{login}@{LOOPBACK}:{port}>",
        "Expires: 3600",
    ]
    if auth:
        lines.append(f"Authorization: {auth}")
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def _status(data: bytes) -> tuple[int, str]:
    head = data.decode(errors="replace")
    first = head.split("\r\n", 1)[0].split()
    return (int(first[1]) if len(first) > 1 and first[1].isdigit() else 0), head


def register(login: str, password: str, port: int, server_port: int, timeout: float = 5.0) -> None:
    """REGISTER `login` with Contact 127.0.0.1:`port` (sent from that port); raise on failure."""
    call_id = secrets.token_hex(10)
    uri = f"sip:{LOOPBACK}:{server_port}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, port))
        sock.settimeout(timeout)

        def exchange(cseq: int, auth: str | None) -> tuple[int, str]:
            sock.sendto(
                _register_request(login, port, server_port, call_id, cseq, auth),
                (LOOPBACK, server_port),
            )
            while True:
                status, text = _status(sock.recvfrom(65536)[0])
                if status >= 200:
                    return status, text

        status, text = exchange(1, None)
        if status == 401:
            header = re.search(r"^WWW-Authenticate:\s*Digest\s+(.*)$", text, re.M | re.I)
            if header is None:
                raise RuntimeError(f"401 without a Digest challenge:\n{text}")
            challenge = _params(header.group(1))
            realm, nonce = challenge["realm"], challenge["nonce"]
            cnonce, nc = secrets.token_hex(8), "00000001"
            ha1 = _md5(f"{login}:{realm}:{password}")
            ha2 = _md5(f"REGISTER:{uri}")
            response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            auth = (
                f'Digest username="{login}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                f'response="{response}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"'
            )
            if "opaque" in challenge:
                auth += f', opaque="{challenge["opaque"]}"'
            status, text = exchange(2, auth)
        if status != 200:
            raise RuntimeError(f"REGISTER {login} answered {status}:\n{text[:500]}")


@dataclass(frozen=True)
class UasStep:
    """One bounded SIPp UAS run: answers `calls` INVITEs, hangs each up after `hold_ms`."""

    port: int
    media_port: int
    calls: int
    hold_ms: int
    out_dir: Path
    name: str
    timeout_s: int

    @property
    def stat_path(self) -> Path:
        """SIPp's `-trace_stat` CSV."""
        return self.out_dir / f"{self.name}.stat.csv"

    @property
    def error_path(self) -> Path:
        """SIPp's `-trace_err` file."""
        return self.out_dir / f"{self.name}.errors.log"

    def argv(self) -> list[str]:
        """The SIPp command line."""
        return [
            shutil.which("sipp") or "sipp",
            "-sf", str(SCENARIO),
            "-i", LOOPBACK, "-p", str(self.port), "-mp", str(self.media_port),
            "-t", "u1",
            "-m", str(self.calls),
            "-set", "hold_ms", str(self.hold_ms),
            "-buff_size", "4194304",
            "-timeout", f"{self.timeout_s}s", "-timeout_error",
            "-nostdin",
            "-trace_stat", "-stf", str(self.stat_path), "-fd", "1",
            "-trace_err", "-error_file", str(self.error_path),
        ]  # fmt: skip

    def start(self, cpus: str | None) -> ManagedProcess:
        """Start SIPp (pinned to `cpus`); the caller waits for it and reads the stats."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in (self.stat_path, self.error_path):
            stale.unlink(missing_ok=True)
        return ManagedProcess(f"sipp-{self.name}", self.argv(), self.out_dir, cpus=cpus)

    def errors(self, limit: int = 5) -> list[str]:
        """First distinct lines of SIPp's error file."""
        try:
            lines = self.error_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        seen: list[str] = []
        for line in lines:
            text = line.strip()
            if text and text not in seen and not text.startswith("-----"):
                seen.append(text[:200])
            if len(seen) >= limit:
                break
        return seen


def port_bound(port: int) -> bool:
    """True when some process holds UDP 127.0.0.1:`port` (SIPp is up)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return True
    return False
