"""dialtone as the server under test: start it, use its REST API, register a Client.

Interface assumed (see bench/register/README.md and bench/dial/README.md):

* `dialtone serve --sip-port P --http-port H --data-dir D` (the command is a
  template, `--dialtone-cmd`), SIP on UDP+TCP 127.0.0.1:P, HTTP on 127.0.0.1:H;
* `DIALTONE_ACCOUNT_SID` / `DIALTONE_AUTH_TOKEN` fix the account's credentials,
  `DIALTONE_DOMAIN=127.0.0.1` (realm = domain) is passed as well;
* `GET /health` answers 200 once the server is up (API-60), OPTIONS gets an
  answer (SIP-3);
* `POST /2010-04-01/Accounts/{sid}/{resource}.json` creates Clients (API-30)
  and IncomingPhoneNumbers and answers 201;
* `GET /dialtone/stats.json` (Basic auth) gives live `calls`, `sip_dialogs`,
  `media_ports` (API-60);
* a Client registers with MD5 digest (qop=auth, realm = 127.0.0.1).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import secrets
import shlex
import socket
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from bench.common.ports import LOOPBACK
from bench.common.procs import ManagedProcess
from bench.common.sip import wait_sip_ready

DEFAULT_CMD = (
    "{venv}/bin/dialtone serve --sip-port {sip_port} --http-port {http_port} --data-dir {data_dir}"
)
# The call benchmarks: media ports for every leg, one JSON log record per line.
CALLS_CMD = DEFAULT_CMD + " --rtp-ports 20000-29999 --log-format json"


@dataclass(frozen=True)
class Account:
    """dialtone account credentials: AccountSid = AC + 32 hex, AuthToken = 32 hex."""

    sid: str
    token: str

    @staticmethod
    def generate() -> Account:
        """Fresh random credentials."""
        return Account(sid="AC" + secrets.token_hex(16), token=secrets.token_hex(16))

    def basic_auth(self) -> str:
        """The HTTP `Authorization` header value."""
        raw = f"{self.sid}:{self.token}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class DialtoneConfig:
    """How to start dialtone for one benchmark phase."""

    command: str
    work_dir: Path
    sip_port: int
    http_port: int
    account: Account
    startup_timeout_s: float = 60.0

    def argv(self) -> list[str]:
        """The command template filled in and split like a shell would."""
        venv = Path(sys.executable).parent.parent
        text = self.command.format(
            venv=venv,
            sip_port=self.sip_port,
            http_port=self.http_port,
            data_dir=self.work_dir / "data",
        )
        return shlex.split(text)

    def env(self) -> dict[str, str]:
        """Environment fixing the account and the SIP domain."""
        return {
            "DIALTONE_ACCOUNT_SID": self.account.sid,
            "DIALTONE_AUTH_TOKEN": self.account.token,
            "DIALTONE_DOMAIN": LOOPBACK,
        }


def _wait_health(cfg: DialtoneConfig, proc: ManagedProcess) -> None:
    deadline = time.monotonic() + cfg.startup_timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"dialtone exited at start-up:\n{proc.stderr_tail()}")
        conn = http.client.HTTPConnection(LOOPBACK, cfg.http_port, timeout=2)
        try:
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.2)
    raise RuntimeError(f"dialtone /health not 200 within {cfg.startup_timeout_s} s")


def start(cfg: DialtoneConfig, cpus: str | None, log_dir: Path) -> ManagedProcess:
    """Start dialtone pinned to `cpus`; return once HTTP and SIP both answer."""
    (cfg.work_dir / "data").mkdir(parents=True, exist_ok=True)
    try:
        proc = ManagedProcess("dialtone", cfg.argv(), log_dir, cpus=cpus, env=cfg.env())
    except FileNotFoundError as exc:
        raise RuntimeError(f"cannot start dialtone ({exc}); is it installed in the venv?") from exc
    try:
        _wait_health(cfg, proc)
        wait_sip_ready(cfg.sip_port, timeout=cfg.startup_timeout_s)
    except (RuntimeError, TimeoutError):
        proc.stop()
        raise
    return proc


@dataclass(frozen=True)
class Rest:
    """The account's REST API on 127.0.0.1:`port`."""

    port: int
    account: Account

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, str]:
        """One request; returns (status, body text)."""
        headers = {"Authorization": self.account.basic_auth()}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            conn.close()

    def create(self, resource: str, form: dict[str, str]) -> dict[str, object]:
        """`POST /2010-04-01/Accounts/{sid}/{resource}.json`; 201 expected."""
        path = f"/2010-04-01/Accounts/{self.account.sid}/{resource}.json"
        status, text = self.request("POST", path, form)
        if status != 201:
            raise RuntimeError(f"POST {resource}.json {form} -> {status}: {text[:300]}")
        created: dict[str, object] = json.loads(text)
        return created

    def stats(self) -> dict[str, int]:
        """`GET /dialtone/stats.json`."""
        status, text = self.request("GET", "/dialtone/stats.json")
        if status != 200:
            raise RuntimeError(f"GET /dialtone/stats.json -> {status}: {text[:200]}")
        counts: dict[str, int] = json.loads(text)
        return counts


def password_for(login: str) -> str:
    """A throwaway password per run and login."""
    return f"{login}-{secrets.token_hex(8)}"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - SIP digest is MD5


def _challenge(response: str) -> dict[str, str]:
    match = re.search(r"^WWW-Authenticate:\s*Digest\s+(.+)$", response, re.I | re.M)
    if match is None:
        raise RuntimeError(f"401 without a Digest challenge:\n{response[:500]}")
    return {
        k.lower(): v1 or v2 for k, v1, v2 in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]+))', match[1])
    }


def _register_request(
    server_port: int, login: str, port: int, call_id: str, cseq: int, auth: str | None
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
        "User-Agent: dialtone-bench",
    ]
    if auth:
        lines.append(f"Authorization: {auth}")
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def _final_response(sock: socket.socket, call_id: str, cseq: int, deadline: float) -> str:
    """The first final response to our REGISTER; anything else on the socket is skipped."""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data, _ = sock.recvfrom(65535)
        except TimeoutError:
            break
        text = data.decode(errors="replace")
        status = re.match(r"SIP/2\.0 (\d{3})", text)
        if (
            status
            and int(status[1]) >= 200
            and call_id in text
            and re.search(rf"^CSeq:\s*{cseq} REGISTER", text, re.M | re.I)
        ):
            return text
    raise TimeoutError(f"no final answer to REGISTER CSeq {cseq}")


def register(server_port: int, login: str, password: str, port: int, timeout: float = 5.0) -> None:
    """REGISTER `login` from 127.0.0.1:`port` with Contact on that port; digest MD5, qop=auth.

    The socket is closed afterwards; the SIPp callee then binds the same port,
    so it receives the INVITEs dialtone sends the Client (REG-1, LEG-1).
    """
    call_id = secrets.token_hex(10)
    uri = f"sip:{LOOPBACK}:{server_port}"
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
        sock.sendto(
            _register_request(server_port, login, port, call_id, 1, None), (LOOPBACK, server_port)
        )
        first = _final_response(sock, call_id, 1, deadline)
        if not first.startswith("SIP/2.0 401"):
            raise RuntimeError(f"REGISTER {login}: expected 401, got {first.splitlines()[0]}")
        ch = _challenge(first)
        realm, nonce = ch["realm"], ch["nonce"]
        cnonce, nc = secrets.token_hex(4), "00000001"
        ha1 = _md5(f"{login}:{realm}:{password}")
        ha2 = _md5(f"REGISTER:{uri}")
        parts = [
            f'username="{login}"',
            f'realm="{realm}"',
            f'nonce="{nonce}"',
            f'uri="{uri}"',
            "algorithm=MD5",
        ]
        if "auth" in ch.get("qop", "").split(","):
            digest = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            parts += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            digest = _md5(f"{ha1}:{nonce}:{ha2}")
        parts.append(f'response="{digest}"')
        if "opaque" in ch:
            parts.append(f'opaque="{ch["opaque"]}"')
        auth = "Digest " + ", ".join(parts)
        sock.sendto(
            _register_request(server_port, login, port, call_id, 2, auth), (LOOPBACK, server_port)
        )
        second = _final_response(sock, call_id, 2, deadline)
        if not second.startswith("SIP/2.0 200"):
            raise RuntimeError(f"REGISTER {login}: expected 200, got {second.splitlines()[0]}")
