"""Bad input on the real sockets (SIP-2, Ex. S-3): answered or dropped, and serving goes on."""

from __future__ import annotations

import contextlib
import os
import socket

import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.interop


def udp(server: ServerProcess) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(3)
    sock.connect(("127.0.0.1", server.sip_port))
    return sock


def options(port: int, call_id: str = "c1", extra: str = "", body: bytes = b"") -> bytes:
    return (
        f"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port}"
        f";branch=z9hG4bK{call_id};rport\r\nFrom: <sip:x@127.0.0.1>;tag=1\r\n"
        f"To: <sip:127.0.0.1>\r\nCall-ID: {call_id}\r\n"
        f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def status_line(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0].decode()


def test_garbage_missing_call_id_then_normal_service(sip_server: ServerProcess) -> None:
    sock = udp(sip_server)
    port = sock.getsockname()[1]
    sock.send(os.urandom(700))
    no_call_id = options(port).replace(b"Call-ID: c1\r\n", b"")
    sock.send(no_call_id)
    assert status_line(sock.recv(65536)) == "SIP/2.0 400 Missing Call-ID"
    sock.send(options(port, "c2", "Max-Forwards: 0\r\n").replace(b"Max-Forwards: 70\r\n", b""))
    assert status_line(sock.recv(65536)).startswith("SIP/2.0 483")
    sock.send(options(port, "c3"))
    assert status_line(sock.recv(65536)) == "SIP/2.0 200 OK"
    sock.close()


def test_oversized_tcp_message_is_dropped_with_its_connection(sip_server: ServerProcess) -> None:
    # A UDP datagram cannot exceed 65,507 bytes, so the 64 KiB limit (SIP-2: "513 or
    # dropped") bites on TCP: the message is dropped and its connection closed.
    conn = socket.create_connection(("127.0.0.1", sip_server.sip_port), timeout=5)
    port = conn.getsockname()[1]
    big = options(port, "big", body=b"x" * 70_000).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")
    conn.sendall(big)
    with contextlib.suppress(ConnectionResetError):
        assert conn.recv(65536) == b""
    conn.close()
    sock = udp(sip_server)
    sock.send(options(sock.getsockname()[1], "after"))
    assert status_line(sock.recv(65536)) == "SIP/2.0 200 OK"
    sock.close()


def test_tcp_unframeable_stream_is_closed_and_others_served(sip_server: ServerProcess) -> None:
    bad = socket.create_connection(("127.0.0.1", sip_server.sip_port), timeout=5)
    bad.sendall(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nX-Long: " + b"a" * 70_000)
    bad.settimeout(5)
    with contextlib.suppress(ConnectionResetError):  # closed either way
        while bad.recv(65536):
            pass
    bad.close()
    good = socket.create_connection(("127.0.0.1", sip_server.sip_port), timeout=5)
    port = good.getsockname()[1]
    good.sendall(options(port, "tcp-ok").replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
    assert status_line(good.recv(65536)) == "SIP/2.0 200 OK"
    good.sendall(b"\r\n\r\n")
    assert good.recv(16) == b"\r\n"  # RFC 5626 §4.4.1 keep-alive pong
    good.close()
