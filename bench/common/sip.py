"""Minimal SIP probe used to wait until a server under test is ready."""

from __future__ import annotations

import secrets
import socket
import time

from bench.common.ports import LOOPBACK


def options_request(port: int, local_port: int) -> bytes:
    """A minimal, valid OPTIONS request to 127.0.0.1:`port` (RFC 3261 §11)."""
    branch = "z9hG4bK" + secrets.token_hex(8)
    tag = secrets.token_hex(4)
    call_id = secrets.token_hex(12)
    lines = [
        f"OPTIONS sip:{LOOPBACK}:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {LOOPBACK}:{local_port};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:probe@{LOOPBACK}>;tag={tag}",
        f"To: <sip:{LOOPBACK}:{port}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def wait_sip_ready(port: int, timeout: float = 30.0) -> str:
    """Send OPTIONS over UDP until any response arrives; return its status line.

    Raises TimeoutError when the server has not answered within `timeout` s.
    """
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.settimeout(0.5)
        local_port = int(sock.getsockname()[1])
        while time.monotonic() < deadline:
            sock.sendto(options_request(port, local_port), (LOOPBACK, port))
            try:
                data, _ = sock.recvfrom(65535)
            except (TimeoutError, ConnectionRefusedError):
                continue
            return data.split(b"\r\n", 1)[0].decode(errors="replace")
    raise TimeoutError(f"no SIP answer on udp:{LOOPBACK}:{port} within {timeout} s")
