"""A tiny blocking SIP UDP client for tests: our own digest client on a chosen source address.

Real phones cover MD5 (baresip, SIPp, sipsak); this client covers what they cannot:
SHA-256 challenges (RFC 7616/8760) and sources other than 127.0.0.1 (127.0.0.2, …).
"""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass, field

from dialtone.sip.digest import build_authorization, choose_challenge, parse_challenges
from dialtone.sip.message import Response, parse_message


@dataclass
class UdpRegistrar:
    """Registers one user at ``server`` from ``source`` (an address on the loopback range)."""

    server: tuple[str, int]
    user: str
    password: str
    source: str = "127.0.0.1"
    domain: str = "127.0.0.1"
    call_id: str = field(default_factory=lambda: secrets.token_hex(8))
    cseq: int = 0
    nc: int = 0
    sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.source, 0))
        self.sock.settimeout(5)

    @property
    def port(self) -> int:
        """The local port."""
        port: int = self.sock.getsockname()[1]
        return port

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def request(self, *, expires: int = 3600, authorization: str | None = None) -> Response:
        """Send one REGISTER and return the final response."""
        self.cseq += 1
        lines = [
            f"REGISTER sip:{self.domain} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.source}:{self.port}"
            f";branch=z9hG4bK{secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@{self.domain}>;tag={secrets.token_hex(4)}",
            f"To: <sip:{self.user}@{self.domain}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} REGISTER",
            f"Contact: <sip:{self.user}@{self.source}:{self.port}>",
            f"Expires: {expires}",
        ]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        lines += ["Content-Length: 0", "", ""]
        self.sock.sendto("\r\n".join(lines).encode(), self.server)
        while True:
            data, _ = self.sock.recvfrom(65536)
            message = parse_message(data)
            if isinstance(message, Response) and message.status >= 200:
                return message

    def register(self, *, expires: int = 3600, password: str | None = None) -> Response:
        """REGISTER, answer the digest challenge (preferring SHA-256), return the answer."""
        first = self.request(expires=expires)
        if first.status != 401:
            return first
        values = first.headers.get_all("WWW-Authenticate")
        challenges = [c for value in values for c in parse_challenges(value)]
        challenge = choose_challenge(challenges)
        self.nc += 1
        authorization = build_authorization(
            challenge,
            "REGISTER",
            f"sip:{self.domain}",
            self.user,
            self.password if password is None else password,
            cnonce=secrets.token_hex(4),
            nc=1,
        )
        return self.request(expires=expires, authorization=authorization)
