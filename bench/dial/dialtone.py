"""dialtone as the b2bua under test: start it, provision a number and Clients, register them.

Interface assumed (see bench/dial/README.md):

* `dialtone serve` as in bench/register (`--dialtone-cmd` template, account
  from `DIALTONE_ACCOUNT_SID`/`DIALTONE_AUTH_TOKEN`, `GET /health`), plus
  `--rtp-ports` (two or more ports per call: caller leg + one per branch);
* `POST .../Clients.json` (Login, Password) → 201 and
  `POST .../IncomingPhoneNumbers.json` (PhoneNumber, VoiceUrl) → 201;
* a Client registers with MD5 digest (realm = 127.0.0.1); the branch INVITE of
  `<Client>` goes to the binding (its Contact, sent to the address the
  REGISTER came from): we REGISTER from the callee's own port, so both are
  the SIPp callee;
* `GET /dialtone/stats.json` (Basic auth) gives live `calls`, `sip_dialogs`,
  `media_ports` (API-60): all should be 0 again after a step.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import secrets
import socket
import time
import urllib.parse
from dataclasses import dataclass

from bench.common.ports import LOOPBACK
from bench.register.dialtone import Account, DialtoneConfig, start

DEFAULT_CMD = (
    "{venv}/bin/dialtone serve --sip-port {sip_port} --http-port {http_port} "
    "--data-dir {data_dir} --rtp-ports 20000-29999 --log-format json"
)

__all__ = ["DEFAULT_CMD", "Account", "DialtoneConfig", "Rest", "register", "start"]


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

    The socket is closed afterwards; the SIPp callee then binds the same port.
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
