"""Micro-benchmark of the SIP message layer: µs per operation on this machine.

Run: ``.venv/bin/python bench/parse_micro.py [--number N]``.  The registrar targets
>= 3000 REGISTER/s on 2 shared cores, so splitting a typical REGISTER into a Request
must stay well under 20 µs; structured access (To, Contact, Via) is paid on demand.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

from dialtone.sip.message import Request, make_response, parse_message

REGISTER_INITIAL = (
    b"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bK-524287-1---a1b2c3d4e5f60718;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"Contact: <sip:alice@127.0.0.1:5072;rinstance=6f8d3c2a1b0e9f7d;transport=UDP>\r\n"
    b"To: <sip:alice@127.0.0.1>\r\n"
    b"From: <sip:alice@127.0.0.1>;tag=4fa3c2b1\r\n"
    b"Call-ID: ZTQ4YjNmNjY2ZjI4MjZmMTc1ZWRlYzYyYzE1ZjQ0ZDk\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Expires: 3600\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO\r\n"
    b"User-Agent: baresip v1.0.0 (x86_64/linux)\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
"""A typical first REGISTER (no credentials yet), about 500 bytes."""

REGISTER = (
    b"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bK-524287-1---e2f6c8d9a1b3c5d7;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"Contact: <sip:alice@127.0.0.1:5072;rinstance=6f8d3c2a1b0e9f7d;transport=UDP>\r\n"
    b"To: <sip:alice@127.0.0.1>\r\n"
    b"From: <sip:alice@127.0.0.1>;tag=4fa3c2b1\r\n"
    b"Call-ID: ZTQ4YjNmNjY2ZjI4MjZmMTc1ZWRlYzYyYzE1ZjQ0ZDk\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b"Expires: 3600\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n"
    b"Supported: replaces, outbound, path\r\n"
    b"User-Agent: baresip v1.0.0 (x86_64/linux)\r\n"
    b'Authorization: Digest username="alice",realm="127.0.0.1",'
    b'nonce="1c7a9e9a2f7c4e3b8d1f0a6b5c4d3e2f",uri="sip:127.0.0.1",'
    b'response="6629fae49393a05397450978507c4ef1",algorithm=MD5,'
    b'cnonce="0a4f113b",qop=auth,nc=00000001\r\n'
    b"Content-Length: 0\r\n"
    b"\r\n"
)
"""The authenticated REGISTER that follows the 401."""

SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bK-524287-1---77d2b9c4e1f0a3b5;rport\r\n"
    "Max-Forwards: 70\r\n"
    "Contact: <sip:alice@127.0.0.1:5072;transport=UDP>\r\n"
    'To: "Bob" <sip:bob@127.0.0.1>\r\n'
    'From: "Alice" <sip:alice@127.0.0.1>;tag=9fxced76sl\r\n'
    "Call-ID: 3848276298220188511@127.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO\r\n"
    "Supported: replaces, timer\r\n"
    "User-Agent: baresip v1.0.0 (x86_64/linux)\r\n"
    "Content-Type: application/sdp\r\n"
    f"Content-Length: {len(SDP)}\r\n"
    "\r\n"
).encode() + SDP


def measure(name: str, func: Callable[[], object], number: int) -> float:
    """Run ``func`` ``number`` times (best of 9: the box is shared) and print µs/op."""
    best = float("inf")
    for _ in range(9):
        start = time.perf_counter()
        for _ in range(number):
            func()
        best = min(best, time.perf_counter() - start)
    per_op = best / number * 1e6
    print(f"{name:<52} {per_op:7.2f} µs/op")
    return per_op


def _register_access() -> object:
    msg = parse_message(REGISTER)
    assert isinstance(msg, Request)
    return (msg.ruri, msg.top_via.branch, msg.to.uri, msg.from_.tag, msg.contacts, msg.cseq)


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=10000)
    n = parser.parse_args().number
    print(f"{platform.python_implementation()} {platform.python_version()} on {platform.node()}")
    sizes = f"{len(REGISTER_INITIAL)}/{len(REGISTER)}"
    print(f"REGISTER {sizes} bytes (initial/authenticated), INVITE {len(INVITE)} bytes\n")
    register = parse_message(REGISTER)
    invite = parse_message(INVITE)
    assert isinstance(register, Request) and isinstance(invite, Request)
    measure("parse initial REGISTER", lambda: parse_message(REGISTER_INITIAL), n)
    measure("parse authenticated REGISTER", lambda: parse_message(REGISTER), n)
    measure("  + ruri, top Via, To, From, Contacts, CSeq", _register_access, n)
    measure("REGISTER to_bytes", register.to_bytes, n)
    response = lambda: make_response(register, 200, to_tag="abc").to_bytes()  # noqa: E731
    measure("make_response(REGISTER, 200).to_bytes()", response, n)
    measure("parse INVITE with SDP", lambda: parse_message(INVITE), n)
    measure("INVITE to_bytes", invite.to_bytes, n)


if __name__ == "__main__":
    main()
